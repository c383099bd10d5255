/**
 * The decoder's byte source: one working buffer, a committed position and a read cursor.
 *
 * Parsing happens in small atomic units. A unit reads from `p` (starting at `pos`); when the
 * buffer runs out it records how many bytes it needs (`need`, counted from `pos`) and throws
 * the NEED_MORE sentinel, leaving every decoder field untouched, so the unit is simply run
 * again once more bytes have arrived. When a unit completes, the decoder sets `pos = p`.
 * Units therefore do all their reads first and only then change state or emit records.
 */
import { constants as bufferConstants } from 'node:buffer';
import { RdbError } from '../errors.js';
import { intText } from './structure/int-text.js';
import { lzfDecompress } from './structure/lzf.js';
import { BlobError } from './structure/blob-error.js';

/** Thrown (never escapes the decoder) when a unit needs more input than is buffered. */
export const NEED_MORE: { readonly needMore: true } = Object.freeze({ needMore: true });

const TWO_POW_32 = 4294967296;
/** Longest string the decoder accepts: never above 2^40, and no more than a Buffer can hold. */
export const MAX_STRING_LENGTH = Math.min(2 ** 40, bufferConstants.MAX_LENGTH);

const EMPTY = Buffer.alloc(0);

/** What to do when a blob (LZF, ziplist, ...) inside a key value is corrupt. */
export interface BlobErrorHandler {
  /** Throws an RdbError (fail mode or outside a key) or records the error and returns (skip mode). */
  blobError(err: BlobError): void;
}

export class RdbInput {
  buf: Buffer = EMPTY;
  /** Absolute offset of buf[0] in the RDB. */
  base = 0;
  /** Committed position: the start of the unit being parsed. */
  pos = 0;
  /** Read cursor inside the current unit. */
  p = 0;
  /** Bytes (from pos) the blocked unit needs before it can make progress. */
  need = 0;
  /** RDB version: changes how 10xxxxxx length bytes are read. */
  version = 0;
  /** The header of the key being decoded: its name for error messages, made only when one is needed. */
  keyHeader: { readonly key: Buffer } | undefined = undefined;
  /** Where LZF failures go; set by the decoder. */
  onBlobError: BlobErrorHandler | null = null;
  /** Where strRange() found its string: rangeBuf[rangeAt, rangeAt + rangeLen). */
  rangeBuf: Buffer = EMPTY;
  rangeAt = 0;
  rangeLen = 0;

  /** The name of the key being decoded, for error messages. */
  get key(): Buffer | undefined {
    return this.keyHeader?.key;
  }

  /** Absolute offset of the read cursor. */
  get offset(): number {
    return this.base + this.p;
  }

  /** Record that `n` bytes are needed at the cursor and abandon the unit. */
  short(n: number): never {
    this.need = this.p + n - this.pos;
    throw NEED_MORE;
  }

  /** An RdbError at `at` (default: the cursor), naming the current key. */
  error(message: string, at: number = this.base + this.p): RdbError {
    return new RdbError(message, at, this.key);
  }

  /** Make sure `n` bytes are buffered at the cursor. */
  ensure(n: number): void {
    if (this.p + n > this.buf.length) this.short(n);
  }

  u8(): number {
    const p = this.p;
    if (p >= this.buf.length) this.short(1);
    this.p = p + 1;
    return this.buf[p]!;
  }


  i32le(): number {
    const p = this.p;
    if (p + 4 > this.buf.length) this.short(4);
    this.p = p + 4;
    return this.buf.readInt32LE(p);
  }

  /** A little-endian signed 64-bit integer that must fit a JS number exactly. */
  i64le(what: string): number {
    const p = this.p;
    if (p + 8 > this.buf.length) this.short(8);
    const lo = this.buf.readUInt32LE(p);
    const hi = this.buf.readInt32LE(p + 4);
    if (hi >= 0x200000 || hi < -0x200000) throw this.error(`${what} ${this.buf.readBigInt64LE(p)} is out of range (more than 2^53)`);
    this.p = p + 8;
    return hi * TWO_POW_32 + lo;
  }

