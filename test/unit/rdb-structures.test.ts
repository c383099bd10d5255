/**
 * Hand-built inputs for the encodings and versions the corpus does not cover: every ziplist /
 * listpack / intset / zipmap form, LZF, 64-bit lengths, RDB v1-v6, hash-field-TTL types (GA,
 * pre-GA, Valkey HASH_2), streams v4/v5, modules, KEY_META, ARRAY, DUMP payloads and CRC-64.
 */
import { describe, expect, it } from 'vitest';
import { RdbError } from '../../src/errors.js';
import { KeyAssembler } from '../../src/rdb/assemble.js';
import { crc64, Crc64 } from '../../src/rdb/crc64.js';
import { RdbDecoder } from '../../src/rdb/decoder.js';
import { buildDumpPayload } from '../../src/rdb/dump.js';
import { decodeModuleId, encodeModuleId } from '../../src/rdb/module-id.js';
import type { RdbDecoderOptions, RdbKey, RdbRecord } from '../../src/rdb/types.js';
import {
  RdbWriter,
  f64le,
  i64le,
  intset,
  lenBytes,
  listpack,
  lzfLiteral,
  lzfStrBytes,
  strBytes,
  streamIdBytes,
  u32le,
  ziplist,
  zipmap,
} from '../helpers/rdb-writer.js';

function decode(buf: Buffer, opts: RdbDecoderOptions = {}): RdbRecord[] {
  const d = new RdbDecoder(opts);
  const out = d.push(buf);
  d.finish();
  if (buf.length > 100_000) return out;
  // Byte-at-a-time must agree (cheap here: the inputs are small).
  const d2 = new RdbDecoder(opts);
  const out2: RdbRecord[] = [];
  for (let i = 0; i < buf.length; i++) out2.push(...d2.push(buf.subarray(i, i + 1)));
  d2.finish();
  // Compared as plain data: a record may keep the range of the bytes it was read from (rdb/records.ts).
  expect(out2.map(plain)).toEqual(out.map(plain));
  return out;
}

function plain(rec: RdbRecord): unknown {
  const r = rec as RdbRecord & { toJSON?: () => unknown };
  return typeof r.toJSON === 'function' ? r.toJSON() : rec;
}

function keys(buf: Buffer, opts: RdbDecoderOptions = {}): RdbKey[] {
  const asm = new KeyAssembler();
  const out: RdbKey[] = [];
  for (const r of decode(buf, opts)) {
    const k = asm.push(r);
    if (k) out.push(k);
  }
  return out;
}

function decodeError(buf: Buffer, opts: RdbDecoderOptions = {}): RdbError {
  try {
    const d = new RdbDecoder(opts);
    d.push(buf);
    d.finish();
  } catch (e) {
    expect(e).toBeInstanceOf(RdbError);
    expect((e as Error).message).toMatch(/at byte \d+/);
    return e as RdbError;
  }
  throw new Error('expected an RdbError');
}

const strs = (bs: Buffer[]): string[] => bs.map((b) => b.toString('latin1'));

function one(buf: Buffer, opts?: RdbDecoderOptions): RdbKey {
  const ks = keys(buf, opts);
  expect(ks).toHaveLength(1);
  return ks[0]!;
}

