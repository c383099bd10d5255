import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OutputBuffer } from '../../src/export/output.js';
import { encodeCommand, type Arg } from '../../src/resp/encode.js';

class Collect extends Writable {
  chunks: Buffer[] = [];
  constructor(private readonly slow = false) {
    super({ highWaterMark: 16 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    if (this.slow) setTimeout(cb, 1);
    else cb();
  }
  get all(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const arg: fc.Arbitrary<Arg> = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.nat({ max: 2 ** 48 }),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
);

describe('OutputBuffer', () => {
  it('writes RESP commands byte-identical to resp/encode.ts, across chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(fc.array(arg, { minLength: 1, maxLength: 6 }), { maxLength: 20 }), fc.integer({ min: 64, max: 600 }), (cmds, chunk) => {
        const sink = new Collect();
        const out = new OutputBuffer(sink, chunk);
        for (const c of cmds) out.command(c);
        out.flush();
        expect(sink.all).toEqual(Buffer.concat(cmds.map((c) => encodeCommand(c))));
      }),
      { numRuns: 300 },
    );
  });

  it('never reuses a chunk handed to the sink, and rolls back only within the current chunk', () => {
    const sink = new Collect();
    const out = new OutputBuffer(sink, 16);
    out.ascii('0123456789');
    const m = out.mark();
    out.ascii('abc');
    expect(out.rollback(m)).toBe(true);
    out.ascii('ABCDEFGHIJ'); // forces a flush
    const stale = out.mark();
    out.flush();
    out.ascii('zz');
    expect(out.rollback(stale)).toBe(false);
    out.flush();
    expect(sink.all.toString()).toBe('0123456789ABCDEFGHIJzz');
  });

  it('waits for drain when the sink is slow', async () => {
    const sink = new Collect(true);
    const out = new OutputBuffer(sink, 32);
    for (let i = 0; i < 50; i++) {
      out.bytes(Buffer.alloc(40, 0x61 + (i % 26)));
      await out.maybeFlush();
    }
    await out.end();
    await new Promise((r) => sink.end(r));
    expect(sink.all.length).toBe(2000);
    expect(sink.all[1999]).toBe(0x61 + (49 % 26));
  });

  it('marks itself closed on EPIPE and drops later writes', () => {
    const sink = new Collect();
    const out = new OutputBuffer(sink, 16);
    const err = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    sink.emit('error', err);
    expect(out.closed).toBe(true);
    out.ascii('x'.repeat(40));
    out.flush();
    expect(sink.chunks).toEqual([]);
  });
});
