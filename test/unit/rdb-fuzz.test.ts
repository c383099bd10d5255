/**
 * Property tests: on arbitrary input the decoder either succeeds or throws an RdbError whose
 * message carries a byte offset. Never another exception type (RangeError, TypeError...), never
 * an "internal decoder error", never a hang; and chunking never changes the outcome.
 */
import fc from 'fast-check';
import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RdbError } from '../../src/errors.js';
import { RdbDecoder } from '../../src/rdb/decoder.js';
import type { RdbDecoderOptions } from '../../src/rdb/types.js';
import { corpusFiles } from '../helpers/rdb-corpus.js';
import { RdbWriter, intset, listpack, ziplist, zipmap } from '../helpers/rdb-writer.js';

type Outcome = { ok: true; records: number; consumed: number } | { ok: false; message: string };

/** Decode `buf` split at `cuts` (sorted offsets); returns a comparable outcome. */
function outcome(buf: Buffer, cuts: number[], opts: RdbDecoderOptions): Outcome {
  const d = new RdbDecoder(opts);
  let records = 0;
  try {
    let prev = 0;
    for (const c of [...cuts, buf.length]) {
      if (c <= prev) continue;
      records += d.push(buf.subarray(prev, c)).length;
      prev = c;
    }
    d.finish();
    return { ok: true, records, consumed: d.bytesConsumed };
  } catch (e) {
    if (!(e instanceof RdbError)) throw new Error(`non-RdbError escaped: ${String(e)}`, { cause: e });
    expect(e.message).toMatch(/at byte \d+/);
    expect(e.message).not.toMatch(/internal decoder error/);
    return { ok: false, message: e.message };
  }
}

function cutsArb(maxLen: number): fc.Arbitrary<number[]> {
  return fc.array(fc.nat({ max: Math.max(1, maxLen) }), { maxLength: 12 }).map((a) => [...new Set(a)].sort((x, y) => x - y));
}

/** RDB_FUZZ_SCALE=50 runs a long local session; CI uses the default. */
const SCALE = Math.max(1, Number(process.env.RDB_FUZZ_SCALE ?? 1));

const HEADERS = ['REDIS0001', 'REDIS0006', 'REDIS0009', 'REDIS0011', 'REDIS0012', 'REDIS0014', 'VALKEY080'];

const small = corpusFiles()
  .filter((f) => statSync(f).size < 60_000)
  .map((f) => readFileSync(f));

describe('RDB decoder fuzzing', () => {
  it('random bytes after a valid header: RdbError or success, the same for any chunking', () => {
    fc.assert(
      fc.property(fc.constantFrom(...HEADERS), fc.uint8Array({ maxLength: 400 }), cutsArb(420), fc.boolean(), (header, body, cuts, skip) => {
        const buf = Buffer.concat([Buffer.from(header, 'latin1'), body]);
        const opts: RdbDecoderOptions = { captureRaw: true, batchSize: 3, onCorruptValue: skip ? 'skip' : 'fail' };
        const whole = outcome(buf, [], opts);
        expect(outcome(buf, cuts, opts)).toEqual(whole);
      }),
      { numRuns: 600 * SCALE },
    );
  });

  it('random opcode-shaped bytes: lengths, strings and value types in plausible places', () => {
    // Bias toward bytes the decoder dispatches on, so deeper paths are reached.
    const byte = fc.oneof(
      fc.constantFrom(0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28),
      fc.constantFrom(0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0xc0, 0xc1, 0xc2, 0xc3, 0x80, 0x81, 0x40),
      fc.integer({ min: 0, max: 255 }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...HEADERS), fc.array(byte, { maxLength: 300 }), cutsArb(320), (header, body, cuts) => {
        const buf = Buffer.concat([Buffer.from(header, 'latin1'), Buffer.from(body)]);
        const opts: RdbDecoderOptions = { verifyChecksum: false, onCorruptValue: 'skip' };
        expect(outcome(buf, cuts, opts)).toEqual(outcome(buf, [], opts));
      }),
      { numRuns: 600 * SCALE },
    );
  });

  it('mutated corpus files (flips, truncations, insertions): RdbError or success', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
    );
    fc.assert(
      fc.property(
        fc.nat({ max: small.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 8 }),
        (fileIndex, mutations, verify, skip, rawCuts) => {
          let buf = Buffer.from(small[fileIndex]!);
          for (const m of mutations) {
            const at = m.at % Math.max(1, buf.length);
            if (m.kind === 'flip') buf[at] = m.value;
            else if (m.kind === 'cut') buf = buf.subarray(0, at);
            else if (m.kind === 'insert') buf = Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
            else buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.n)]);
          }
          const cuts = [...new Set(rawCuts.map((c) => c % Math.max(1, buf.length)))].sort((a, b) => a - b);
          const opts: RdbDecoderOptions = { verifyChecksum: verify, captureRaw: true, onCorruptValue: skip ? 'skip' : 'fail' };
          expect(outcome(buf, cuts, opts)).toEqual(outcome(buf, [], opts));
        },
      ),
      { numRuns: 400 * SCALE },
    );
  });

  it('mutated compact blobs (ziplist, listpack, intset, zipmap) inside a valid file', () => {
    const entry = fc.oneof(
      fc.string({ maxLength: 70 }),
      fc.integer({ min: -70000, max: 70000 }).map((n) => ({ int: n })),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((n) => ({ int: n })),
    );
    const blob = fc.oneof(
      fc.tuple(fc.constantFrom(10, 12, 13), fc.array(entry, { maxLength: 12 })).map(([t, es]) => [t, ziplist(es)] as const),
      fc.tuple(fc.constantFrom(16, 17, 20, 23), fc.array(entry, { maxLength: 12 })).map(([t, es]) => [t, listpack(es)] as const),
      fc.array(fc.integer({ min: -30000, max: 30000 }), { minLength: 1, maxLength: 10 }).map((v) => [11, intset([...new Set(v)].sort((a, b) => a - b), 2)] as const),
      fc.array(fc.tuple(fc.string({ maxLength: 5 }), fc.string({ maxLength: 300 })), { maxLength: 5 }).map((ps) => [9, zipmap(ps)] as const),
    );
    fc.assert(
      fc.property(blob, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.boolean(), ([type, b], flips, skip) => {
        const mutated = Buffer.from(b);
        for (const [at, v] of flips) mutated[at % mutated.length] = v;
        const w = new RdbWriter(type >= 20 ? 12 : type >= 16 ? 10 : 9).key(type, 'k').str(mutated);
        const buf = w.stringKey('after', 'v').end();
        const opts: RdbDecoderOptions = { onCorruptValue: skip ? 'skip' : 'fail', captureRaw: true };
        const r = outcome(buf, [], opts);
        if (skip) expect(r.ok).toBe(true);
        expect(outcome(buf, [7, 15, 16, 30], opts)).toEqual(r);
      }),
      { numRuns: 500 * SCALE },
    );
  });

  it('every truncation of a small file fails with a "truncated" RdbError', () => {
    const file = readFileSync(corpusFiles().find((f) => f.endsWith('redis-7.4.1-cluster.rdb'))!);
    for (let n = 0; n < file.length; n++) {
      const r = outcome(file.subarray(0, n), [], {});
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.message).toMatch(/truncated: expected/);
    }
  });
});