describe('ziplist', () => {
  it('decodes every integer encoding and the 5-byte prevlen holding a small value', () => {
    const entries = [
      { int: 0 },
      { int: 12 },
      { int: 13, enc: 'i8' as const },
      { int: -128, enc: 'i8' as const },
      { int: 127, enc: 'i8' as const },
      { int: -32768, enc: 'i16' as const },
      { int: 32767, enc: 'i16' as const },
      { int: -8388608, enc: 'i24' as const },
      { int: 8388607, enc: 'i24' as const },
      { int: -2147483648, enc: 'i32' as const },
      { int: 2147483647, enc: 'i32' as const },
      { int: -9223372036854775808n, enc: 'i64' as const },
      { int: 9223372036854775807n, enc: 'i64' as const },
      { int: 5, enc: 'i64' as const },
      'plain',
      { str: 'x'.repeat(70), enc: '14' as const },
      { str: 'short-in-32', enc: '32' as const },
    ];
    const zl = ziplist(entries, { widePrevlen: [3, 14] });
    const rdb = new RdbWriter(6).selectDb(0).key(10, 'zl').str(zl).end();
    const k = one(rdb);
    expect(k.type).toBe('list');
    if (k.type !== 'list') return;
    expect(strs(k.value)).toEqual([
      '0', '12', '13', '-128', '127', '-32768', '32767', '-8388608', '8388607', '-2147483648', '2147483647',
      '-9223372036854775808', '9223372036854775807', '5', 'plain', 'x'.repeat(70), 'short-in-32',
    ]);
  });

  it('accepts zllen 65535 (count by walking) and rejects a wrong count, prevlen or tail', () => {
    const ok = ziplist(['a', 'b'], { count: 65535 });
    expect(strs((one(new RdbWriter(9).key(10, 'k').str(ok).end()) as { value: Buffer[] }).value)).toEqual(['a', 'b']);
    const wrongCount = ziplist(['a', 'b'], { count: 3 });
    expect(decodeError(new RdbWriter(9).key(10, 'k').str(wrongCount).end()).message).toMatch(/header says 3/);
    const badPrev = Buffer.from(ziplist(['a', 'b']));
    badPrev[10 + 3] = 9; // prevlen of the second entry
    expect(decodeError(new RdbWriter(9).key(10, 'k').str(badPrev).end()).message).toMatch(/prevlen/);
    const badTail = Buffer.from(ziplist(['a', 'b']));
    badTail.writeUInt32LE(10, 4);
    expect(decodeError(new RdbWriter(9).key(10, 'k').str(badTail).end()).message).toMatch(/tail offset/);
    const runsPast = Buffer.from(ziplist(['abc']));
    runsPast[11] = 40; // string length beyond the blob
    expect(decodeError(new RdbWriter(9).key(10, 'k').str(runsPast).end()).message).toMatch(/ziplist entry runs past its blob \(entry at blob offset 10, blob length 16\)/);
  });

  it('decodes zset (12) and hash (13) ziplists and old quicklists (14) skipping empty nodes', () => {
    const z = ziplist(['m1', { int: 3 }, 'm2', '1.5', 'm3', 'inf', 'm4', '-inf', 'm5', '-0']);
    const h = ziplist(['f1', 'v1', 'f2', { int: -7 }]);
    const rdb = new RdbWriter(9)
      .key(12, 'z').str(z)
      .key(13, 'h').str(h)
      .key(14, 'q').len(3).str(ziplist(['a'])).str(ziplist([])).str(ziplist(['b', { int: 1 }]))
      .key(14, 'empty').len(1).str(ziplist([]))
      .end();
    const d = new RdbDecoder();
    const recs = d.push(rdb);
    d.finish();
    expect(d.emptyKeysSkipped).toBe(1);
    const asm = new KeyAssembler();
    const ks = recs.map((r) => asm.push(r)).filter((k): k is RdbKey => k !== null);
    expect(ks.map((k) => k.key.toString())).toEqual(['z', 'h', 'q']);
    const [zk, hk, qk] = ks;
    if (zk?.type !== 'zset' || hk?.type !== 'hash' || qk?.type !== 'list') throw new Error('types');
    expect(zk.value.map((i) => [i.member.toString(), i.score])).toEqual([['m1', 3], ['m2', 1.5], ['m3', Infinity], ['m4', -Infinity], ['m5', -0]]);
    expect(Object.is(zk.value[4]!.score, -0)).toBe(true);
    expect(hk.value.map((i) => [i.field.toString(), i.value.toString(), i.expireMs])).toEqual([['f1', 'v1', null], ['f2', '-7', null]]);
    expect(strs(qk.value)).toEqual(['a', 'b', '1']);
  });
});

describe('listpack', () => {
  it('decodes every encoding, 13-bit negatives and 1-4 byte backlens', () => {
    const s16k = 'y'.repeat(16400); // L = 16405 -> 3-byte backlen
    const s2m = Buffer.alloc(2097151, 0x7a); // L = 2097156 -> 4-byte backlen
    const entries = [
      { int: 0 },
      { int: 127 },
      { int: -1, enc: 'i13' as const },
      { int: -4096, enc: 'i13' as const },
      { int: 4095, enc: 'i13' as const },
      { int: 128, enc: 'i13' as const },
      { int: -32768, enc: 'i16' as const },
      { int: 32767, enc: 'i16' as const },
      { int: -8388608, enc: 'i24' as const },
      { int: 8388607, enc: 'i24' as const },
      { int: -2147483648, enc: 'i32' as const },
      { int: 2147483647, enc: 'i32' as const },
      { int: -9223372036854775808n, enc: 'i64' as const },
      { int: 9223372036854775807n, enc: 'i64' as const },
      '',
      'x'.repeat(63),
      { str: 'z'.repeat(130), enc: '12' as const }, // L = 132 -> 2-byte backlen
      { str: 'w'.repeat(4095), enc: '12' as const },
      { str: 'tiny', enc: '32' as const },
      s16k,
      s2m,
    ];
    const lp = listpack(entries);
    const rdb = new RdbWriter(11).key(20, 'set').str(lp).end();
    const k = one(rdb);
    if (k.type !== 'set') throw new Error('type');
    expect(k.value.map((b) => (b.length > 100 ? `len${b.length}` : b.toString()))).toEqual([
      '0', '127', '-1', '-4096', '4095', '128', '-32768', '32767', '-8388608', '8388607', '-2147483648', '2147483647',
      '-9223372036854775808', '9223372036854775807', '', 'x'.repeat(63), 'len130', 'len4095', 'tiny', 'len16400', 'len2097151',
    ]);
  });

  it('rejects a bad terminator, a bad backlen and a wrong count', () => {
    const lp = Buffer.from(listpack(['a', 'b']));
    const badEnd = Buffer.from(lp);
    badEnd[badEnd.length - 1] = 0xfe;
    expect(decodeError(new RdbWriter(11).key(20, 's').str(badEnd).end()).message).toMatch(/bad listpack terminator/);
    const badBacklen = Buffer.from(lp);
    badBacklen[8] = 5;
    expect(decodeError(new RdbWriter(11).key(20, 's').str(badBacklen).end()).message).toMatch(/backlen/);
    const badCount = Buffer.from(lp);
    badCount.writeUInt16LE(3, 4);
    expect(decodeError(new RdbWriter(11).key(20, 's').str(badCount).end()).message).toMatch(/header says 3/);
    const unknown = Buffer.from(lp);
    unknown.writeUInt16LE(65535, 4);
    expect(one(new RdbWriter(11).key(20, 's').str(unknown).end()).type).toBe('set');
  });

  it('decodes quicklist 2 with PACKED, PLAIN and LZF nodes; rejects container 3', () => {
    const big = Buffer.alloc(100, 0x41);
    const rdb = new RdbWriter(12)
      .key(18, 'l')
      .len(4)
      .len(2).str(listpack(['a', { int: 1 }]))
      .len(1).raw(lzfStrBytes(lzfLiteral(big), big.length))
      .len(2).str(listpack([]))
      .len(2).raw(lzfStrBytes(lzfLiteral(listpack(['z'])), listpack(['z']).length))
      .end();
    const k = one(rdb);
    if (k.type !== 'list') throw new Error('type');
    expect(k.value.map((b) => b.toString())).toEqual(['a', '1', big.toString(), 'z']);
    const bad = new RdbWriter(12).key(18, 'l').len(1).len(3).str('x').end();
    expect(decodeError(bad).message).toMatch(/quicklist container 3 is not 1 \(PLAIN\) or 2 \(PACKED\)/);
  });
});

