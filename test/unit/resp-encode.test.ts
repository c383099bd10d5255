import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  argLength,
  bulkLength,
  encodeCommand,
  encodeCommands,
  encodedLength,
  multibulkHeaderLength,
  writeBufferBulk,
  writeBulk,
  writeCommand,
  writeMultibulkHeader,
  type Arg,
} from '../../src/resp/encode.js';

/** The RESP2 encoding spelled out the slow, obvious way. */
function reference(args: readonly Arg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const bytes = typeof a === 'string' ? Buffer.from(a, 'utf8') : typeof a === 'number' ? Buffer.from(String(a), 'latin1') : a;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

const NUMBERS = [
  0, -0, 1, 9, 10, 99, 100, 12345, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 1e9 - 1, 1e9, 1e10, 1e15 - 1, 1e15,
  1_700_000_000_123, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 64, -1, -42, 0.5, 1.25, -3.75, 1e21, 1e-7, NaN, Infinity, -Infinity,
];

const argArb: fc.Arbitrary<Arg> = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom(...NUMBERS),
  fc.integer({ min: -(2 ** 40), max: 2 ** 53 }),
  fc.double(),
  fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
  // Views into a bigger buffer, at odd offsets.
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), fc.nat()).map(([u, a, b]) => {
    const buf = Buffer.from(u);
    const s = a % buf.length;
    return buf.subarray(s, s + (b % (buf.length - s + 1)));
  }),
);

describe('RESP encoder', () => {
  it('encodes strings, numbers and binary buffers', () => {
    expect(encodeCommand(['SET', 'k', 12]).toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n');
    const bin = Buffer.from([0, 0xff, 0x0d, 0x0a]);
    expect(encodeCommand(['SET', bin, 'é'])).toEqual(
      Buffer.concat([Buffer.from('*3\r\n$3\r\nSET\r\n$4\r\n'), bin, Buffer.from('\r\n$2\r\n'), Buffer.from('é'), Buffer.from('\r\n')]),
    );
  });

  it('predicts its length and concatenates several commands', () => {
    const cmds = [['PING'], ['SELECT', 10], ['SET', 'x'.repeat(1000), Buffer.alloc(12345)]];
    const all = encodeCommands(cmds);
    expect(all.length).toBe(cmds.reduce((n, c) => n + encodedLength(c), 0));
    expect(all.subarray(0, 14).toString()).toBe('*1\r\n$4\r\nPING\r\n');
  });

  it('writes numbers as JavaScript spells them, digit counts at every boundary', () => {
    for (const n of NUMBERS) {
      expect(encodeCommand([n]).toString('latin1')).toBe(`*1\r\n$${String(n).length}\r\n${String(n)}\r\n`);
      expect(argLength(n)).toBe(String(n).length);
    }
    for (let p = 1; p <= 1e15; p *= 10) {
      for (const n of [p - 1, p, p + 1]) expect(encodeCommand([n]).toString('latin1')).toBe(`*1\r\n$${String(n).length}\r\n${n}\r\n`);
    }
  });

  it('matches the reference encoding for any arguments, at any offset', () => {
    fc.assert(
      fc.property(fc.array(argArb, { maxLength: 12 }), fc.nat({ max: 7 }), (args, offset) => {
        const want = reference(args);
        expect(encodedLength(args)).toBe(want.length);
        expect(args.reduce<number>((n, a) => n + bulkLength(a), multibulkHeaderLength(args.length))).toBe(want.length);
        expect(encodeCommand(args)).toEqual(want);
        const out = Buffer.alloc(offset + want.length + 3, 0xee);
        expect(writeCommand(out, offset, args)).toBe(offset + want.length);
        expect(out.subarray(offset, offset + want.length)).toEqual(want);
        // Nothing written outside the command's bytes.
        expect([...out.subarray(0, offset), ...out.subarray(offset + want.length)].every((b) => b === 0xee)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('long strings and big buffers (native paths) match too', () => {
    const args: Arg[] = ['a'.repeat(65), 'é'.repeat(40), `${'x'.repeat(70)}\u{1F600}`, '\ud800 lone surrogate', Buffer.alloc(100_000, 7), 'ascii only but longer than the short-string limit: 0123456789'];
    expect(encodeCommand(args)).toEqual(reference(args));
  });

  it('writes headers and single bulks in place', () => {
    const out = Buffer.alloc(64);
    let o = writeMultibulkHeader(out, 0, 257);
    o = writeBulk(out, o, 'MSET');
    o = writeBufferBulk(out, o, Buffer.from('k'.repeat(12)));
    o = writeBulk(out, o, 7);
    expect(out.subarray(0, o).toString('latin1')).toBe(`*257\r\n$4\r\nMSET\r\n$12\r\n${'k'.repeat(12)}\r\n$1\r\n7\r\n`);
    expect(multibulkHeaderLength(257)).toBe(6);
  });
});
