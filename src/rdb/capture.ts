/**
 * Keeps the exact bytes of one value while the working buffer is compacted under it: the raw
 * value for DUMP payloads (type byte + value, without the key string that sits between them
 * in the file), or a module payload. Pieces are views of buffers the decoder never writes to;
 * they are copied once, when the value ends.
 */
export class Capture {
  active = false;
  /** Absolute offset of the first captured byte. */
  private start = 0;
  /** A byte to put in front (the value type), or -1. */
  private prefix = -1;
  private pieces: Buffer[] = [];
  private length = 0;
  private limit = Infinity;
  private overflow = false;
  private result: Buffer | null = null;

  /** Start capturing at absolute offset `startAbs`; give up (take() -> null) above `limit` bytes. */
  begin(startAbs: number, limit: number, prefix = -1): void {
    this.active = true;
    this.start = startAbs;
    this.prefix = prefix;
    this.pieces = [];
    this.length = prefix >= 0 ? 1 : 0;
    this.limit = limit;
    this.overflow = this.length > limit;
    this.result = null;
  }

  stop(): void {
    this.active = false;
    this.pieces = [];
    this.result = null;
  }

  /** buf[.., to) is about to be dropped; `base` is the absolute offset of buf[0]. */
  save(buf: Buffer, base: number, to: number): void {
    if (!this.active || this.overflow) return;
    const from = Math.max(0, this.start - base);
    if (to <= from) return;
    const n = to - from;
    if (this.length + n > this.limit) {
      this.overflow = true;
      this.pieces = [];
      return;
    }
    this.pieces.push(buf.subarray(from, to));
    this.length += n;
  }

  /**
   * The captured bytes through buf[.., to), or null if they went over the limit.
   * Repeated calls return the same Buffer until the next begin().
   */
  take(buf: Buffer, base: number, to: number): Buffer | null {
    if (this.result !== null) return this.result;
    if (this.overflow) return null;
    const from = Math.max(0, this.start - base);
    const lastLen = Math.max(0, to - from);
    const total = this.length + lastLen;
    if (total > this.limit) {
      this.overflow = true;
      this.pieces = [];
      return null;
    }
    let out: Buffer;
    if (this.prefix < 0 && this.pieces.length === 0) {
      out = buf.subarray(from, from + lastLen);
    } else {
      out = Buffer.allocUnsafe(total);
      let o = 0;
      if (this.prefix >= 0) out[o++] = this.prefix;
      for (const piece of this.pieces) o += piece.copy(out, o);
      buf.copy(out, o, from, from + lastLen);
    }
    this.pieces = [];
    this.result = out;
    return out;
  }
}
