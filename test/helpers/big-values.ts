/**
 * Test data for long values: deterministic random bytes, compressible data, a small LZF
 * encoder (the decoder only decompresses), and a probe of the decoder's big allocations.
 */
import { createHash } from 'node:crypto';
import { vi } from 'vitest';
import { RdbError } from '../../src/errors.js';
import { RdbDecoder } from '../../src/rdb/decoder.js';
import type { RdbDecoderOptions, RdbRecord } from '../../src/rdb/types.js';
import { lzfStrBytes } from './rdb-writer.js';

/** Deterministic PRNG so failures are reproducible. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export function randomBytes(n: number, seed: number): Buffer {
  const r = rng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/** Random bytes, then a zero run, then a pattern repeating every 1000 bytes. */
export function compressible(n: number, seed: number): Buffer {
  const head = randomBytes(Math.floor(n / 25), seed);
  const zeros = Buffer.alloc(Math.floor(n * 0.3));
  const period = randomBytes(1000, seed + 1);
  const rest = Buffer.allocUnsafe(n - head.length - zeros.length);
  for (let i = 0; i < rest.length; i++) rest[i] = period[i % 1000]!;
  return Buffer.concat([head, zeros, rest]);
}

/**
 * A greedy LZF encoder for tests: back-references at distance 1 or `period`, else literal
 * runs. Exercises overlapping copies (distance 1) and long non-overlapping ones.
 */
export function lzfCompress(data: Buffer, period = 1000): Buffer {
  const out: number[] = [];
  let litStart = 0;
  const flush = (to: number): void => {
    for (let i = litStart; i < to; i += 32) {
      const n = Math.min(32, to - i);
      out.push(n - 1);
      for (let j = 0; j < n; j++) out.push(data[i + j]!);
    }
  };
  let i = 0;
  while (i < data.length) {
    let best = 0;
    let bestBack = 0;
    for (const back of [1, period]) {
      if (i < back) continue;
      let n = 0;
      while (n < 264 && i + n < data.length && data[i + n] === data[i + n - back]) n++;
      if (n > best) {
        best = n;
        bestBack = back;
      }
    }
    if (best < 3) {
      i++;
      continue;
    }
    flush(i);
    const len = best - 2;
    const off = bestBack - 1;
    if (len < 7) out.push((len << 5) | (off >> 8), off & 0xff);
    else out.push((7 << 5) | (off >> 8), len - 7, off & 0xff);
    i += best;
    litStart = i;
  }
  flush(data.length);
  return Buffer.from(out);
}

export function lzfValue(data: Buffer): Buffer {
  return lzfStrBytes(lzfCompress(data), data.length);
}

/** Record the sizes of the Buffers of at least 64 KiB that the decoder allocates. */
export function bigAllocations(): number[] {
  const sizes: number[] = [];
  const real = Buffer.allocUnsafe.bind(Buffer);
  vi.spyOn(Buffer, 'allocUnsafe').mockImplementation((n: number) => {
    if (n >= 65536) sizes.push(n);
    return real(n);
  });
  return sizes;
}


/** One string per record, long Buffers hashed, so mismatches are readable and cheap. */
export function canon(records: RdbRecord[]): string[] {
  return records.map((r) =>
    JSON.stringify(r, function (this: Record<string, unknown>, key: string, value: unknown) {
      const orig = this[key];
      if (Buffer.isBuffer(orig)) return orig.length > 64 ? `buf:${orig.length}:${createHash('sha1').update(orig).digest('hex')}` : `buf:${orig.toString('hex')}`;
      if (typeof orig === 'bigint') return `big:${orig}`;
      if (orig instanceof Error) return `err:${orig.message}`;
      return value;
    }),
  );
}

export function decode(buf: Buffer, size: (i: number) => number, opts: RdbDecoderOptions = {}): RdbRecord[] {
  const d = new RdbDecoder(opts);
  const out: RdbRecord[] = [];
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = Math.max(1, size(i));
    for (const r of d.push(buf.subarray(off, off + n))) out.push(r);
    off += n;
  }
  d.finish();
  return out;
}

/** The outcome of a decode that may fail: records, or the error message. */
export function attempt(buf: Buffer, size: (i: number) => number, opts: RdbDecoderOptions = {}): string[] | string {
  try {
    return canon(decode(buf, size, opts));
  } catch (e) {
    if (!(e instanceof RdbError)) throw e;
    return e.message;
  }
}

export const whole = (): number => Number.MAX_SAFE_INTEGER;

export function chunkings(): [string, (i: number) => number][] {
  const r = rng(7);
  return [
    ['1 KiB', () => 1024],
    ['64 KiB', () => 65536],
    ['random 1..5000', () => 1 + Math.floor(r() * 5000)],
    ['odd 977', () => 977],
  ];
}