describe('intset and zipmap', () => {
  it('decodes 16/32/64-bit intsets and rejects empty or unsorted ones', () => {
    const rdb = new RdbWriter(9)
      .key(11, 'a').str(intset([-5, 1, 300], 2))
      .key(11, 'b').str(intset([-70000, 70000], 4))
      .key(11, 'c').str(intset([-9223372036854775808n, 1n, 9223372036854775807n], 8))
      .end();
    const ks = keys(rdb);
    expect(ks.map((k) => (k.type === 'set' ? strs(k.value) : []))).toEqual([
      ['-5', '1', '300'],
      ['-70000', '70000'],
      ['-9223372036854775808', '1', '9223372036854775807'],
    ]);
    expect(decodeError(new RdbWriter(9).key(11, 'e').str(intset([], 2)).end()).message).toMatch(/intset length is 0/);
    expect(decodeError(new RdbWriter(9).key(11, 'u').str(intset([2, 1], 2)).end()).message).toMatch(/sorted/);
    const enc3 = Buffer.concat([u32le(3), u32le(1), Buffer.from([1, 0, 0])]);
    expect(decodeError(new RdbWriter(9).key(11, 'w').str(enc3).end()).message).toMatch(/encoding 3/);
  });

  it('decodes a zipmap with 5-byte lengths and free bytes (type 9)', () => {
    const long = 'v'.repeat(300);
    const zm = zipmap([['f1', 'v1', 3], ['k'.repeat(260), long, 0], ['e', '', 1]]);
    const k = one(new RdbWriter(2).key(9, 'zm').str(zm).end());
    if (k.type !== 'hash') throw new Error('type');
    expect(k.value.map((h) => [h.field.toString(), h.value.toString()])).toEqual([['f1', 'v1'], ['k'.repeat(260), long], ['e', '']]);
    expect(decodeError(new RdbWriter(2).key(9, 'zm').str(zipmap([['a', 'b']], 2)).end()).message).toMatch(/header says 2/);
  });

  it('rejects a zipmap whose entry count byte is 0xff, naming its offset', () => {
    const zm = zipmap([['a', 'b']], 0xff);
    const rdb = new RdbWriter(2).key(9, 'zm').str(zm).end();
    const err = decodeError(rdb);
    expect(err.message).toMatch(/entry count byte is 0xff/);
    // Blob errors name the offset of the encoded value (its 1-byte length here) plus the blob offset.
    expect(err.offset).toBe(rdb.indexOf(zm) - 1);
    expect(err.message).toMatch(/at blob offset 0/);
    // 0xfe ("count them") stays valid.
    expect(one(new RdbWriter(2).key(9, 'zm').str(zipmap([['a', 'b']], 0xfe)).end()).type).toBe('hash');
  });
});

