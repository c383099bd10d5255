/**
 * Reads the handshake's reply lines from a socket's bytes: `+…`/`-…` lines ending in
 * CRLF, and bare `\n` keepalives (returned as empty lines). Whatever follows the last
 * line taken (RDB or stream bytes) is handed back by `rest()`.
 */
import { ProtocolError } from '../errors.js';

/** Replies in the handshake are short; a longer line means we are not talking to Redis. */
const MAX_LINE = 64 * 1024;

export class LineReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  /** Bytes received so far and not yet taken as lines. */
  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.wake();
  }

  /** Make the pending and every later `line()` reject with `e`. */
  fail(e: Error): void {
    if (!this.failure) this.failure = e;
    const w = this.waiter;
    this.waiter = null;
    if (w) w.reject(this.failure);
  }

  /** Next line without its line ending ('' for a keepalive). */
  async line(): Promise<string> {
    for (;;) {
      if (this.failure) throw this.failure;
      const lf = this.buf.indexOf(0x0a);
      if (lf !== -1) {
        const end = lf > 0 && this.buf[lf - 1] === 0x0d ? lf - 1 : lf;
        const text = this.buf.toString('latin1', 0, end);
        this.buf = this.buf.subarray(lf + 1);
        return text;
      }
      if (this.buf.length > MAX_LINE) throw new ProtocolError(`handshake reply line longer than ${MAX_LINE} bytes without a newline`);
      await new Promise<void>((resolve, reject) => (this.waiter = { resolve, reject }));
    }
  }

  /** Take the bytes after the last line (and stop buffering). */
  rest(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w.resolve();
  }
}