  /** A little-endian signed 64-bit integer as a bigint (rare paths only). */
  i64leBig(): bigint {
    const p = this.p;
    if (p + 8 > this.buf.length) this.short(8);
    this.p = p + 8;
    return this.buf.readBigInt64LE(p);
  }

  f64le(): number {
    const p = this.p;
    if (p + 8 > this.buf.length) this.short(8);
    this.p = p + 8;
    return this.buf.readDoubleLE(p);
  }

  /** A view of the next `n` raw bytes. */
  bytes(n: number): Buffer {
    const p = this.p;
    if (p + n > this.buf.length) this.short(n);
    this.p = p + n;
    return this.buf.subarray(p, p + n);
  }

  skip(n: number): void {
    const p = this.p;
    if (p + n > this.buf.length) this.short(n);
    this.p = p + n;
  }

  /**
   * An RDB length (§2.3) as a number. Errors on string-encoding bytes and on values above 2^53.
   * `what` names the length in error messages.
   */
  len(what: string): number {
    const buf = this.buf;
    const p = this.p;
    if (p >= buf.length) this.short(1);
    const b = buf[p]!;
    const kind = b >> 6;
    if (kind === 0) {
      this.p = p + 1;
      return b;
    }
    if (kind === 1) {
      if (p + 2 > buf.length) this.short(2);
      this.p = p + 2;
      return ((b & 0x3f) << 8) | buf[p + 1]!;
    }
    if (kind === 2) {
      if (b === 0x80 || this.version < 8) {
        if (p + 5 > buf.length) this.short(5);
        this.p = p + 5;
        return buf.readUInt32BE(p + 1);
      }
      if (b === 0x81) {
        if (p + 9 > buf.length) this.short(9);
        const hi = buf.readUInt32BE(p + 1);
        const lo = buf.readUInt32BE(p + 5);
        if (hi >= 0x200000) throw this.error(`${what}: 64-bit length ${buf.readBigUInt64BE(p + 1)} is larger than 2^53`);
        this.p = p + 9;
        return hi * TWO_POW_32 + lo;
      }
      throw this.error(`${what}: invalid length byte 0x${hex2(b)}`);
    }
    throw this.error(`${what}: expected a length, found string encoding byte 0x${hex2(b)}`);
  }

  /** A length that may be the sentinel 2^64-1 (returned as -1). */
  lenOrMax(what: string): number {
    const buf = this.buf;
    const p = this.p;
    if (p < buf.length && buf[p] === 0x81 && this.version >= 8) {
      if (p + 9 > buf.length) this.short(9);
      if (buf.readUInt32BE(p + 1) === 0xffffffff && buf.readUInt32BE(p + 5) === 0xffffffff) {
        this.p = p + 9;
        return -1;
      }
    }
    return this.len(what);
  }

  /** A length read as a full unsigned 64-bit bigint (module type ids). */
  lenBig(what: string): bigint {
    const buf = this.buf;
    const p = this.p;
    if (p < buf.length && buf[p] === 0x81 && this.version >= 8) {
      if (p + 9 > buf.length) this.short(9);
      this.p = p + 9;
      return buf.readBigUInt64BE(p + 1);
    }
    return BigInt(this.len(what));
  }

  /** An RDB string (§2.4): raw, int-encoded (as decimal text) or LZF-compressed. */
  str(what: string): Buffer {
    const start = this.p;
    if (start >= this.buf.length) this.short(1);
    const b = this.buf[start]!;
    if (b >= 0xc0) return this.encodedStr(what, start, b);
    this.strRange(what);
    return this.buf.subarray(this.rangeAt, this.rangeAt + this.rangeLen);
  }