describe('strings, LZF and lengths', () => {
  it('decodes LZF keys and values with back-references, including overlapping copies', () => {
    // "abc" literal, then copy 9 bytes from 3 back (overlapping) -> "abcabcabcabc".
    const compressed = Buffer.from([0x02, 0x61, 0x62, 0x63, 0xe0, 0x00, 0x02]);
    const rdb = new RdbWriter(9).raw([0], lzfStrBytes(compressed, 12), lzfStrBytes(lzfLiteral(Buffer.from('value!')), 6)).end();
    const k = one(rdb);
    expect(k.key.toString()).toBe('abcabcabcabc');
    expect(k.type === 'string' && k.value.toString()).toBe('value!');
  });

  it('rejects corrupt LZF, and skips just that key under onCorruptValue "skip"', () => {
    const badRef = Buffer.from([0x00, 0x61, 0x20, 0x05]); // back-reference before the start
    const rdb = new RdbWriter(9)
      .key(0, 'bad').raw(lzfStrBytes(badRef, 5))
      .stringKey('good', 'ok')
      .end();
    expect(decodeError(rdb).message).toMatch(/LZF back-reference points/);
    const recs = decode(rdb, { onCorruptValue: 'skip' });
    expect(recs.map((r) => r.kind)).toEqual(['header', 'keyStart', 'keySkipped', 'keyStart', 'string', 'keyEnd', 'end']);
    const wrongLen = new RdbWriter(9).key(0, 'k').raw(lzfStrBytes(lzfLiteral(Buffer.from('abc')), 4)).end();
    expect(decodeError(wrongLen).message).toMatch(/decompressed to 3 bytes, expected 4/);
    const huge = new RdbWriter(9).key(0, 'k').raw(lzfStrBytes(Buffer.from([0, 0x61]), 1 << 30)).end();
    expect(decodeError(huge).message).toMatch(/cannot decompress/);
  });

  it('reads 64-bit, 32-bit and 14-bit length forms everywhere a length is allowed', () => {
    const rdb = new RdbWriter(9)
      .raw([0], strBytes('k64', 64), strBytes('v', 32))
      .key(2, 's').len(2, 64).str('a', 14).str('b', 64)
      .end();
    const ks = keys(rdb);
    expect(ks.map((k) => k.key.toString())).toEqual(['k64', 's']);
    const bad = new RdbWriter(9).raw([0, 0x82, 0, 0, 0, 0]).end();
    expect(decodeError(bad).message).toMatch(/invalid length byte 0x82/);
    const tooBig = new RdbWriter(9).raw([0], lenBytes(2n ** 60n), Buffer.from('x')).end();
    expect(decodeError(tooBig).message).toMatch(/larger than 2\^53|too large/);
  });

  it('decodes int-encoded strings in keys, values and AUX fields', () => {
    const rdb = new RdbWriter(9).raw([0xfa], strBytes('bits'), [0xc0, 0x40]).raw([0], [0xc1, 0x39, 0x30], [0xc2, 0xff, 0xff, 0xff, 0xff]).end();
    const recs = decode(rdb);
    const aux = recs.find((r) => r.kind === 'aux');
    expect(aux?.kind === 'aux' && aux.value.toString()).toBe('64');
    const k = one(rdb);
    expect(k.key.toString()).toBe('12345');
    expect(k.type === 'string' && k.value.toString()).toBe('-1');
    expect(decodeError(new RdbWriter(9).raw([0, 0xc4]).end()).message).toMatch(/unknown string encoding byte 0xc4/);
  });
});

