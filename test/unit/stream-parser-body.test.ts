/**
 * The replication-stream parser with `bigArgBytes`: a command with a big argument after its key
 * comes out as its head (name, key, the arguments before the big one) and a body that receives
 * the rest of its wire bytes as they arrive, whatever the chunking; offsets stay exact and the
 * commands around it are parsed as usual. Framing errors inside the body are still found.
 */
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../src/resp/stream-parser.js';

const big = Buffer.alloc(5000, 'v');
const cmds = [
  encodeCommand(['SET', 'a', '1']),
  encodeCommand(['SET', 'bigkey', big, 'PX', '100']),
  encodeCommand(['HSET', 'h', 'f', big, 'g', Buffer.alloc(3000, 'w')]),
  encodeCommand(['PING']),
  encodeCommand(['SET', Buffer.alloc(2000, 'k'), 'small']),
  encodeCommand(['RPUSH', 'l', big]),
];
const wire = Buffer.concat(cmds);

interface Seen {
  name: string;
  offset: number;
  bytes: Buffer;
  head?: string[];
}

function run(sizes: number[], start = 100): Seen[] {
  const p = new ReplicationStreamParser(start, { bigArgBytes: 1000 });
  const seen: Seen[] = [];
  let open: { c: StreamCommand; parts: Buffer[] } | null = null;
  const drain = () => {
    if (open === null) return;
    for (const b of open.c.body!.take()) open.parts.push(Buffer.from(b));
    if (open.c.body!.done) {
      seen.push({ name: open.c.name, offset: open.c.body!.offset, bytes: Buffer.concat([Buffer.from(open.c.raw), ...open.parts]), head: open.c.args.map(String) });
      expect(open.c.body!.length).toBe(seen[seen.length - 1]!.bytes.length);
      open = null;
    }
  };
  let i = 0;
  let k = 0;
  while (i < wire.length) {
    const n = sizes[k++ % sizes.length]!;
    const out = p.push(wire.subarray(i, i + n));
    i += n;
    drain();
    for (const c of out) {
      if (c.body !== null) {
        open = { c, parts: [] };
        drain();
      } else seen.push({ name: c.name, offset: c.offset, bytes: Buffer.from(c.raw) });
    }
  }
  expect(open).toBe(null);
  return seen;
}

describe('stream parser: big arguments relayed in pieces', () => {
  for (const sizes of [[wire.length], [1], [7], [64, 3, 1000], [999, 1, 2, 5000]]) {
    it(`chunks of ${sizes.join(',')}: heads, bodies and offsets exact`, () => {
      const seen = run(sizes);
      expect(seen.map((s) => s.name)).toEqual(['set', 'set', 'hset', 'ping', 'set', 'rpush']);
      let end = 100;
      seen.forEach((s, j) => {
        end += cmds[j]!.length;
        expect(s.offset).toBe(end);
        expect(s.bytes.equals(cmds[j]!)).toBe(true);
      });
      expect(seen[1]!.head).toEqual(['SET', 'bigkey']);
      expect(seen[2]!.head).toEqual(['HSET', 'h', 'f']);
      // A big key is not a big argument: assembled as before.
      expect(seen[4]!.head).toBeUndefined();
    });
  }

  it('a framing error inside the body is a ProtocolError at its offset', () => {
    const bad = Buffer.from(cmds[1]!);
    bad[bad.indexOf('$2\r\nPX')] = 0x2b; // '+' instead of '$'
    const p = new ReplicationStreamParser(0, { bigArgBytes: 1000 });
    expect(() => {
      for (let i = 0; i < bad.length; i += 100) p.push(bad.subarray(i, i + 100));
    }).toThrow(ProtocolError);
    const q = new ReplicationStreamParser(0, { bigArgBytes: 1000 });
    const noCrlf = Buffer.from(cmds[1]!);
    noCrlf[noCrlf.indexOf('\r\n$2\r\nPX')] = 0x41;
    expect(() => q.push(noCrlf)).toThrow(/expected CR/);
  });
});
