import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { ReplicationStreamParser } from '../../src/resp/stream-parser.js';
import { feed } from '../helpers/stream-feed.js';

/** What the eager parser gave as the name: args[0] as latin1, lower-cased by JS. */
const eagerName = (b: Buffer): string => b.toString('latin1').toLowerCase();

const RESERVED = Buffer.from('__replicant');

function startsWith(a: Buffer | undefined, prefix: Buffer): boolean {
  return a !== undefined && a.length >= prefix.length && a.subarray(0, prefix.length).equals(prefix);
}

/** Bytes that catch a case fold done wrong: letters of both cases, the bytes 0x20 away from letters, latin1 capitals. */
const trickyByte = fc.constantFrom(0x41, 0x61, 0x5a, 0x7a, 0x40, 0x60, 0x5b, 0x7b, 0x53, 0x73, 0x45, 0x65, 0x54, 0x74, 0x5f, 0x2e, 0x30, 0x10, 0xc0, 0xe0, 0xde, 0xfe, 0xd7, 0xb5, 0xff);
const nameArb = fc.oneof(
  fc.constantFrom('SET', 'set', 'Set', 'sEt', 'INCR', 'LPUSH', 'hset', 'REPLCONF', 'Ping', 'MULTI', 'exec', 'SELECT', 'zRangeStore', 'myModule.Cmd', '').map((s) => Buffer.from(s, 'latin1')),
  fc.uint8Array({ minLength: 0, maxLength: 6 }).map((a) => Buffer.from(a)),
  fc.array(trickyByte, { minLength: 1, maxLength: 5 }).map((a) => Buffer.from(a)),
  fc.uint8Array({ minLength: 30, maxLength: 40 }).map((a) => Buffer.from(a)),
);
const keyArb = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 20 }).map((a) => Buffer.from(a)),
  fc.constantFrom('__replicant', '__replicant:checkpoint', '__replican', '__REPLICANT:x', '_').map((s) => Buffer.from(s)),
);
const cmdArb = fc
  .tuple(nameArb, fc.option(keyArb, { nil: undefined }), fc.array(fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a)), { maxLength: 4 }))
  .map(([name, key, rest]) => (key === undefined ? [name] : [name, key, ...rest]));

describe('StreamCommand lazy accessors', () => {
  it('agree with the eager result across random commands and chunkings (property)', () => {
    fc.assert(
      fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 10 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }), fc.boolean(), (cmds, sizes, argsFirst) => {
        const bytes = encodeCommands(cmds);
        const got = feed(new ReplicationStreamParser(0), bytes, sizes);
        expect(got).toHaveLength(cmds.length);
        for (let i = 0; i < cmds.length; i++) {
          const want = cmds[i]!;
          const c = got[i]!;
          // Both orders: the cheap paths before args were cut, and after (served from the cache).
          if (argsFirst) expect(c.args).toEqual(want);
          expect(c.name).toBe(eagerName(want[0]!));
          expect(c.argCount).toBe(want.length);
          expect(c.arg(1)).toEqual(want[1]);
          expect(c.arg(want.length)).toBeUndefined();
          expect(c.argStartsWith(1, RESERVED)).toBe(startsWith(want[1], RESERVED));
          expect(c.argStartsWith(0, want[0]!)).toBe(true);
          expect(c.argStartsWith(2, RESERVED)).toBe(startsWith(want[2], RESERVED));
          expect(c.args).toEqual(want);
          expect(c.arg(0)).toEqual(want[0]);
          expect(c.raw).toEqual(encodeCommand(want));
        }
      }),
      { numRuns: 400 },
    );
  });

  it('returns the same cached args array and views of raw', () => {
    const bytes = encodeCommand(['SET', 'k', 'v']);
    const [c] = new ReplicationStreamParser(0).push(bytes);
    const first = c!.args;
    expect(c!.args).toBe(first);
    expect(first[2]!.buffer).toBe(c!.raw.buffer);
    expect(first[2]!.byteOffset).toBe(c!.raw.byteOffset + bytes.length - 3);
    // arg(1) before and after materializing: equal bytes, same memory.
    expect(c!.arg(1)!.byteOffset).toBe(first[1]!.byteOffset);
  });

  it('keeps lazy args valid for a command assembled across chunks, after later pushes', () => {
    const stream = encodeCommands([
      ['RPUSH', 'list', 'a', 'bb', 'ccc'],
      ['SET', 'key', Buffer.alloc(1000, 7)],
      ['HSET', 'h', 'f', 'v'],
    ]);
    const p = new ReplicationStreamParser(0);
    const cmds = feed(p, stream, [5, 3, 700, 2]);
    // Later pushes must not disturb the accumulator bytes the earlier (unread) views point into.
    p.push(encodeCommand(['SET', 'x', 'y']));
    p.push(Buffer.from('*2\r\n$3\r\nDEL\r\n$1\r\n'));
    expect(cmds.map((c) => c.args.map((a) => a.toString('latin1')))).toEqual([
      ['RPUSH', 'list', 'a', 'bb', 'ccc'],
      ['SET', 'key', Buffer.alloc(1000, 7).toString('latin1')],
      ['HSET', 'h', 'f', 'v'],
    ]);
  });
});

describe('command name interning', () => {
  it('lower-cases known names in any case', () => {
    const names = ['SET', 'set', 'SeT', 'INCR', 'LPUSH', 'HSET', 'REPLCONF', 'PING', 'MULTI', 'EXEC', 'DEL', 'SELECT', 'PEXPIREAT', 'ZREMRANGEBYSCORE'];
    const got = new ReplicationStreamParser(0).push(encodeCommands(names.map((n) => [n, 'k'])));
    expect(got.map((c) => c.name)).toEqual(names.map((n) => n.toLowerCase()));
  });

  it('keeps names apart that differ by 0x20 outside the letters, and handles latin1 capitals like toLowerCase', () => {
    // '@' | 0x20 is '`' and '[' | 0x20 is '{': a fold that ignores the letter range would merge them.
    const raw = ['X@DD', 'x`dd', 'x@dd', 'A[B', 'a{b', 'a[b', '\xc0BC', '\xe0bc', 'SET\xd7', 'set\xf7', '', 'Z_1', 'z_1'];
    const p = new ReplicationStreamParser(0);
    // Twice: the first sight adds unknown names to the table, the second finds them there.
    for (let round = 0; round < 2; round++) {
      const got = p.push(encodeCommands(raw.map((n) => [Buffer.from(n, 'latin1')])));
      expect(got.map((c) => c.name)).toEqual(raw.map((n) => n.toLowerCase()));
    }
  });

  it('stays correct past the bound on learned names', () => {
    const raw = Array.from({ length: 1200 }, (_, i) => `Mod${i}.Cmd`);
    const p = new ReplicationStreamParser(0);
    for (let round = 0; round < 2; round++) {
      const got = p.push(encodeCommands(raw.map((n) => [n])));
      expect(got.map((c) => c.name)).toEqual(raw.map((n) => n.toLowerCase()));
    }
  });
});
