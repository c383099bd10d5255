/**
 * What ziplist and listpack cursors share: the current element is either a byte range of the
 * blob or an integer, and callers read it as bytes, as an integer or as a sorted-set score.
 */
import { BlobError } from './blob-error.js';
import { intText, intTextLength } from './int-text.js';

const TWO_POW_53 = 9007199254740992;

export abstract class PackedCursor {
  /** Number of elements read so far. */
  count = 0;
  /** True when the current element is an integer entry. */
  isInt = false;
  /** Integer value when |value| < 2^53 (bigVal is null); else approximate. */
  intVal = 0;
  /** Exact value for 64-bit integers outside the safe range, else null. */
  bigVal: bigint | null = null;
  /** Byte range of the current string element. */
  strStart = 0;
  strEnd = 0;
  /** Offset in the blob where the current element starts (for messages). */
  elemStart = 0;

  constructor(
    readonly blob: Buffer,
    /** Absolute RDB offset of blob[0]. */
    readonly absOffset: number,
    /** 'ziplist' / 'listpack', for messages. */
    readonly what: string,
  ) {}

  /** Advance to the next element; false at the end marker. */
  abstract next(): boolean;

  error(message: string, at: number = this.elemStart): BlobError {
    return new BlobError(`${this.what}: ${message} (entry at blob offset ${at}, blob length ${this.blob.length})`, this.absOffset + at);
  }

  /** The current element as bytes: a view for strings, decimal text for integers. */
  value(): Buffer {
    if (!this.isInt) return this.blob.subarray(this.strStart, this.strEnd);
    return this.bigVal === null ? intText(this.intVal) : Buffer.from(this.bigVal.toString(), 'latin1');
  }

  /** Length of value(), without making it. */
  valueLength(): number {
    if (!this.isInt) return this.strEnd - this.strStart;
    return this.bigVal === null ? intTextLength(this.intVal) : this.bigVal.toString().length;
  }

  /** The current element as a sorted-set score (integer entry or double text). */
  score(): number {
    if (this.isInt) return this.intVal;
    const s = parseScore(this.blob, this.strStart, this.strEnd);
    if (s === null) throw this.error(`invalid score ${JSON.stringify(this.blob.toString('latin1', this.strStart, Math.min(this.strEnd, this.strStart + 40)))}`);
    return s;
  }

  /** The current element as an integer (stream fields); integer text is accepted. */
  integer(): number | bigint {
    if (this.isInt) return this.bigVal ?? this.intVal;
    const v = parseInt64Text(this.blob, this.strStart, this.strEnd);
    if (v === null) throw this.error('expected an integer entry');
    return v;
  }

  /** The current element as a non-negative count that fits a number. */
  smallInt(what: string): number {
    const v = this.integer();
    if (typeof v !== 'number' || v < 0) throw this.error(`${what} ${String(v)} is not a valid count`);
    return v;
  }
}

/**
 * Parse a score written as text by Redis (d2string / %.17g / "inf" / "-inf" / "-0").
 * Returns null for anything that is not a number, and for NaN (which Redis refuses).
 */
export function parseScore(buf: Buffer, start: number, end: number): number | null {
  const n = end - start;
  if (n === 0 || n > 400) return null;
  const text = buf.toString('latin1', start, end);
  const lower = text.toLowerCase();
  if (lower === 'inf' || lower === '+inf' || lower === 'infinity' || lower === '+infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  // Number() accepts forms strtod does not ("0x1p3" is fine in both; "" and " " are not numbers).
  if (lower.trim() === '') return null;
  const v = Number(text);
  if (Number.isNaN(v)) return null;
  return v;
}

/** Strict decimal int64 text ("-12"), as Redis's string2ll accepts it; null otherwise. */
export function parseInt64Text(buf: Buffer, start: number, end: number): number | bigint | null {
  const n = end - start;
  if (n === 0 || n > 20) return null;
  let i = start;
  const neg = buf[i] === 0x2d;
  if (neg) i++;
  if (i === end) return null;
  if (buf[i] === 0x30 && end - i > 1) return null;
  let v = 0;
  for (let j = i; j < end; j++) {
    const c = buf[j]!;
    if (c < 0x30 || c > 0x39) return null;
    v = v * 10 + (c - 0x30);
  }
  if (neg && v === 0 && end - i === 1) return 0; // "-0" is not canonical but harmless
  if (v < TWO_POW_53) return neg ? -v : v;
  const big = BigInt(buf.toString('latin1', start, end));
  if (big > 9223372036854775807n || big < -9223372036854775808n) return null;
  return big;
}