describe('old RDB versions', () => {
  it('v1: EXPIRETIME in seconds, linked list (1), set (2), zset (3) with 254/255 text scores, no checksum', () => {
    const rdb = new RdbWriter(1)
      .selectDb(0)
      .expireSec(1700000000).key(1, 'list').len(2).str('a').str('b')
      .key(2, 'set').len(1).str('m')
      .key(3, 'z').len(4).str('pinf').raw([254]).str('ninf').raw([255]).str('half').raw([3], '0.5').str('big').raw([23], '1.0000000000000001e+300')
      .key(4, 'h').len(1).str('f').str('v')
      .end();
    expect(rdb.at(-1)).toBe(0xff); // no trailer before v5
    const recs = decode(rdb);
    expect(recs.at(-1)).toEqual({ kind: 'end', checksum: 0n, checksumVerified: false });
    const ks = keys(rdb);
    expect(ks.map((k) => [k.key.toString(), k.type, k.expireMs])).toEqual([
      ['list', 'list', 1700000000000],
      ['set', 'set', null],
      ['z', 'zset', null],
      ['h', 'hash', null],
    ]);
    const z = ks[2]!;
    if (z.type !== 'zset') throw new Error('type');
    expect(z.value.map((i) => i.score)).toEqual([Infinity, -Infinity, 0.5, 1e300]);
    const nan = new RdbWriter(1).key(3, 'z').len(1).str('m').raw([253]).end();
    expect(decodeError(nan).message).toMatch(/NaN/);
  });

  it('v4 (no checksum) and v5/v6 (checksum verified; mismatch is an error naming both values)', () => {
    const v4 = new RdbWriter(4).expireMs(1234567890123).stringKey('k', 'v').end();
    expect(one(v4).expireMs).toBe(1234567890123);
    const v6 = new RdbWriter(6).stringKey('k', 'v').end();
    expect(decode(v6).at(-1)).toMatchObject({ kind: 'end', checksumVerified: true });
    const bad = Buffer.from(v6);
    bad[bad.length - 1] ^= 0xff;
    const err = decodeError(bad);
    expect(err.message).toMatch(/checksum mismatch: the file says 0x[0-9a-f]{16}, the data hashes to 0x[0-9a-f]{16}/);
    expect(decode(bad, { verifyChecksum: false }).at(-1)).toMatchObject({ kind: 'end', checksumVerified: false });
    const zero = new RdbWriter(6).stringKey('k', 'v').end({ checksum: false });
    expect(decode(zero).at(-1)).toEqual({ kind: 'end', checksum: 0n, checksumVerified: false });
  });

  it('reports truncation with what was expected', () => {
    const full = new RdbWriter(9).stringKey('k', 'v').end();
    const cut = full.subarray(0, full.length - 3);
    expect(decodeError(cut).message).toMatch(/truncated: expected 8-byte checksum after EOF opcode/);
    const mid = full.subarray(0, 13);
    expect(decodeError(mid).message).toMatch(/truncated: expected the string value of key "k"/);
    expect(decodeError(full.subarray(0, 4)).message).toMatch(/truncated: expected the 9-byte RDB header/);
  });

  it('rejects unknown magic, versions and types', () => {
    expect(decodeError(Buffer.from('RUBIS0009')).message).toMatch(/not an RDB file/);
    expect(decodeError(Buffer.from('REDIS0016')).message).toMatch(/unsupported RDB version 16/);
    expect(decodeError(Buffer.from('VALKEY079')).message).toMatch(/unsupported RDB version 79/);
    expect(decodeError(new RdbWriter(12).raw([0x22]).end()).message).toMatch(/unknown opcode or value type 0x22/);
    expect(decodeError(new RdbWriter(12).key(31, 'k').end()).message).toMatch(/unsupported value type 31/);
    expect(decodeError(new RdbWriter(9).key(6, 'k').end()).message).toMatch(/MODULE_PRE_GA/);
    expect(decodeError(new RdbWriter(80, 'VALKEY').key(24, 'k').end()).message).toMatch(/unsupported value type 24 in a VALKEY file/);
  });
});

describe('hash field expiry types', () => {
  it('HASH_METADATA (24): ttl 0 = none, else ttl + minExpire - 1', () => {
    const min = 1_700_000_000_000;
    const rdb = new RdbWriter(12).key(24, 'h').raw(i64le(min)).len(2).len(0).str('a').str('1').len(5).str('b').str('2').end();
    const k = one(rdb);
    if (k.type !== 'hash') throw new Error('type');
    expect(k.value.map((h) => [h.field.toString(), h.value.toString(), h.expireMs])).toEqual([['a', '1', null], ['b', '2', min + 4]]);
  });

  it('HASH_LISTPACK_EX (25) and the 7.4 RC types 22/23 under REDIS magic', () => {
    const lp = listpack(['a', '1', { int: 0 }, 'b', '2', { int: 4102444800123n }]);
    const ks = keys(
      new RdbWriter(12)
        .key(25, 'ex').raw(i64le(4102444800123)).str(lp)
        .key(23, 'pre23').str(lp)
        .key(22, 'pre22').len(2).len(0).str('x').str('y').len(4102444800000).str('z').str('w')
        .end(),
    );
    expect(ks.map((k) => [k.key.toString(), k.rdbType, k.type === 'hash' ? k.value.map((h) => [h.field.toString(), h.value.toString(), h.expireMs]) : null])).toEqual([
      ['ex', 25, [['a', '1', null], ['b', '2', 4102444800123]]],
      ['pre23', 23, [['a', '1', null], ['b', '2', 4102444800123]]],
      ['pre22', 22, [['x', 'y', null], ['z', 'w', 4102444800000]]],
    ]);
  });

  it('Valkey HASH_2 (22 under VALKEY080): TTL after each pair, -1 = none, < -1 corrupt', () => {
    const rdb = new RdbWriter(80, 'VALKEY').key(22, 'h').len(3).str('a').str('1').raw(i64le(-1)).str('b').str('2').raw(i64le(0)).str('c').str('3').raw(i64le(1800000000000)).end();
    const d = new RdbDecoder();
    d.push(rdb);
    expect(d.magic).toBe('VALKEY');
    expect(d.version).toBe(80);
    const k = one(rdb);
    if (k.type !== 'hash') throw new Error('type');
    expect(k.value.map((h) => h.expireMs)).toEqual([null, 0, 1800000000000]);
    const bad = new RdbWriter(80, 'VALKEY').key(22, 'h').len(1).str('a').str('1').raw(i64le(-2)).end();
    expect(decodeError(bad).message).toMatch(/expire time -2 is invalid/);
  });
});

