/**
 * A long LZF-compressed string read across units: the header is one unit (which allocates the
 * final Buffer), then each unit decodes the whole tokens buffered so far. The compressed bytes
 * are never gathered (memory stays at the decompressed size, not compressed + decompressed),
 * and the output's pages are touched gradually rather than all at once.
 *
 * For readers whose unit ends with the string (a string value, a list or set element, a
 * PLAIN quicklist node), so the unit can stop right after the header.
 *
 * A string value of STREAM_STRING_MIN bytes or more is never held whole (`pieces` mode):
 * it is decompressed into a window of WINDOW_PIECE bytes plus the 8 KiB before them (LZF
 * back-references reach at most 8 KiB back), and each piece goes out as a `stringPart`
 * record, a view of its window; the next window is a new Buffer. Pieces start at multiples
 * of WINDOW_PIECE (the same for any chunking, and aligned with the 1 MiB SET/SETRANGE pieces).
 */
import { MAX_STRING_LENGTH, type RdbInput } from '../input.js';
import { BlobError } from '../structure/blob-error.js';
import { lzfDecodeTokens, lzfLengthsPossible, lzfProgress, lzfTokenSize } from '../structure/lzf.js';
import type { ValueContext } from './context.js';

/** LZF strings at least this long (uncompressed) are streamed; shorter ones take one unit. */
export const STREAM_LZF_MIN = 256 * 1024;
/** The string-encoding byte of LZF data. */
export const LZF_ENCODING = 0xc3;
/** String values at least this long come as `stringPart` records (see ../types.ts). */
export const STREAM_STRING_MIN = 1024 * 1024;
/** Output bytes a window holds for emitting, and the history it keeps in front of them. */
const WINDOW_PIECE = 1024 * 1024;
const WINDOW_HISTORY = 8192;
/** Room after the piece for the token that crosses its end (one token writes at most 264 bytes). */
const WINDOW_SLACK = 264;

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
  /** Pieces mode (for the string begun last): `out` is a window; value offset of out[0], and where its unemitted bytes start. */
  pieces = false;
  private outBase = 0;
  private emitFrom = 0;
  private ulen = 0;

  constructor(private readonly ctx: ValueContext) {}

  /**
   * If the string at the cursor is LZF data of at least STREAM_LZF_MIN bytes, read its header,
   * allocate its Buffer and return true: the caller's unit ends here and step() takes over.
   * Otherwise leave the cursor where it was and return false. `what` names the string.
   * With `pieces`, a string of STREAM_STRING_MIN bytes or more is emitted as `stringPart`
   * records as it is decompressed, and step() returns an empty Buffer at its end.
   */
  begin(what: string, pieces = false): boolean {
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
    const windowed = pieces && ulen >= STREAM_STRING_MIN;
    let out = EMPTY;
    if (possible && !skipping) {
      try {
        out = Buffer.allocUnsafe(windowed ? Math.min(ulen, WINDOW_PIECE + WINDOW_SLACK) : ulen);
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
    this.pieces = windowed;
    this.outBase = 0;
    this.emitFrom = 0;
    this.ulen = ulen;
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
      const partial = end - start < this.remaining;
      let ip = start;
      try {
        for (;;) {
          const full = this.pieces && this.outBase + this.out.length < this.ulen;
          lzfDecodeTokens(input.buf, ip, end, this.out, this.op, partial, input.base, full, this.ulen);
          // A token cut off by the end of the buffered bytes, before any progress: wait for
          // exactly its bytes (asking for more would make a truncation message depend on
          // where the chunks ended). Nothing has changed yet, so the unit can be retried.
          if (lzfProgress.ip === start && lzfTokenSize(input.buf, start, end) > end - start) input.short(lzfTokenSize(input.buf, start, end));
          ip = lzfProgress.ip;
          this.op = lzfProgress.op;
          // Stopped before a whole token: the window is full (a cut-off token waits for input).
          if (!full || ip >= end || lzfTokenSize(input.buf, ip, end) > end - ip) break;
          this.nextWindow();
        }
      } catch (e) {
        if (!(e instanceof BlobError)) throw e;
        this.consume(input, end - start);
        this.corrupt(e);
        return this.finish();
      }
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

  /**
   * Pieces mode, the window is full (decoding stopped past its piece, in the slack): emit the
   * piece, continue in a new window holding the 8 KiB before the next piece and the bytes
   * already decoded into the slack.
   */
  private nextWindow(): void {
    const old = this.out;
    const pieceEnd = this.emitFrom + WINDOW_PIECE;
    this.emitPiece(pieceEnd);
    const keepFrom = pieceEnd - WINDOW_HISTORY;
    const base = this.outBase + keepFrom;
    const out = Buffer.allocUnsafe(Math.min(WINDOW_HISTORY + WINDOW_PIECE + WINDOW_SLACK, this.ulen - base));
    old.copy(out, 0, keepFrom, this.op);
    this.out = out;
    this.outBase = base;
    this.op -= keepFrom;
    this.emitFrom = WINDOW_HISTORY;
  }

  /** Emit out[emitFrom, to) as a stringPart (a view of the window). */
  private emitPiece(to: number): void {
    if (to === this.emitFrom) return;
    const value = this.out.subarray(this.emitFrom, to);
    this.ctx.emit({ kind: 'stringPart', value, offset: this.outBase + this.emitFrom, total: this.ulen });
    this.emitFrom = to;
  }

  /** Forget any string in progress (a new value starts). */
  reset(): void {
    this.active = false;
    this.out = EMPTY;
    this.pieces = false;
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
    if (!this.discard && this.outBase + this.op !== this.ulen) {
      this.corrupt(new BlobError(`LZF data decompressed to ${this.outBase + this.op} bytes, expected ${this.ulen}`, this.at));
    }
    if (this.pieces && !this.discard) while (this.emitFrom < this.op) this.emitPiece(Math.min(this.op, this.emitFrom + WINDOW_PIECE));
    const value = this.pieces ? EMPTY : this.out;
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
