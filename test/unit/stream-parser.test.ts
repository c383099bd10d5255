import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../src/resp/stream-parser.js';
import { feed } from '../helpers/stream-feed.js';

const PING = Buffer.from('*1\r\n$4\r\nping\r\n');
const GETACK = Buffer.from('*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n');
const SELECT0 = Buffer.from('*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n');

function summary(cmds: StreamCommand[]): Array<[string, number, number, string[]]> {
  return cmds.map((c) => [c.name, c.offset, c.length, c.args.map((a) => a.toString('latin1'))]);
}

function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('ReplicationStreamParser offsets', () => {
  it('counts ping = 14, GETACK = 37, SELECT = 23 bytes (redis-internals §1.7)', () => {
    expect(PING.length).toBe(14);
    expect(GETACK.length).toBe(37);
    expect(SELECT0.length).toBe(23);
    const p = new ReplicationStreamParser(1000);
    const cmds = p.push(Buffer.concat([PING, GETACK, SELECT0]));
    expect(summary(cmds)).toEqual([
      ['ping', 1014, 14, ['ping']],
      ['replconf', 1051, 37, ['REPLCONF', 'GETACK', '*']],
      ['select', 1074, 23, ['SELECT', '0']],
    ]);
    expect(cmds.map((c) => c.raw.toString('latin1'))).toEqual([PING, GETACK, SELECT0].map((b) => b.toString('latin1')));
    expect(p.offset).toBe(1074);
    expect(p.pendingBytes).toBe(0);
  });

  it('gives the same commands when fed one byte at a time, and tracks pending bytes', () => {
    const stream = Buffer.concat([PING, SELECT0, encodeCommand(['SET', 'k', Buffer.from([0, 13, 10, 255])]), GETACK]);
    const whole = summary(new ReplicationStreamParser(0).push(stream));
    const p = new ReplicationStreamParser(0);
    const out: StreamCommand[] = [];
    for (let i = 0; i < stream.length; i++) {
      const got = p.push(stream.subarray(i, i + 1));
      out.push(...got);
      const consumed = out.length === 0 ? 0 : out[out.length - 1]!.offset;
      expect(p.offset).toBe(consumed);
      expect(p.pendingBytes).toBe(i + 1 - consumed);
    }
    expect(summary(out)).toEqual(whole);
    expect(out[2]!.args[2]).toEqual(Buffer.from([0, 13, 10, 255]));
    expect(out.map((c) => c.raw.length)).toEqual([14, 23, stream.length - 14 - 23 - 37, 37]);
  });

  it('counts bare \\n and \\r\\n keepalives toward the offset between commands', () => {
    const p = new ReplicationStreamParser(-1);
    const bytes = Buffer.concat([Buffer.from('\n\n'), PING, Buffer.from('\r\n'), PING, Buffer.from('\n')]);
    const cmds = feed(p, bytes, [1]);
    expect(cmds.map((c) => c.offset)).toEqual([-1 + 2 + 14, -1 + 2 + 14 + 2 + 14]);
    expect(p.offset).toBe(-1 + bytes.length);
    expect(p.pendingBytes).toBe(0);
  });

  it('splits at every boundary with the same result (property)', () => {
    const argArb = fc.uint8Array({ minLength: 0, maxLength: 40 }).map((a) => Buffer.from(a));
    const cmdArb = fc.array(argArb, { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 1e9 }), (cmds, sizes, start) => {
        const bytes = encodeCommands(cmds);
        const p = new ReplicationStreamParser(start);
        const got = feed(p, bytes, sizes);
        expect(got.map((c) => c.args)).toEqual(cmds);
        let off = start;
        for (let i = 0; i < cmds.length; i++) {
          off += encodeCommand(cmds[i]!).length;
          expect(got[i]!.offset).toBe(off);
        }
        expect(p.offset).toBe(start + bytes.length);
        expect(Buffer.concat(got.map((c) => c.raw))).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });
});

describe('ReplicationStreamParser big arguments', () => {
  it('parses a 40 MB argument pushed in 64 KiB chunks, keeping views valid', () => {
    const big = Buffer.alloc(40 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
    const stream = Buffer.concat([PING, encodeCommand(['SET', 'big', big, 'PXAT', '123']), PING]);
    const p = new ReplicationStreamParser(10);
    const out: StreamCommand[] = [];
    let maxPending = 0;
    for (let i = 0; i < stream.length; i += 65536) {
      out.push(...p.push(stream.subarray(i, i + 65536)));
      maxPending = Math.max(maxPending, p.pendingBytes);
    }
    expect(out.map((c) => c.name)).toEqual(['ping', 'set', 'ping']);
    expect(out[1]!.args[2]!.equals(big)).toBe(true);
    expect(out[1]!.args[3]!.toString()).toBe('PXAT');
    expect(out[2]!.offset).toBe(10 + stream.length);
    expect(maxPending).toBeGreaterThan(big.length - 65536);
  });

  it('parses many arguments of a command cut everywhere without losing any', () => {
    const args: Buffer[] = [Buffer.from('RPUSH'), Buffer.from('list')];
    for (let i = 0; i < 20000; i++) args.push(Buffer.from(`element-${i}`));
    const bytes = encodeCommand(args);
    const cmds = feed(new ReplicationStreamParser(0), bytes, [7, 1000, 3, 65536]);
    expect(cmds).toHaveLength(1);
    expect(cmds[0]!.args).toEqual(args);
    expect(cmds[0]!.length).toBe(bytes.length);
  });
});

describe('ReplicationStreamParser malformed input', () => {
  it('rejects an inline command, naming the offset of the bad byte', () => {
    const p = new ReplicationStreamParser(500);
    p.push(PING);
    const e = protocolError(() => p.push(Buffer.from('PING\r\n')));
    expect(e.offset).toBe(515);
    expect(e.message).toMatch(/inline/);
    expect(e.message).toMatch(/at stream offset 515/);
    // The parser stays failed.
    expect(() => p.push(PING)).toThrow(ProtocolError);
  });

  it('rejects a non-bulk argument, a missing CRLF after a bulk, and bad numbers', () => {
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*1\r\n:4\r\n'))).offset).toBe(5);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*1\r\n$4\r\npingXY'))).offset).toBe(13);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*1\r\n$4\r\nping\rX'))).offset).toBe(14);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*0\r\n'))).message).toMatch(/multibulk length 0/);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*-1\r\n'))).message).toMatch(/multibulk length -1/);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*1\r\n$-1\r\n'))).message).toMatch(/bulk length -1/);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*1x\r\n'))).offset).toBe(3);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('*\r\n'))).message).toMatch(/empty number/);
    expect(protocolError(() => new ReplicationStreamParser(0).push(Buffer.from('\rX'))).offset).toBe(2);
  });

  it('reports garbage cut across chunks with the same offset as whole', () => {
    const bytes = Buffer.concat([PING, SELECT0, Buffer.from('*2\r\n$3\r\nset\r\n#oops')]);
    const whole = protocolError(() => new ReplicationStreamParser(7).push(bytes));
    const p = new ReplicationStreamParser(7);
    const bytewise = protocolError(() => feed(p, bytes, [1]));
    expect(bytewise.offset).toBe(whole.offset);
    expect(whole.offset).toBe(7 + 14 + 23 + 13 + 1);
  });

  it('fails on a header line that never ends instead of buffering forever', () => {
    const p = new ReplicationStreamParser(0);
    const e = protocolError(() => {
      p.push(Buffer.from('*'));
      for (let i = 0; i < 100; i++) p.push(Buffer.from('1'));
    });
    expect(e.message).toMatch(/longer than 15 digits/);
    expect(e.offset).toBe(17);
    expect(p.pendingBytes).toBeLessThan(40);
  });
});