describe('streams 26 / 27', () => {
  function streamValue(type: 26 | 27): RdbWriter {
    const lp = listpack([
      { int: 2 }, { int: 0 }, { int: 2 }, 'f1', 'f2', { int: 0 }, // master: count, deleted, fields, terminator
      { int: 2 }, { int: 0 }, { int: 0 }, 'a', 'b', { int: 5 }, // SAMEFIELDS entry at the master id
      { int: 0 }, { int: 1 }, { int: -3 }, { int: 1 }, 'g', 'h', { int: 6 }, // own fields, ms+1, seq-3
    ]);
    const w = new RdbWriter(type === 26 ? 13 : 14)
      .key(type, 's')
      .len(1).raw(strBytes(streamIdBytes(1000, 5))).str(lp)
      .len(2).len(1001).len(2) // length, last id
      .len(1000).len(5).len(0).len(0).len(2) // first id, max deleted, entries added
      .len(1) // groups
      .str('grp').len(1001).len(2).raw(lenBytes(2n ** 64n - 1n, 64)).len(1)
      .raw(streamIdBytes(1000, 5), i64le(1700000000000)).len(3)
      .len(1).str('alice').raw(i64le(1700000000001), i64le(-1)).len(1).raw(streamIdBytes(1000, 5));
    if (type === 27) w.len(1).raw(streamIdBytes(1001, 2)); // NACK zone
    // IDMP: duration, max entries, one producer with one entry, then the two counters.
    w.len(60).len(100).len(1).str('prod').len(1).str('iid-1').len(1000).len(5).len(1).len(0);
    return w;
  }

  for (const type of [26, 27] as const) {
    it(`decodes type ${type} and steps over its ${type === 27 ? 'NACK list and ' : ''}IDMP section`, () => {
      const rdb = streamValue(type).stringKey('after', 'x').end();
      const ks = keys(rdb);
      expect(ks.map((k) => k.key.toString())).toEqual(['s', 'after']);
      const s = ks[0]!;
      if (s.type !== 'stream') throw new Error('type');
      expect(s.value.entries.map((e) => [e.id, strs(e.fields)])).toEqual([
        ['1000-5', ['f1', 'a', 'f2', 'b']],
        ['1001-2', ['g', 'h']],
      ]);
      expect(s.value.meta).toEqual({ length: 2, lastId: '1001-2', firstId: '1000-5', maxDeletedId: '0-0', entriesAdded: 2 });
      expect(s.value.groups).toHaveLength(1);
      const g = s.value.groups[0]!;
      expect(g.name.toString()).toBe('grp');
      expect(g.entriesRead).toBeNull();
      expect(g.pel).toEqual([{ id: '1000-5', deliveryTimeMs: 1700000000000, deliveryCount: 3 }]);
      expect(g.consumers.map((c) => [c.name.toString(), c.seenTimeMs, c.activeTimeMs, c.pel])).toEqual([['alice', 1700000000001, -1, ['1000-5']]]);
    });
  }

  it('computes IDs modulo 2^64 and beyond 2^53 exactly', () => {
    const lp = listpack([
      { int: 2 }, { int: 0 }, { int: 1 }, 'f', { int: 0 },
      { int: 2 }, { int: 0 }, { int: 0 }, 'v', { int: 4 },
      { int: 2 }, { int: 1 }, { int: 1 }, 'w', { int: 4 }, // seq 2^64-1 + 1 wraps to 0
    ]);
    const ms = 2n ** 63n + 7n;
    const rdb = new RdbWriter(11)
      .key(21, 's')
      .len(1).raw(strBytes(streamIdBytes(ms, 2n ** 64n - 1n))).str(lp)
      .len(1).raw(lenBytes(ms, 64)).raw(lenBytes(2n ** 64n - 1n, 64))
      .len(0).len(0).len(0).len(0).len(1).len(0)
      .end();
    const k = one(rdb);
    if (k.type !== 'stream') throw new Error('type');
    expect(k.value.entries.map((e) => e.id)).toEqual([`${ms}-18446744073709551615`, `${ms + 1n}-0`]);
    expect(k.value.meta.lastId).toBe(`${ms}-18446744073709551615`);
  });
});

