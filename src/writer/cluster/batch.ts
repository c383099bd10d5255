/**
 * The commands gathered for one cluster node before they are sent as one unit. Commands are
 * either encoded into a scratch buffer (`appendCommand`) or referenced as byte ranges of a
 * caller's payload (`appendRange`, no copy); adjacent ranges of the same buffer are merged.
 */
import { encodeCommand, encodedLength, writeCommand } from '../../resp/encode.js';
import type { Arg } from '../../resp/encode.js';

const SCRATCH_BYTES = 64 * 1024;

export class NodeBatch {
  pieces: Buffer[] = [];
  count = 0;
  bytes = 0;
  /** The open range: src[start, end), extended while appends stay contiguous. */
  private src: Buffer | undefined;
  private start = 0;
  private end = 0;
  private scratch: Buffer | undefined;
  private used = 0;

  appendCommand(args: readonly Arg[]): void {
    const len = encodedLength(args);
    if (len > SCRATCH_BYTES / 4) {
      this.closeRange();
      this.pieces.push(encodeCommand(args));
    } else {
      if (this.scratch === undefined || this.used + len > this.scratch.length) {
        if (this.src === this.scratch) this.closeRange();
        this.scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
        this.used = 0;
      }
      const at = this.used;
      this.used = writeCommand(this.scratch, at, args);
      this.extend(this.scratch, at, this.used);
    }
    this.count++;
    this.bytes += len;
  }

  appendRange(buf: Buffer, start: number, end: number): void {
    this.extend(buf, start, end);
    this.count++;
    this.bytes += end - start;
  }

  /** Takes the gathered commands (the scratch buffer's unused tail is kept for the next batch). */
  take(): { pieces: Buffer[]; count: number } {
    this.closeRange();
    const out = { pieces: this.pieces, count: this.count };
    this.pieces = [];
    this.count = 0;
    this.bytes = 0;
    return out;
  }

  private extend(buf: Buffer, start: number, end: number): void {
    if (this.src === buf && this.end === start) {
      this.end = end;
      return;
    }
    this.closeRange();
    this.src = buf;
    this.start = start;
    this.end = end;
  }

  private closeRange(): void {
    if (this.src !== undefined && this.end > this.start) this.pieces.push(this.src.subarray(this.start, this.end));
    this.src = undefined;
  }
}
