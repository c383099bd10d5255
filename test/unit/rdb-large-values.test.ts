/**
 * Long elements: a unit needing many bytes is assembled in one buffer allocated up front, and
 * long LZF strings (string values, list/set elements, PLAIN quicklist nodes) are decompressed
 * as their bytes arrive. Same records for any chunking, exact bytes, corrupt data handled, and
 * the memory promise checked by counting the big allocations.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RdbError } from '../../src/errors.js';
import { RdbDecoder } from '../../src/rdb/decoder.js';
import { lzfDecompress } from '../../src/rdb/structure/lzf.js';
import type { RdbDecoderOptions, RdbRecord } from '../../src/rdb/types.js';
import { RdbWriter, f64le, lenBytes, listpack, lzfStrBytes, strBytes } from '../helpers/rdb-writer.js';
import { attempt, bigAllocations, canon, chunkings, compressible, decode, lzfCompress, lzfValue, randomBytes, whole } from '../helpers/big-values.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const KiB = 1024;

describe('long LZF strings are decompressed as they arrive', () => {
  const big = compressible(700 * KiB, 1);
  const element = compressible(300 * KiB, 2);
  const node = compressible(400 * KiB, 3);
  const small = Buffer.from('short value, one unit'.repeat(3));
  const members = [compressible(260 * KiB, 4), Buffer.from('m2')];
  const bigBytes = lzfValue(big);
  const rdb = new RdbWriter(11)
    .stringKey('before', 'x')
    .key(0, 'big')
    .raw(bigBytes)
    .key(0, 'small-lzf')
    .raw(lzfStrBytes(lzfCompress(small), small.length))
    .key(1, 'list')
    .len(3)
    .str('e1')
    .raw(lzfValue(element))
    .str('e3')
    .key(2, 'set')
    .len(2)
    .raw(lzfValue(members[0]!))
    .str(members[1]!)
    .key(18, 'quicklist')
    .len(2)
    .len(1)
    .raw(lzfValue(node))
    .len(2)
    .str(listpack(['a', 'b']))
    .stringKey('after', 'z')
    .end();

  it('the test encoder makes valid, compressed LZF', () => {
    const c = lzfCompress(big);
    expect(c.length).toBeLessThan(big.length / 5);
    expect(lzfDecompress(c, 0, c.length, big.length, 0).equals(big)).toBe(true);
  });

  it('gives the exact values, raw bytes and value sizes', () => {
    const recs = decode(rdb, whole, { captureRaw: true, rawLimit: 4 << 20 });
    const byKey = new Map<string, RdbRecord[]>();
    let cur = '';
    for (const r of recs) {
      if (r.kind === 'keyStart') byKey.set((cur = r.key.toString()), []);
      byKey.get(cur)?.push(r);
    }
    const str = byKey.get('big')!.find((r) => r.kind === 'string');
    expect(str?.kind === 'string' && str.value.equals(big)).toBe(true);
    const end = byKey.get('big')!.find((r) => r.kind === 'keyEnd');
    expect(end?.kind === 'keyEnd' && end.valueBytes).toBe(bigBytes.length);
    expect(end?.kind === 'keyEnd' && end.raw?.equals(Buffer.concat([Buffer.from([0]), bigBytes]))).toBe(true);
    const items = (k: string): Buffer[] => byKey.get(k)!.flatMap((r) => (r.kind === 'listItems' || r.kind === 'setItems' ? r.items : []));
    expect(items('list').map((b) => b.length)).toEqual([2, element.length, 2]);
    expect(items('list')[1]!.equals(element)).toBe(true);
    expect(items('set')[0]!.equals(members[0]!)).toBe(true);
    const ql = items('quicklist');
    expect(ql[0]!.equals(node)).toBe(true);
    expect(ql.slice(1).map((b) => b.toString())).toEqual(['a', 'b']);
    const s = byKey.get('small-lzf')!.find((r) => r.kind === 'string');
    expect(s?.kind === 'string' && s.value.equals(small)).toBe(true);
    expect(recs.at(-1)).toMatchObject({ kind: 'end', checksumVerified: true });
  });

  it('gives the same records for any chunking, byte by byte included', () => {
    const opts: RdbDecoderOptions = { captureRaw: true, rawLimit: 4 << 20, batchSize: 2 };
    const ref = canon(decode(rdb, whole, opts));
    for (const [name, size] of chunkings()) expect(canon(decode(rdb, size, opts)), name).toEqual(ref);
    expect(canon(decode(rdb, () => 1, opts))).toEqual(ref);
  });

  it('never gathers the compressed bytes: one allocation per long value, its decompressed size', () => {
    const sizes = bigAllocations();
    decode(rdb, () => 1024);
    expect(sizes.sort((a, b) => a - b)).toEqual([members[0]!.length, element.length, node.length, big.length].sort((a, b) => a - b));
    // Mostly random data: 200 KiB of compressed bytes, still never held at once.
    const data = Buffer.concat([randomBytes(200 * KiB, 31), Buffer.alloc(100 * KiB)]);
    const file = new RdbWriter(11).key(0, 'k').raw(lzfValue(data)).end();
    sizes.length = 0;
    const recs = decode(file, () => 1024);
    expect(sizes).toEqual([data.length]);
    const s = recs.find((r) => r.kind === 'string');
    expect(s?.kind === 'string' && s.value.equals(data)).toBe(true);
  });

  it('corrupt data inside: fails with the offset for any chunking, or skips just that key', () => {
    const data = compressible(400 * KiB, 9);
    const c = lzfCompress(data);
    // A back-reference 8 KiB back, after the first literal run (32 bytes written so far).
    expect(c[0]).toBe(31);
    const bad = Buffer.concat([c.subarray(0, 33), Buffer.from([0x3f, 0xff]), c.subarray(33)]);
    const file = new RdbWriter(11).key(0, 'bad').raw(lzfStrBytes(bad, data.length)).stringKey('after', 'z').end();
    const failed = attempt(file, whole);
    expect(failed).toMatch(/string value: LZF back-reference points 8192 bytes back, before the start of the output at byte \d+ \(key "bad"\)/);
    for (const [name, size] of chunkings()) expect(attempt(file, size), name).toEqual(failed);

    const skipped = decode(file, () => 1000, { onCorruptValue: 'skip' });
    expect(skipped.filter((r) => r.kind === 'keySkipped')).toHaveLength(1);
    expect(skipped.some((r) => r.kind === 'string')).toBe(true); // 'after' still decoded
    expect(canon(skipped)).toEqual(canon(decode(file, whole, { onCorruptValue: 'skip' })));
  });

  it('refuses impossible lengths before the compressed bytes arrive', () => {
    const file = new RdbWriter(11).key(0, 'k').raw([0xc3], lenBytes(1000), lenBytes(1 << 20)).end();
    const d = new RdbDecoder();
    expect(() => d.push(file.subarray(0, 30))).toThrow(/string value: LZF data of 1000 bytes cannot decompress to 1048576 bytes/);
  });

  it('reports output shorter than declared, and a truncation inside the data', () => {
    const data = compressible(300 * KiB, 11);
    const c = lzfCompress(data);
    const short = new RdbWriter(11).key(0, 'k').raw(lzfStrBytes(c, data.length + 5)).end();
    expect(attempt(short, () => 4096)).toMatch(/LZF data decompressed to 307200 bytes, expected 307205/);

    const list = new RdbWriter(11).key(1, 'l').len(2).str('a').raw(lzfStrBytes(c, data.length)).end();
    const d = new RdbDecoder();
    d.push(list.subarray(0, list.length - 9 - 100));
    expect(() => d.finish()).toThrow(/truncated: expected the LZF data of the list element \(byte \d+ of \d+\) \(list element 2 of 2\) of key "l"/);
  });
});

describe('a long raw element is assembled once', () => {
  // Under STREAM_STRING_MIN: a longer string value comes as stringPart records (rdb-big-string.test.ts).
  const str = randomBytes(900 * KiB, 21);
  const member = randomBytes(1 << 20, 22);
  const field = randomBytes(600 * KiB, 23);
  const value = randomBytes(700 * KiB, 24);
  const rdb = new RdbWriter(11)
    .stringKey('s', str)
    .key(5, 'z')
    .len(2)
    .str(member)
    .raw(f64le(1.5))
    .str('m')
    .raw(f64le(-2))
    .key(4, 'h')
    .len(1)
    .str(field)
    .str(value)
    .stringKey('after', 'x')
    .end();

  it('gives the same records for any chunking', () => {
    const opts: RdbDecoderOptions = { captureRaw: true, rawLimit: 4 << 20 };
    const ref = decode(rdb, whole, opts);
    const s = ref.find((r) => r.kind === 'string');
    expect(s?.kind === 'string' && s.value.equals(str)).toBe(true);
    const z = ref.find((r) => r.kind === 'zsetItems');
    expect(z?.kind === 'zsetItems' && z.items[0]!.member.equals(member) && z.items[0]!.score).toBe(1.5);
    const h = ref.find((r) => r.kind === 'hashItems');
    expect(h?.kind === 'hashItems' && h.items[0]!.field.equals(field) && h.items[0]!.value.equals(value)).toBe(true);
    for (const [name, size] of chunkings()) expect(canon(decode(rdb, size, opts)), name).toEqual(canon(ref));
  });

  it('allocates one buffer per long element (plus a little slack), not chunks plus their join', () => {
    const upTo = strBytes(str).length + 64 * KiB + 64;
    const rdbStrZset = new RdbWriter(11).stringKey('s', str).key(5, 'z').len(1).str(member).raw(f64le(1)).end();
    const sizes = bigAllocations();
    const concat = vi.spyOn(Buffer, 'concat');
    decode(rdbStrZset, () => 1000);
    // The chunks are copied in as they arrive, never kept in a list and joined at the end.
    const joined = concat.mock.calls.reduce((n, call) => n + (call[0] as Buffer[]).reduce((m, b) => m + b.length, 0), 0);
    expect(joined).toBeLessThan(64 * KiB);
    expect(sizes).toHaveLength(2);
    expect(sizes[0]).toBeGreaterThan(str.length);
    expect(sizes[0]).toBeLessThanOrEqual(upTo);
    // The score after the member lands in the slack: no second copy of the member.
    expect(sizes[1]).toBeGreaterThan(member.length);
    expect(sizes[1]).toBeLessThanOrEqual(member.length + 64 * KiB + 64);
  });

  it('lets no later record keep the long element\'s buffer alive', () => {
    // The chunk that completes the string also holds the next keys: their names and values
    // must not be views into the string's buffer (a kept key name would pin 2 MiB).
    const file = new RdbWriter(11).stringKey('s', str).stringKey('next', 'v').key(5, 'z').len(1).str(member).raw(f64le(1)).stringKey('last', 'w').end();
    for (const size of [65536, 300 * KiB, file.length]) {
      const recs = decode(file, () => size);
      const longBuffers = new Set<ArrayBufferLike>();
      for (const r of recs) {
        if (r.kind === 'string' && r.value.length > 1000) longBuffers.add(r.value.buffer);
        if (r.kind === 'zsetItems') longBuffers.add(r.items[0]!.member.buffer);
      }
      expect(longBuffers.size, `${size}`).toBe(size === file.length ? 1 : 2);
      if (size === file.length) continue; // one push: everything is a view of the caller's chunk
      for (const r of recs) {
        if (r.kind === 'keyStart' && r.key.toString() !== 's' && r.key.toString() !== 'z') expect(longBuffers.has(r.key.buffer), r.key.toString()).toBe(false);
        if (r.kind === 'string' && r.value.length < 1000) expect(longBuffers.has(r.value.buffer)).toBe(false);
      }
    }
  });

  it('fails cleanly on a length far beyond the input', () => {
    // 1 GiB declared, a few bytes given: the decoder reserves it and reports the truncation.
    const file = Buffer.concat([new RdbWriter(11).key(0, 'k').raw(lenBytes(1 << 30, 32)).end().subarray(0, -9), Buffer.alloc(300 * KiB)]);
    const d = new RdbDecoder();
    let err: unknown = null;
    try {
      for (let i = 0; i < file.length; i += 4096) d.push(file.subarray(i, i + 4096));
      d.finish();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RdbError);
    // A string that long goes out in pieces: only the first piece's bytes are ever reserved.
    expect((err as RdbError).message).toMatch(/truncated: expected byte 1 of the 1073741824-byte string value of key "k"/);
  });
});

describe('long elements under mutation', () => {
  const w = new RdbWriter(11);
  // Offsets of the value headers, where flips change lengths and encodings.
  const heads: number[] = [];
  const mark = (): RdbWriter => (heads.push(w.length), w);
  w.key(0, 'raw');
  mark().str(randomBytes(300 * KiB, 42)).key(0, 'lzf');
  mark().raw(lzfValue(compressible(300 * KiB, 41))).key(2, 'set').len(2);
  mark().raw(lzfValue(compressible(260 * KiB, 43))).str('x').key(5, 'zset').len(1);
  mark().str(randomBytes(270 * KiB, 44)).raw(f64le(3));
  mark().stringKey('after', 'v');
  const file = w.end();

  it('flipped bytes and truncations: the same RdbError or records for any chunking', () => {
    const at = fc.oneof(
      fc.nat({ max: file.length - 1 }),
      fc.tuple(fc.constantFrom(...heads), fc.nat({ max: 12 })).map(([h, d]) => h + d),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(at, fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        fc.option(fc.nat({ max: file.length }), { nil: undefined }),
        fc.array(fc.nat({ max: file.length }), { maxLength: 10 }),
        fc.boolean(),
        (flips, cut, rawCuts, skip) => {
          let buf = Buffer.from(file);
          for (const [i, v] of flips) buf[i] = v;
          if (cut !== undefined) buf = buf.subarray(0, cut);
          const bounds = [...new Set(rawCuts)].filter((c) => c > 0 && c < buf.length).sort((a, b) => a - b);
          const sizes = [...bounds, buf.length].map((c, j, all) => c - (j === 0 ? 0 : all[j - 1]!));
          const opts: RdbDecoderOptions = { onCorruptValue: skip ? 'skip' : 'fail', captureRaw: true, verifyChecksum: false };
          expect(attempt(buf, (j) => sizes[j] ?? buf.length, opts)).toEqual(attempt(buf, whole, opts));
        },
      ),
      { numRuns: 60 },
    );
  });
});