describe('modules, KEY_META and other opcodes', () => {
  it('decodes a MODULE_2 value and a MODULE_AUX record as opaque payloads', () => {
    const id = encodeModuleId('vectorset', 0);
    expect(id).toBe(0xbde72da2bb1eb400n);
    expect(decodeModuleId(id)).toEqual({ name: 'vectorset', encVersion: 0 });
    const modId = encodeModuleId('ReJSON-RL', 3);
    const body = Buffer.concat([lenBytes(modId, 64), lenBytes(2), lenBytes(42), lenBytes(5), strBytes('doc'), lenBytes(3), Buffer.alloc(4), lenBytes(4), f64le(1.5), lenBytes(1), lenBytes(7), lenBytes(0)]);
    const auxId = encodeModuleId('test__rdb', 1);
    const auxBody = Buffer.concat([lenBytes(auxId, 64), lenBytes(2), lenBytes(2), lenBytes(5), strBytes('global'), lenBytes(0)]);
    const rdb = new RdbWriter(9).raw([0xf7], auxBody).key(7, 'm').raw(body).stringKey('s', 'v').end();
    const recs = decode(rdb, { captureRaw: true });
    const aux = recs.find((r) => r.kind === 'moduleAux');
    expect(aux).toEqual({ kind: 'moduleAux', moduleId: auxId, moduleName: 'test__rdb', encVersion: 1, when: 2, payload: auxBody });
    const mod = recs.find((r) => r.kind === 'module');
    expect(mod).toEqual({ kind: 'module', moduleId: modId, moduleName: 'ReJSON-RL', encVersion: 3, payload: body });
    const end = recs.find((r) => r.kind === 'keyEnd');
    expect(end).toEqual({ kind: 'keyEnd', raw: Buffer.concat([Buffer.from([7]), body]), valueBytes: body.length });
    const badOp = new RdbWriter(9).key(7, 'm').raw(lenBytes(modId, 64), lenBytes(9)).end();
    expect(decodeError(badOp).message).toMatch(/unknown module opcode 9/);
    const badWhen = new RdbWriter(9).raw([0xf7], lenBytes(auxId, 64), lenBytes(1), lenBytes(2), lenBytes(0)).end();
    expect(decodeError(badWhen).message).toMatch(/UINT opcode/);
  });

  it('skips Redis 8.6 KEY_META before a key and keeps the key record offset at the first opcode', () => {
    const w = new RdbWriter(13).selectDb(0);
    const start = w.length;
    w.expireMs(4102444800000).raw([0xf3], lenBytes(2), u32le(0x01020301), lenBytes(2), lenBytes(9), lenBytes(0), u32le(7), lenBytes(5), strBytes('meta'), lenBytes(0));
    const rdb = w.stringKey('k', 'v').end();
    const recs = decode(rdb);
    const ks = recs.find((r) => r.kind === 'keyStart');
    expect(ks).toMatchObject({ kind: 'keyStart', offset: start, expireMs: 4102444800000, rdbType: 0 });
    const bad = new RdbWriter(13).raw([0xf3], lenBytes(0)).stringKey('k', 'v').end();
    expect(decodeError(bad).message).toMatch(/KEY_META class count 0/);
  });

  it('handles SLOT_INFO, Valkey SLOT_IMPORT, FUNCTION2, FUNCTION_PRE_GA, RESIZEDB, IDLE and FREQ', () => {
    const redis = new RdbWriter(12)
      .raw([0xf5], strBytes('#!lua name=lib\nreturn 1'))
      .raw([0xf6], strBytes('mylib'), strBytes('LUA'), lenBytes(1), strBytes('desc'), strBytes('redis.register_function()'))
      .selectDb(3).resizeDb(2, 0)
      .raw([0xf4], lenBytes(866), lenBytes(2), lenBytes(0))
      .idle(42).stringKey('a', '1')
      .freq(200).stringKey('b', '2')
      .end();
    const recs = decode(redis);
    expect(recs.filter((r) => r.kind === 'function').map((r) => (r.kind === 'function' ? r.code.toString() : ''))).toEqual([
      '#!lua name=lib\nreturn 1',
      '#!LUA name=mylib\nredis.register_function()',
    ]);
    expect(recs).toContainEqual({ kind: 'slotInfo', slot: 866, keys: 2, expires: 0 });
    expect(recs).toContainEqual({ kind: 'resizeDb', dbSize: 2, expiresSize: 0 });
    const ks = keys(redis);
    expect(ks.map((k) => [k.db, k.lruIdle, k.lfuFreq])).toEqual([[3, 42, null], [3, null, 200]]);
    const valkey = new RdbWriter(80, 'VALKEY').raw([0xf3], strBytes('j'.repeat(40)), lenBytes(2), lenBytes(0), lenBytes(100), lenBytes(200), lenBytes(300)).stringKey('k', 'v').end();
    expect(keys(valkey).map((k) => k.key.toString())).toEqual(['k']);
  });

  it('decodes a Redis 8.8 ARRAY (28)', () => {
    const rdb = new RdbWriter(14).key(28, 'arr').len(4).len(1).len(9)
      .len(0).len(0).str('sds')
      .len(3).len(1).raw(i64le(-42n))
      .len(7).len(2).raw(f64le(2.5))
      .len(8).len(3).str('small')
      .end();
    const k = one(rdb);
    if (k.type !== 'array') throw new Error('type');
    expect(k.insertIndex).toBe(9);
    expect(k.value.map((i) => [i.index, i.value.toString(), i.encoding])).toEqual([[0, 'sds', 'string'], [3, '-42', 'int'], [7, '2.5', 'float'], [8, 'small', 'string']]);
    expect(decodeError(new RdbWriter(14).key(28, 'a').len(0).len(0).end()).message).toMatch(/array element count is 0/);
  });

  it('rejects a key modifier that is not followed by a key', () => {
    expect(decodeError(new RdbWriter(9).expireMs(1).selectDb(1).end()).message).toMatch(/SELECTDB opcode between/);
  });
});

