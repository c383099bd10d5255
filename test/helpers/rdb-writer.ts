/**
 * A tiny RDB writer for tests: builds files and blobs byte by byte, including encodings no
 * current server writes (old versions, forced wide encodings, pre-GA types, Valkey 9 types).
 * It writes exactly what it is told; nothing here is used by the decoder.
 */
import { crc64 } from '../../src/rdb/crc64.js';

type Bytes = Buffer | number[] | string;

const toBuf = (b: Bytes): Buffer => (Buffer.isBuffer(b) ? b : typeof b === 'string' ? Buffer.from(b, 'latin1') : Buffer.from(b));

/** RDB length encoding (§2.3); `width` forces a wider form than needed. */
export function lenBytes(n: number | bigint, width?: 6 | 14 | 32 | 64): Buffer {
  const v = BigInt(n);
  const w = width ?? (v < 64n ? 6 : v < 16384n ? 14 : v <= 0xffffffffn ? 32 : 64);
  if (w === 6) return Buffer.from([Number(v)]);
  if (w === 14) return Buffer.from([0x40 | Number(v >> 8n), Number(v & 0xffn)]);
  if (w === 32) {
    const b = Buffer.alloc(5);
    b[0] = 0x80;
    b.writeUInt32BE(Number(v), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0x81;
  b.writeBigUInt64BE(v, 1);
  return b;
}

/** A length-prefixed raw RDB string. */
export function strBytes(s: Bytes, width?: 6 | 14 | 32 | 64): Buffer {
  const b = toBuf(s);
  return Buffer.concat([lenBytes(b.length, width), b]);
}

/** An int-encoded RDB string (0xC0/C1/C2). */
export function intStrBytes(n: number): Buffer {
  if (n >= -128 && n <= 127) return Buffer.from([0xc0, n & 0xff]);
  if (n >= -32768 && n <= 32767) {
    const b = Buffer.alloc(3);
    b[0] = 0xc1;
    b.writeInt16LE(n, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = 0xc2;
  b.writeInt32LE(n, 1);
  return b;
}

/** LZF data made of literal runs only (valid LZF, no compression). */
export function lzfLiteral(data: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 32) {
    const run = data.subarray(i, i + 32);
    out.push(run.length - 1, ...run);
  }
  return Buffer.from(out);
}

/** An LZF-compressed RDB string (0xC3) from already-compressed data. */
export function lzfStrBytes(compressed: Buffer, uncompressedLength: number): Buffer {
  return Buffer.concat([Buffer.from([0xc3]), lenBytes(compressed.length), lenBytes(uncompressedLength), compressed]);
}

export function u16le(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}
export function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
export function i32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b;
}
export function i64le(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(n));
  return b;
}
export function f64le(d: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(d);
  return b;
}
/** A raw 16-byte stream ID (ms u64be, seq u64be). */
export function streamIdBytes(ms: number | bigint, seq: number | bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(BigInt(ms), 0);
  b.writeBigUInt64BE(BigInt(seq), 8);
  return b;
}

export class RdbWriter {
  private readonly parts: Buffer[] = [];

  constructor(
    readonly version = 12,
    readonly magic: 'REDIS' | 'VALKEY' = 'REDIS',
  ) {
    const digits = magic === 'REDIS' ? String(version).padStart(4, '0') : String(version).padStart(3, '0');
    this.parts.push(Buffer.from(`${magic}${digits}`, 'latin1'));
  }

  /** Current size (the absolute offset of the next byte). */
  get length(): number {
    return this.parts.reduce((n, p) => n + p.length, 0);
  }

  raw(...b: Bytes[]): this {
    for (const x of b) this.parts.push(toBuf(x));
    return this;
  }
  len(n: number | bigint, width?: 6 | 14 | 32 | 64): this {
    return this.raw(lenBytes(n, width));
  }
  str(s: Bytes, width?: 6 | 14 | 32 | 64): this {
    return this.raw(strBytes(s, width));
  }
  aux(k: string, v: Bytes): this {
    return this.raw([0xfa], strBytes(k), strBytes(v));
  }
  selectDb(db: number): this {
    return this.raw([0xfe], lenBytes(db));
  }
  resizeDb(size: number, expires: number): this {
    return this.raw([0xfb], lenBytes(size), lenBytes(expires));
  }
  expireMs(ms: number | bigint): this {
    return this.raw([0xfc], i64le(ms));
  }
  expireSec(s: number): this {
    return this.raw([0xfd], i32le(s));
  }
  idle(s: number): this {
    return this.raw([0xf8], lenBytes(s));
  }
  freq(f: number): this {
    return this.raw([0xf9, f]);
  }
  /** Type byte and key name; the value follows with raw()/str()/len(). */
  key(type: number, name: Bytes): this {
    return this.raw([type], strBytes(name));
  }
  stringKey(name: Bytes, value: Bytes): this {
    return this.key(0, name).str(value);
  }

  /** EOF opcode plus, for RDB >= 5, the CRC-64 trailer (or zeros). */
  end(opts: { checksum?: boolean } = {}): Buffer {
    this.parts.push(Buffer.from([0xff]));
    const body = Buffer.concat(this.parts);
    if (this.version < 5 && this.magic === 'REDIS') return body;
    const trailer = Buffer.alloc(8);
    if (opts.checksum !== false) trailer.writeBigUInt64LE(crc64(body));
    return Buffer.concat([body, trailer]);
  }
}

// ---- Compact blobs ----------------------------------------------------------------------

/** A ziplist entry: a string, or an integer with an optional forced encoding. */
export type ZlEntry =
  | string
  | Buffer
  | { int: number | bigint; enc?: 'imm' | 'i8' | 'i16' | 'i24' | 'i32' | 'i64' }
  | { str: Bytes; enc: '6' | '14' | '32' };

function zlEncode(e: ZlEntry): Buffer {
  if (typeof e === 'string' || Buffer.isBuffer(e) || 'str' in e) {
    const data = typeof e === 'string' || Buffer.isBuffer(e) ? toBuf(e) : toBuf(e.str);
    const enc = typeof e === 'object' && !Buffer.isBuffer(e) && 'enc' in e ? e.enc : data.length < 64 ? '6' : data.length < 16384 ? '14' : '32';
    if (enc === '6') return Buffer.concat([Buffer.from([data.length]), data]);
    if (enc === '14') return Buffer.concat([Buffer.from([0x40 | (data.length >> 8), data.length & 0xff]), data]);
    const h = Buffer.alloc(5);
    h[0] = 0x80;
    h.writeUInt32BE(data.length, 1);
    return Buffer.concat([h, data]);
  }
  const v = BigInt(e.int);
  const enc =
    e.enc ??
    (v >= 0n && v <= 12n ? 'imm' : v >= -128n && v <= 127n ? 'i8' : v >= -32768n && v <= 32767n ? 'i16' : v >= -8388608n && v <= 8388607n ? 'i24' : v >= -2147483648n && v <= 2147483647n ? 'i32' : 'i64');
  switch (enc) {
    case 'imm':
      return Buffer.from([0xf1 + Number(v)]);
    case 'i8':
      return Buffer.from([0xfe, Number(v) & 0xff]);
    case 'i16': {
      const b = Buffer.alloc(3);
      b[0] = 0xc0;
      b.writeInt16LE(Number(v), 1);
      return b;
    }
    case 'i24': {
      const b = Buffer.alloc(4);
      b[0] = 0xf0;
      b.writeIntLE(Number(v), 1, 3);
      return b;
    }
    case 'i32': {
      const b = Buffer.alloc(5);
      b[0] = 0xd0;
      b.writeInt32LE(Number(v), 1);
      return b;
    }
    case 'i64': {
      const b = Buffer.alloc(9);
      b[0] = 0xe0;
      b.writeBigInt64LE(v, 1);
      return b;
    }
  }
}

/** A ziplist; `widePrevlen` lists entry indexes whose prevlen uses the 5-byte form. */
export function ziplist(entries: ZlEntry[], opts: { widePrevlen?: number[]; count?: number } = {}): Buffer {
  const body: Buffer[] = [];
  let prev = 0;
  let offset = 10;
  let tail = 10;
  entries.forEach((e, i) => {
    const enc = zlEncode(e);
    const prevlen = prev < 254 && !opts.widePrevlen?.includes(i) ? Buffer.from([prev]) : Buffer.concat([Buffer.from([0xfe]), u32le(prev)]);
    const entry = Buffer.concat([prevlen, enc]);
    tail = offset;
    body.push(entry);
    offset += entry.length;
    prev = entry.length;
  });
  const total = offset + 1;
  return Buffer.concat([u32le(total), u32le(tail), u16le(opts.count ?? Math.min(entries.length, 65535)), ...body, Buffer.from([0xff])]);
}

/** A listpack element: a string, or an integer with an optional forced encoding. */
export type LpEntry =
  | string
  | Buffer
  | { int: number | bigint; enc?: 'u7' | 'i13' | 'i16' | 'i24' | 'i32' | 'i64' }
  | { str: Bytes; enc: '6' | '12' | '32' };

function lpBacklen(l: number): Buffer {
  if (l < 128) return Buffer.from([l]);
  if (l < 16383) return Buffer.from([l >> 7, (l & 127) | 128]);
  if (l < 2097151) return Buffer.from([l >> 14, ((l >> 7) & 127) | 128, (l & 127) | 128]);
  if (l < 268435455) return Buffer.from([l >> 21, ((l >> 14) & 127) | 128, ((l >> 7) & 127) | 128, (l & 127) | 128]);
  return Buffer.from([Math.floor(l / 2 ** 28), ((l >> 21) & 127) | 128, ((l >> 14) & 127) | 128, ((l >> 7) & 127) | 128, (l & 127) | 128]);
}

function lpEncode(e: LpEntry): Buffer {
  if (typeof e === 'string' || Buffer.isBuffer(e) || 'str' in e) {
    const data = typeof e === 'string' || Buffer.isBuffer(e) ? toBuf(e) : toBuf(e.str);
    const enc = typeof e === 'object' && !Buffer.isBuffer(e) && 'enc' in e ? e.enc : data.length < 64 ? '6' : data.length < 4096 ? '12' : '32';
    if (enc === '6') return Buffer.concat([Buffer.from([0x80 | data.length]), data]);
    if (enc === '12') return Buffer.concat([Buffer.from([0xe0 | (data.length >> 8), data.length & 0xff]), data]);
    return Buffer.concat([Buffer.from([0xf0]), u32le(data.length), data]);
  }
  const v = BigInt(e.int);
  const enc =
    e.enc ??
    (v >= 0n && v <= 127n ? 'u7' : v >= -4096n && v <= 4095n ? 'i13' : v >= -32768n && v <= 32767n ? 'i16' : v >= -8388608n && v <= 8388607n ? 'i24' : v >= -2147483648n && v <= 2147483647n ? 'i32' : 'i64');
  const n = Number(v);
  switch (enc) {
    case 'u7':
      return Buffer.from([n]);
    case 'i13': {
      const u = n < 0 ? n + 8192 : n;
      return Buffer.from([0xc0 | (u >> 8), u & 0xff]);
    }
    case 'i16': {
      const b = Buffer.alloc(3);
      b[0] = 0xf1;
      b.writeInt16LE(n, 1);
      return b;
    }
    case 'i24': {
      const b = Buffer.alloc(4);
      b[0] = 0xf2;
      b.writeIntLE(n, 1, 3);
      return b;
    }
    case 'i32': {
      const b = Buffer.alloc(5);
      b[0] = 0xf3;
      b.writeInt32LE(n, 1);
      return b;
    }
    case 'i64': {
      const b = Buffer.alloc(9);
      b[0] = 0xf4;
      b.writeBigInt64LE(v, 1);
      return b;
    }
  }
}

/** A listpack; `count` overrides the header element count (65535 = unknown). */
export function listpack(entries: LpEntry[], opts: { count?: number } = {}): Buffer {
  const body = entries.map((e) => {
    const enc = lpEncode(e);
    return Buffer.concat([enc, lpBacklen(enc.length)]);
  });
  const size = 6 + body.reduce((n, b) => n + b.length, 0) + 1;
  return Buffer.concat([u32le(size), u16le(opts.count ?? Math.min(entries.length, 65535)), ...body, Buffer.from([0xff])]);
}

/** An intset of `enc`-byte integers (written in the order given). */
export function intset(values: (number | bigint)[], enc: 2 | 4 | 8): Buffer {
  const b = Buffer.alloc(8 + values.length * enc);
  b.writeUInt32LE(enc, 0);
  b.writeUInt32LE(values.length, 4);
  values.forEach((v, i) => {
    if (enc === 2) b.writeInt16LE(Number(v), 8 + i * 2);
    else if (enc === 4) b.writeInt32LE(Number(v), 8 + i * 4);
    else b.writeBigInt64LE(BigInt(v), 8 + i * 8);
  });
  return b;
}

/** A zipmap of (field, value, free bytes after the value). */
export function zipmap(pairs: [Bytes, Bytes, number?][], declared?: number): Buffer {
  const zlen = (n: number): Buffer => (n < 254 ? Buffer.from([n]) : Buffer.concat([Buffer.from([254]), u32le(n)]));
  const body = pairs.map(([k, v, free = 0]) => {
    const kb = toBuf(k);
    const vb = toBuf(v);
    return Buffer.concat([zlen(kb.length), kb, zlen(vb.length), Buffer.from([free]), vb, Buffer.alloc(free, 0x7a)]);
  });
  return Buffer.concat([Buffer.from([declared ?? Math.min(pairs.length, 254)]), ...body, Buffer.from([0xff])]);
}
