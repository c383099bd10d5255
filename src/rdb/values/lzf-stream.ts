/**
 * A long LZF-compressed string read across units: the header is one unit (which allocates the
 * final Buffer), then each unit decodes the whole tokens buffered so far. The compressed bytes
 * are never gathered (memory stays at the decompressed size, not compressed + decompressed),
 * and the output's pages are touched gradually rather than all at once.
 *
 * For readers whose unit ends with the string (a string value, a list or set element, a
 * PLAIN quicklist node), so the unit can stop right after the header.
 */
import { MAX_STRING_LENGTH, type RdbInput } from '../input.js';
import { BlobError } from '../structure/blob-error.js';
import { lzfDecodeTokens, lzfLengthsPossible, lzfProgress, lzfTokenSize } from '../structure/lzf.js';
import type { ValueContext } from './context.js';

/** LZF strings at least this long (uncompressed) are streamed; shorter ones take one unit. */
export const STREAM_LZF_MIN = 256 * 1024;
/** The string-encoding byte of LZF data. */
export const LZF_ENCODING = 0xc3;

const EMPTY = Buffer.alloc(0);

export class LzfStream {
  /** True between a begin() that returned true and the step() that returned the value. */
  active = false;
  /** Names the string in messages (set per call of begin(), cached with its length names). */
  private what = '';
  private clenWhat = '';
  private ulenWhat = '';
  private out: Buffer = EMPTY;
  /** Bytes written to `out`. */
  private op = 0;
  private clen = 0;
  /** Compressed bytes not read yet. */
  private remaining = 0;
  /** Absolute offset of the compressed data, for error messages. */
  private at = 0;
  /** Found corrupt under onCorruptValue 'skip': read past the rest without decoding. */
  private discard = false;

  constructor(private readonly ctx: ValueContext) {}

  /**
   * If the string at the cursor is LZF data of at least STREAM_LZF_MIN bytes, read its header,
   * allocate its Buffer and return true: the caller's unit ends here and step() takes over.
   * Otherwise leave the cursor where it was and return false. `what` names the string.
   */
  begin(what: string): boolean {
    const input = this.ctx.input;
    const start = input.p;
    if (start >= input.buf.length || input.buf[start] !== LZF_ENCODING) return false;
    if (what !== this.what) this.setWhat(what);
    input.p = start + 1;
    const clen = input.len(this.clenWhat);
    const ulen = input.len(this.ulenWhat);
    if (ulen < STREAM_LZF_MIN) {
      input.p = start;
      return false;
    }
    if (clen > MAX_STRING_LENGTH || ulen > MAX_STRING_LENGTH) {
      throw input.error(`${what}: LZF lengths ${clen}/${ulen} are too large`, input.base + start);
    }
    const at = input.offset;
    const possible = lzfLengthsPossible(clen, ulen);
    // A key already found corrupt (skip mode) only needs its bytes stepped over.
    const skipping = this.ctx.corrupt !== null;
    let out = EMPTY;
    if (possible && !skipping) {
      try {
        out = Buffer.allocUnsafe(ulen);
      } catch (e) {
        throw input.error(`${what}: cannot allocate ${ulen} bytes for the decompressed value (${e instanceof Error ? e.message : String(e)})`, at);
      }
    }
    this.active = true;
    this.out = out;
    this.op = 0;
    this.clen = clen;
    this.remaining = clen;
    this.at = at;
    this.discard = skipping;
    if (!possible && !skipping) this.corrupt(new BlobError(`LZF data of ${clen} bytes cannot decompress to ${ulen} bytes`, at));
    return true;
  }

  /**
   * One unit: decode the whole tokens buffered at the cursor. Returns the value once the last
   * compressed byte was read (an empty Buffer if it was found corrupt in skip mode: the
   * context's `corrupt` is then set), else null. A token cut off by the end of the buffered
   * bytes waits for more input (NEED_MORE).
   */
  step(): Buffer | null {
    if (this.remaining === 0) return this.finish();
    const input = this.ctx.input;
    const start = input.p;
    const end = Math.min(input.buf.length, start + this.remaining);
    if (end <= start) input.short(1);
    if (!this.discard) {
      try {
        lzfDecodeTokens(input.buf, start, end, this.out, this.op, end - start < this.remaining, input.base);
      } catch (e) {
        if (!(e instanceof BlobError)) throw e;
        this.consume(input, end - start);
        this.corrupt(e);
        return this.finish();
      }
      const ip = lzfProgress.ip;
      // A token cut off by the end of the buffered bytes: wait for exactly its bytes (asking
      // for more would make a truncation message depend on where the chunks ended).
      if (ip === start) input.short(lzfTokenSize(input.buf, start, end));
      this.op = lzfProgress.op;
      this.consume(input, ip - start);
    } else {
      this.consume(input, end - start);
    }
    return this.finish();
  }

  private setWhat(what: string): void {
    this.what = what;
    this.clenWhat = `${what} (LZF compressed length)`;
    this.ulenWhat = `${what} (LZF uncompressed length)`;
  }

  /** Forget any string in progress (a new value starts). */
  reset(): void {
    this.active = false;
    this.out = EMPTY;
  }

  /** What is being waited for, for "truncated" messages. */
  describe(): string {
    return `the LZF data of the ${this.what} (byte ${this.clen - this.remaining + 1} of ${this.clen})`;
  }

  private consume(input: RdbInput, n: number): void {
    input.p += n;
    this.remaining -= n;
  }

  private finish(): Buffer | null {
    if (this.remaining > 0) return null;
    if (!this.discard && this.op !== this.out.length) {
      this.corrupt(new BlobError(`LZF data decompressed to ${this.op} bytes, expected ${this.out.length}`, this.at));
    }
    const value = this.out;
    this.active = false;
    this.out = EMPTY;
    return value;
  }

  /** Report corrupt data (throws unless skipping corrupt keys); the rest is read undecoded. */
  private corrupt(err: BlobError): void {
    this.discard = true;
    this.out = EMPTY;
    this.ctx.blobError(new BlobError(`${this.what}: ${err.message}`, err.offset));
  }
}
