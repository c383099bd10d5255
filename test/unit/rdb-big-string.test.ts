/**
 * String values of 1 MiB or more (plain and LZF) flow through as `stringPart` records: the
 * same records for any chunking, the exact bytes, never one big Buffer, the CRC and raw
 * capture intact, corrupt data failing or skipped; and every consumer (commands, JSON lines,
 * stats) gives what it gives for the whole value.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonlWriter } from '../../src/export/jsonl.js';
import { OutputBuffer } from '../../src/export/output.js';
import { StatsCollector } from '../../src/export/stats.js';
import type { RdbRecord } from '../../src/rdb/types.js';
import { Translator, type Command } from '../../src/translate/translator.js';
import { attempt, bigAllocations, canon, chunkings, compressible, decode, lzfCompress, lzfValue, randomBytes, rng, whole } from '../helpers/big-values.js';
import { RdbWriter, lzfStrBytes, strBytes } from '../helpers/rdb-writer.js';

const KiB = 1024;
const MiB = 1024 * KiB;

afterEach(() => {
  vi.restoreAllMocks();
});

const plain = randomBytes(5 * MiB + 123, 1);
const packed = compressible(3 * MiB + 77, 2);
const rdb = new RdbWriter(11)
  .stringKey('before', 'x')
  .expireMs(4102444800000)
  .stringKey('plain', plain)
  .key(0, 'lzf')
  .raw(lzfValue(packed))
  .stringKey('after', 'z')
  .end();

/** The string value of each key, gathered from its stringPart records; fails on a gap. */
function values(recs: RdbRecord[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let cur = '';
  let parts: Buffer[] = [];
  for (const r of recs) {
    if (r.kind === 'keyStart') {
      cur = r.key.toString();
      parts = [];
    } else if (r.kind === 'string') {
      out.set(cur, r.value);
    } else if (r.kind === 'stringPart') {
      expect(r.offset).toBe(parts.reduce((n, b) => n + b.length, 0));
      parts.push(r.value);
      if (r.offset + r.value.length === r.total) out.set(cur, Buffer.concat(parts));
    }
  }
  return out;
}

/** The records with every run of stringPart records replaced by one `string` record (the whole-value path). */
function joined(recs: RdbRecord[]): RdbRecord[] {
  const out: RdbRecord[] = [];
  let parts: Buffer[] = [];
  for (const r of recs) {
    if (r.kind !== 'stringPart') {
      out.push(r);
      continue;
    }
    parts.push(r.value);
    if (r.offset + r.value.length === r.total) {
      out.push({ kind: 'string', value: Buffer.concat(parts) });
      parts = [];
    }
  }
  return out;
}

describe('long strings come as stringPart records', () => {
  it('gives the exact bytes in pieces of at most 1 MiB, the same for any chunking', () => {
    const ref = decode(rdb, whole);
    const v = values(ref);
    expect(v.get('plain')!.equals(plain)).toBe(true);
    expect(v.get('lzf')!.equals(packed)).toBe(true);
    expect(v.get('before')!.toString()).toBe('x');
    expect(ref.some((r) => r.kind === 'string' && r.value.length > 1000)).toBe(false);
    const parts = ref.filter((r) => r.kind === 'stringPart');
    expect(parts.length).toBeGreaterThanOrEqual(9);
    for (const p of parts) expect(p.kind === 'stringPart' && p.value.length).toBeLessThanOrEqual(MiB);
    // Pieces start at multiples of 1 MiB: aligned with the SET/SETRANGE commands, which then copy nothing.
    for (const p of parts) expect(p.kind === 'stringPart' && p.offset % MiB).toBe(0);
    expect(ref.at(-1)).toMatchObject({ kind: 'end', checksumVerified: true });
    const r = rng(5);
    const sizes: [string, (i: number) => number][] = [...chunkings(), ['random 1..300000', () => 1 + Math.floor(r() * 300_000)]];
    for (const [name, size] of sizes) expect(canon(decode(rdb, size)), name).toEqual(canon(ref));
  });

  it('never allocates a Buffer near the size of the value', () => {
    const sizes = bigAllocations();
    decode(rdb, () => 64 * KiB);
    expect(sizes.length).toBeGreaterThan(0);
    expect(Math.max(...sizes)).toBeLessThan(MiB + 80 * KiB);
  });

  it('keeps raw capture (DUMP payloads) up to rawLimit, and the value sizes', () => {
    const withRaw = decode(rdb, () => 50_000, { captureRaw: true, rawLimit: 8 * MiB });
    const ends = withRaw.filter((r) => r.kind === 'keyEnd');
    const plainEnd = ends[1]!;
    expect(plainEnd.kind === 'keyEnd' && plainEnd.raw?.equals(Buffer.concat([Buffer.from([0]), strBytes(plain)]))).toBe(true);
    expect(plainEnd.kind === 'keyEnd' && plainEnd.valueBytes).toBe(strBytes(plain).length);
    const lzfEnd = ends[2]!;
    expect(lzfEnd.kind === 'keyEnd' && lzfEnd.raw?.equals(Buffer.concat([Buffer.from([0]), lzfValue(packed)]))).toBe(true);
    const limited = decode(rdb, () => 50_000, { captureRaw: true, rawLimit: 4 * MiB });
    expect(limited.filter((r) => r.kind === 'keyEnd').map((r) => r.kind === 'keyEnd' && r.raw !== null)).toEqual([true, false, true, true]);
  });

  it('corrupt LZF in a long string: fails with the offset for any chunking, or skips just that key', () => {
    const data = compressible(2 * MiB, 9);
    const c = lzfCompress(data);
    // Declared longer than the data makes: noticed only at its last byte.
    const file = new RdbWriter(11).key(0, 'bad').raw(lzfStrBytes(c, data.length + 5)).stringKey('after', 'z').end();
    const failed = attempt(file, whole);
    expect(failed).toMatch(/string value: LZF data decompressed to 2097152 bytes, expected 2097157 at byte \d+ \(key "bad"\)/);
    for (const [name, size] of chunkings()) expect(attempt(file, size), name).toEqual(failed);
    // Declared shorter: the last window stops at the declared end.
    const over = new RdbWriter(11).key(0, 'bad').raw(lzfStrBytes(c, data.length - 5)).end();
    const overflow = attempt(over, whole);
    expect(overflow).toMatch(/string value: LZF output overflows the declared length 2097147 at byte \d+ \(key "bad"\)/);
    for (const [name, size] of chunkings()) expect(attempt(over, size), name).toEqual(overflow);
    const skipped = decode(file, () => 4096, { onCorruptValue: 'skip' });
    expect(skipped.filter((r) => r.kind === 'keySkipped')).toHaveLength(1);
    expect(values(skipped).get('after')?.toString()).toBe('z');
  });

  it('a back-reference reaching 8 KiB back across a window boundary decodes', () => {
    // A literal 8 KiB block repeated: every copy refers exactly 8192 bytes back.
    const block = randomBytes(8 * KiB, 3);
    const data = Buffer.concat(Array.from({ length: 200 }, () => block));
    const file = new RdbWriter(11).key(0, 'rep').raw(lzfStrBytes(lzfCompress(data, 8192), data.length)).end();
    expect(values(decode(file, () => 10_000)).get('rep')!.equals(data)).toBe(true);
  });
});

describe('consumers of stringPart records', () => {
  const recs = decode(rdb, () => 64 * KiB);

  it('commands: the same SET/SETRANGE/PEXPIREAT as for the whole value', () => {
    for (const batchBytes of [MiB, 64 * KiB, 8 * MiB]) {
      const opts = { batchBytes, now: () => 0 };
      const a = new Translator(opts);
      const b = new Translator(opts);
      const pieces = recs.flatMap((r) => a.push(r));
      const whole = joined(recs).flatMap((r) => b.push(r));
      expect(canon(pieces as unknown as RdbRecord[]), `${batchBytes}`).toEqual(canon(whole as unknown as RdbRecord[]));
      expect(pieces.some((c: Command) => c[0] === 'SETRANGE')).toBe(batchBytes < 8 * MiB);
    }
  });

  it('restore mode writes a string above the buffer limit with commands, held bytes bounded', () => {
    const t = new Translator({ mode: 'restore', restoreBufferBytes: 2 * MiB, now: () => 0 });
    const withRaw = decode(rdb, () => 64 * KiB, { captureRaw: true, rawLimit: 2 * MiB });
    const cmds = withRaw.flatMap((r) => t.push(r));
    const verbs = cmds.map((c) => String(c[0]));
    expect(verbs.filter((v) => v === 'RESTORE')).toHaveLength(2); // before, after
    expect(verbs.filter((v) => v === 'SET')).toHaveLength(2); // plain, lzf: first piece of each
    expect(verbs.includes('SETRANGE')).toBe(true);
  });

  it('JSON lines: identical output for text, late binary, early binary and cut-off UTF-8 values', async () => {
    const text = Buffer.from('ab"c\\ é€😀 '.repeat(120_000));
    const lateBinary = Buffer.concat([text, Buffer.from([1])]);
    const earlyBinary = Buffer.concat([Buffer.from([0]), text]);
    const cutUtf8 = Buffer.concat([text, Buffer.from([0xe2, 0x82])]);
    const r = rng(11);
    for (const value of [text, lateBinary, earlyBinary, cutUtf8, plain]) {
      const head: RdbRecord = { kind: 'keyStart', db: 0, key: Buffer.from('k'), rdbType: 0, type: 'string', expireMs: null, lruIdle: null, lfuFreq: null, offset: 0 };
      const parts: RdbRecord[] = [];
      for (let o = 0; o < value.length; ) {
        const n = Math.min(value.length - o, 1 + Math.floor(r() * 200_000));
        parts.push({ kind: 'stringPart', value: value.subarray(o, o + n), offset: o, total: value.length });
        o += n;
      }
      const end: RdbRecord = { kind: 'keyEnd', raw: null, valueBytes: value.length };
      const streamed = await jsonl([head, ...parts, end]);
      const reference = await jsonl([head, { kind: 'string', value }, end]);
      expect(streamed.equals(reference)).toBe(true);
    }
    const out = JSON.parse((await jsonl(joined(recs))).toString().split('\n')[1]!) as { value: { b64: string } };
    expect(Buffer.from(out.value.b64, 'base64').equals(plain)).toBe(true);
  });

  it('stats: one element and the stored size', () => {
    const stats = new StatsCollector({ top: 1 });
    for (const rec of recs) stats.push(rec);
    expect(stats.stats.top[0]).toMatchObject({ bytes: strBytes(plain).length, elements: 1 });
  });
});

async function jsonl(records: RdbRecord[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  const out = new OutputBuffer(sink, 64 * KiB);
  const w = new JsonlWriter(out);
  for (const r of records) w.push(r);
  await out.end();
  return Buffer.concat(chunks);
}

