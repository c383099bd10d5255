/**
 * Gathers small writes into larger socket writes: pieces are written once they add up to 64 KB,
 * else on the next setImmediate (so a burst of small units submitted in one tick is one write).
 */
import type { Socket } from 'node:net';

const GATHER_BYTES = 64 * 1024;

export class GatheredOutput {
  private pieces: Buffer[] = [];
  private bytes = 0;
  private timer: NodeJS.Immediate | undefined;

  constructor(private readonly socket: Socket) {}

  push(buf: Buffer): void {
    this.pieces.push(buf);
    this.bytes += buf.length;
    if (this.bytes >= GATHER_BYTES) this.flush();
    else if (this.timer === undefined) this.timer = setImmediate(() => this.flush());
  }

  /** Writes everything gathered now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearImmediate(this.timer);
      this.timer = undefined;
    }
    const n = this.pieces.length;
    if (n === 0) return;
    const pieces = this.pieces;
    const bytes = this.bytes;
    this.pieces = [];
    this.bytes = 0;
    if (n === 1) {
      this.socket.write(pieces[0]!);
    } else if (bytes <= 4 * GATHER_BYTES || bytes / n < 16 * 1024) {
      // Small pieces: one copy into one write is far cheaper than a write (and a request
      // object) per piece.
      this.socket.write(Buffer.concat(pieces, bytes));
    } else {
      this.socket.cork();
      for (const b of pieces) this.socket.write(b);
      this.socket.uncork();
    }
  }

  /** Drops what was not written yet (the connection is gone). */
  discard(): void {
    if (this.timer !== undefined) clearImmediate(this.timer);
    this.timer = undefined;
    this.pieces = [];
    this.bytes = 0;
  }
}