describe('key records', () => {
  it('batches items, skips empty collections and caps raw capture at rawLimit', () => {
    const w = new RdbWriter(9).key(1, 'l').len(10);
    for (let i = 0; i < 10; i++) w.str(`e${i}`);
    const rdb = w.key(2, 'empty').len(0).key(13, 'emptyzl').str(ziplist([])).stringKey('big', 'x'.repeat(100)).end();
    const d = new RdbDecoder({ batchSize: 3, captureRaw: true, rawLimit: 50 });
    const recs = d.push(rdb);
    d.finish();
    expect(d.emptyKeysSkipped).toBe(2);
    const batches = recs.filter((r) => r.kind === 'listItems').map((r) => (r.kind === 'listItems' ? r.items.length : 0));
    expect(batches).toEqual([3, 3, 3, 1]);
    const ends = recs.filter((r) => r.kind === 'keyEnd');
    expect(ends.map((r) => (r.kind === 'keyEnd' ? [r.raw?.length ?? null, r.valueBytes] : null))).toEqual([[32, 31], [null, 102]]);
  });

  it('captures raw values that are valid DUMP payloads (redis-internals §3.1 examples)', () => {
    expect(buildDumpPayload(Buffer.from('00c13930', 'hex'), 10).toString('hex')).toBe('00c139300a009d94ea2793fc08b9');
    const hsetValue = Buffer.from('15000000040082663103827631038266320302' + '01ff', 'hex');
    const zaddValue = Buffer.from('14000000' + '0400' + '816102' + '83312e3504' + '816202' + '0201' + 'ff', 'hex');
    const rdb = new RdbWriter(10)
      .raw([0], strBytes('s1'), [0xc1, 0x39, 0x30])
      .key(16, 'h').str(hsetValue)
      .key(17, 'z').str(zaddValue)
      .end();
    const ks = keys(rdb, { captureRaw: true });
    expect(ks.map((k) => k.raw?.toString('hex'))).toEqual(['00c13930', `1015${hsetValue.toString('hex')}`, `1114${zaddValue.toString('hex')}`]);
    const h = ks[1]!;
    if (h.type !== 'hash') throw new Error('type');
    expect(h.value.map((i) => [i.field.toString(), i.value.toString()])).toEqual([['f1', 'v1'], ['f2', '2']]);
    const z = ks[2]!;
    if (z.type !== 'zset') throw new Error('type');
    expect(z.value.map((i) => [i.member.toString(), i.score])).toEqual([['a', 1.5], ['b', 2]]);
    const payload = buildDumpPayload(ks[0]!.raw!, 10);
    expect(payload.subarray(0, -8).toString('hex')).toBe('00c139300a00');
    expect(payload.readBigUInt64LE(payload.length - 8)).toBe(crc64(payload.subarray(0, -8)));
  });

  it('skips a key with a corrupt listpack under onCorruptValue "skip", failing otherwise', () => {
    const bad = Buffer.from(listpack(['a', 'b']));
    bad[bad.length - 1] = 0;
    const rdb = new RdbWriter(11).key(20, 'bad').str(bad).stringKey('good', 'v').end();
    expect(decodeError(rdb).message).toMatch(/bad listpack terminator .* \(key "bad"\)/);
    const recs = decode(rdb, { onCorruptValue: 'skip' });
    expect(recs.map((r) => r.kind)).toEqual(['header', 'keyStart', 'keySkipped', 'keyStart', 'string', 'keyEnd', 'end']);
    const skipped = recs[2]!;
    expect(skipped.kind === 'keySkipped' && skipped.error.message).toMatch(/listpack/);
  });
});

describe('crc64', () => {
  it('matches the check values of redis-internals §2.15', () => {
    expect(crc64(Buffer.from('123456789'))).toBe(0xe9c6d914c4b8d9can);
    const li =
      'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.';
    const withNul = Buffer.concat([Buffer.from(li), Buffer.from([0])]);
    expect(withNul.length).toBe(446);
    expect(crc64(withNul)).toBe(0xc7794709e69683b3n);
  });

  it('is incremental and agrees with the bitwise definition at any alignment', () => {
    const bitwise = (buf: Uint8Array): bigint => {
      let crc = 0n;
      for (const b of buf) {
        crc ^= BigInt(b);
        for (let i = 0; i < 8; i++) crc = crc & 1n ? (crc >> 1n) ^ 0x95ac9329ac4bc9b5n : crc >> 1n;
      }
      return crc;
    };
    const data = Buffer.alloc(1000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
    for (const off of [0, 1, 2, 3, 5]) {
      const view = data.subarray(off, off + 700);
      const expected = bitwise(view);
      expect(crc64(view)).toBe(expected);
      const c = new Crc64();
      c.update(view, 0, 333);
      c.update(view, 333);
      expect(c.value()).toBe(expected);
      expect(crc64(view.subarray(333), crc64(view.subarray(0, 333)))).toBe(expected);
    }
  });
});