  /**
   * Like str(), without making a Buffer for a raw string: its place is left in rangeBuf,
   * rangeAt and rangeLen (a view of the working buffer, which is never written to). Integer
   * and LZF strings are decoded as by str() and the range covers the result.
   */
  strRange(what: string): void {
    const buf = this.buf;
    const start = this.p;
    if (start >= buf.length) this.short(1);
    const b = buf[start]!;
    let at: number;
    let n: number;
    if (b < 0x40) {
      // Fast path: 6-bit length, the common case for keys and small values.
      at = start + 1;
      n = b;
    } else if (b < 0xc0) {
      n = this.len(what);
      if (n > MAX_STRING_LENGTH) throw this.error(`${what}: string length ${n} is too large`, this.base + start);
      at = this.p;
    } else {
      const v = this.encodedStr(what, start, b);
      this.rangeBuf = v;
      this.rangeAt = 0;
      this.rangeLen = v.length;
      return;
    }
    if (at + n > buf.length) {
      this.p = start;
      this.short(at + n - start);
    }
    this.p = at + n;
    this.rangeBuf = buf;
    this.rangeAt = at;
    this.rangeLen = n;
  }

  /** A string stored as an integer or LZF-compressed (encoding byte `b` at `start`). */
  private encodedStr(what: string, start: number, b: number): Buffer {
    const buf = this.buf;
    switch (b) {
      case 0xc0: {
        if (start + 2 > buf.length) this.short(2);
        this.p = start + 2;
        return intText(buf.readInt8(start + 1));
      }
      case 0xc1: {
        if (start + 3 > buf.length) this.short(3);
        this.p = start + 3;
        return intText(buf.readInt16LE(start + 1));
      }
      case 0xc2: {
        if (start + 5 > buf.length) this.short(5);
        this.p = start + 5;
        return intText(buf.readInt32LE(start + 1));
      }
      case 0xc3:
        return this.lzfStr(what, start);
      default:
        throw this.error(`${what}: unknown string encoding byte 0x${hex2(b)}`, this.base + start);
    }
  }

  private lzfStr(what: string, start: number): Buffer {
    this.p = start + 1;
    const clen = this.len(`${what} (LZF compressed length)`);
    const ulen = this.len(`${what} (LZF uncompressed length)`);
    if (clen > MAX_STRING_LENGTH || ulen > MAX_STRING_LENGTH) {
      throw this.error(`${what}: LZF lengths ${clen}/${ulen} are too large`, this.base + start);
    }
    const p = this.p;
    if (p + clen > this.buf.length) this.short(clen);
    this.p = p + clen;
    try {
      return lzfDecompress(this.buf, p, p + clen, ulen, this.base + p);
    } catch (e) {
      if (!(e instanceof BlobError)) throw e;
      const handler = this.onBlobError;
      if (handler === null) throw this.error(`${what}: ${e.message}`, e.offset);
      handler.blobError(new BlobError(`${what}: ${e.message}`, e.offset));
      return EMPTY;
    }
  }

  /** Step over an RDB string without decoding it (module values). */
  skipStr(what: string): void {
    const buf = this.buf;
    const start = this.p;
    if (start >= buf.length) this.short(1);
    const b = buf[start]!;
    if (b < 0xc0) {
      const n = this.len(what);
      if (n > MAX_STRING_LENGTH) throw this.error(`${what}: string length ${n} is too large`, this.base + start);
      this.skip(n);
      return;
    }
    if (b === 0xc0) return this.skipAt(start, 2);
    if (b === 0xc1) return this.skipAt(start, 3);
    if (b === 0xc2) return this.skipAt(start, 5);
    if (b === 0xc3) {
      this.p = start + 1;
      const clen = this.len(`${what} (LZF compressed length)`);
      this.len(`${what} (LZF uncompressed length)`);
      if (clen > MAX_STRING_LENGTH) throw this.error(`${what}: LZF length ${clen} is too large`, this.base + start);
      this.skip(clen);
      return;
    }
    throw this.error(`${what}: unknown string encoding byte 0x${hex2(b)}`, this.base + start);
  }

  private skipAt(start: number, n: number): void {
    if (start + n > this.buf.length) this.short(n);
    this.p = start + n;
  }
}

export function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}
