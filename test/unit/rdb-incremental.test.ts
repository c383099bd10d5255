/**
 * Feeding the decoder one byte at a time, or in random chunks, must give exactly the records
 * of feeding the whole file at once (batches, raw captures and all).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { RdbDecoder } from '../../src/rdb/decoder.js';
import type { RdbDecoderOptions, RdbRecord } from '../../src/rdb/types.js';
import { corpusFiles } from '../helpers/rdb-corpus.js';

/**
 * One string per record: Buffers as hex (hashed when long), bigints, -0 and infinities spelled
 * out, so a mismatch shows which record differs without a slow deep compare of 1 MiB Buffers.
 */
function canon(records: RdbRecord[]): string[] {
  return records.map((r) =>
    JSON.stringify(r, function (this: Record<string, unknown>, key: string, value: unknown) {
      const orig = this[key];
      if (Buffer.isBuffer(orig)) return orig.length > 4096 ? `buf:${orig.length}:${createHash('sha1').update(orig).digest('hex')}` : `buf:${orig.toString('hex')}`;
      if (typeof orig === 'bigint') return `big:${orig}`;
      if (typeof orig === 'number' && (!Number.isFinite(orig) || Object.is(orig, -0))) return `num:${Object.is(orig, -0) ? '-0' : orig}`;
      if (orig instanceof Error) return `err:${orig.message}`;
      return value;
    }),
  );
}

function decodeChunks(buf: Buffer, sizes: (i: number) => number, opts: RdbDecoderOptions): string[] {
  const d = new RdbDecoder(opts);
  const out: RdbRecord[] = [];
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = Math.max(1, sizes(i));
    for (const r of d.push(buf.subarray(off, off + n))) out.push(r);
    off += n;
  }
  d.finish();
  expect(d.bytesConsumed + d.remainder().length).toBe(buf.length);
  return canon(out);
}

/** Small deterministic PRNG so failures are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const all = corpusFiles();
const pick = (name: string): string => {
  const f = all.find((p) => p.endsWith(name));
  if (!f) throw new Error(`corpus file ${name} missing`);
  return f;
};

// One of each era plus the odd formats; the 1 MiB list element is in the *-full files.
const files = [
  'redis-6.2.16-full.rdb',
  'redis-7.0.15-lru.rdb',
  'redis-7.2.6-nocompress.rdb',
  'redis-7.4.1-full.rdb',
  'redis-7.4.1-cluster.rdb',
  'valkey-8.0.1-lfu.rdb',
  'encodings.rdb',
  'redis_50_with_streams.rdb',
  'redis_40_with_module.rdb',
  'redis_60_with_module_aux.rdb',
  'parser_filters.rdb',
  'corrupt_empty_keys.rdb',
].map(pick);

describe('incremental decoding', () => {
  for (const file of files) {
    const name = basename(file);
    const buf = readFileSync(file);
    const opts: RdbDecoderOptions = { captureRaw: true, batchSize: 7 };

    it(`${name}: one byte at a time equals the whole file`, () => {
      const whole = decodeChunks(buf, () => buf.length, opts);
      expect(whole.at(-1)).toMatch(/^\{"kind":"end"/);
      const bytewise = decodeChunks(buf, () => 1, opts);
      expect(bytewise).toEqual(whole);
    });

    it(`${name}: random chunk sizes equal the whole file`, () => {
      const whole = decodeChunks(buf, () => buf.length, opts);
      for (let seed = 1; seed <= 3; seed++) {
        const r = rng(seed);
        const chunked = decodeChunks(buf, () => 1 + Math.floor(r() * (seed === 1 ? 16 : seed === 2 ? 700 : 20_000)), opts);
        expect(chunked).toEqual(whole);
      }
    });
  }

  it('keeps bytes after the RDB for remainder() (diskless EOF mark)', () => {
    const buf = readFileSync(pick('redis-7.0.15-empty.rdb'));
    const mark = Buffer.from('0123456789abcdef0123456789abcdef01234567');
    const input = Buffer.concat([buf, mark, Buffer.from('*1\r\n$4\r\nping\r\n')]);
    const d = new RdbDecoder();
    for (let i = 0; i < input.length; i += 5) d.push(input.subarray(i, i + 5));
    expect(d.done).toBe(true);
    expect(d.bytesConsumed).toBe(buf.length);
    expect(d.remainder().toString()).toBe(`${mark.toString()}*1\r\n$4\r\nping\r\n`);
  });

  it('does not re-join a large pending element on every small push', () => {
    // A 2 MiB string arriving in 1 KiB chunks: the decoder waits until the whole element is
    // there and joins once (re-joining on every push would copy ~2 GB).
    const big = Buffer.alloc(2 << 20, 0x61);
    const header = Buffer.from('REDIS0009', 'latin1');
    const key = Buffer.concat([Buffer.from([0x00, 0x01, 0x6b, 0x80]), Buffer.from([0, 0x20, 0, 0])]);
    const rdb = Buffer.concat([header, Buffer.from([0xfe, 0x00]), key, big, Buffer.from([0xff]), Buffer.alloc(8)]);
    const d = new RdbDecoder();
    const recs: RdbRecord[] = [];
    const concat = vi.spyOn(Buffer, 'concat');
    let copied = 0;
    try {
      for (let i = 0; i < rdb.length; i += 1024) recs.push(...d.push(rdb.subarray(i, i + 1024)));
      d.finish();
      for (const call of concat.mock.calls) copied += (call[0] as Buffer[]).reduce((n, b) => n + b.length, 0);
    } finally {
      concat.mockRestore();
    }
    // A string this long comes as stringPart records.
    const parts = recs.flatMap((r) => (r.kind === 'stringPart' ? [r.value] : []));
    expect(Buffer.concat(parts).equals(big)).toBe(true);
    expect(copied).toBeLessThan(3 * rdb.length);
  });
});
