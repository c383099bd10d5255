/**
 * What follows the RDB in a full sync, checked for the framing the source announced:
 * - `$<len>` (disk-based): the RDB must be exactly `len` bytes; the stream starts on the
 *   next byte (no CRLF in between).
 * - `$EOF:<mark>` (diskless): the 40-byte mark follows the RDB's checksum, then the stream.
 *   The mark may arrive split across reads, hence the push interface.
 */
import { ProtocolError } from '../errors.js';

export type RdbFraming = { kind: 'length'; length: number } | { kind: 'eof'; mark: Buffer };

export const EOF_MARK_LENGTH = 40;

export class RdbTrailer {
  private readonly framing: RdbFraming;
  private rdbBytes: number | null = null;
  private matched = 0;

  /**
   * @param framing what the source announced after +FULLRESYNC
   * @param rdbBytes bytes the RDB decoder consumed (magic through checksum), if already known;
   *   otherwise pass it with the first push()
   */
  constructor(framing: RdbFraming, rdbBytes?: number) {
    if (framing.kind === 'eof' && framing.mark.length !== EOF_MARK_LENGTH) {
      throw new ProtocolError(`EOF mark must be ${EOF_MARK_LENGTH} bytes, got ${framing.mark.length}`);
    }
    this.framing = framing;
    if (rdbBytes !== undefined) this.setRdbBytes(rdbBytes);
  }

  /** True once everything between the RDB and the stream was checked. */
  get done(): boolean {
    return this.rdbBytes !== null && (this.framing.kind === 'length' || this.matched === EOF_MARK_LENGTH);
  }

  /**
   * Bytes received from the start of the RDB to the start of the command stream (the RDB,
   * plus the mark for diskless transfers): link.bytesReceived minus this = stream bytes.
   */
  get consumedBytes(): number {
    return (this.rdbBytes ?? 0) + (this.framing.kind === 'eof' ? this.matched : 0);
  }

  /**
   * Feed the bytes that follow the RDB (the decoder's remainder, then later reads).
   * Returns the command-stream bytes in `chunk` (possibly empty), or null while the
   * mark is still incomplete. Throws ProtocolError when the RDB length or the mark is wrong.
   * @param rdbBytes bytes the RDB decoder consumed; required on the first call unless given to the constructor
   */
  push(chunk: Buffer, rdbBytes?: number): Buffer | null {
    if (this.rdbBytes === null) {
      if (rdbBytes === undefined) throw new Error('RdbTrailer: the RDB length is needed before the bytes after it');
      this.setRdbBytes(rdbBytes);
    }
    if (this.framing.kind === 'length' || this.matched === EOF_MARK_LENGTH) return chunk;
    const mark = this.framing.mark;
    const n = Math.min(EOF_MARK_LENGTH - this.matched, chunk.length);
    for (let i = 0; i < n; i++) {
      if (chunk[i] !== mark[this.matched + i]) {
        const k = this.matched + i;
        throw new ProtocolError(
          `diskless RDB end mark mismatch at transfer byte ${this.rdbBytes! + k} (byte ${k} of the ${EOF_MARK_LENGTH}-byte mark after a ${this.rdbBytes}-byte RDB): expected 0x${hex(mark[k]!)}, got 0x${hex(chunk[i]!)}`,
        );
      }
    }
    this.matched += n;
    return this.matched === EOF_MARK_LENGTH ? chunk.subarray(n) : null;
  }

  private setRdbBytes(n: number): void {
    if (this.framing.kind === 'length' && n !== this.framing.length) {
      throw new ProtocolError(
        `the RDB ended after ${n} bytes but the source announced $${this.framing.length} (${n < this.framing.length ? 'unexpected bytes inside the bulk' : 'the RDB runs past the bulk'})`,
      );
    }
    this.rdbBytes = n;
  }
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}
