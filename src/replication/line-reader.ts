/**
 * Reads the handshake's reply lines from a socket's bytes: `+…`/`-…` lines ending in
 * CRLF, and bare `\n` keepalives (returned as empty lines). Whatever follows the last
 * line taken (RDB or stream bytes) is handed back by `rest()`.
 */
import { ProtocolError } from '../errors.js';

/** Replies in the handshake are short; a longer line means we are not talking to Redis. */
const MAX_LINE = 64 * 1024;
const MAX_BULK = 16 * 1024 * 1024;
const MAX_ARRAY = 100_000;

export type HandshakeReply = string | number | null | Error | HandshakeReply[];

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

  /** Exactly `n` bytes (a bulk reply's body). */
  async bytes(n: number): Promise<Buffer> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.buf.length >= n) {
        const out = Buffer.from(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        return out;
      }
      await new Promise<void>((resolve, reject) => (this.waiter = { resolve, reject }));
    }
  }

  /**
   * One whole RESP2 reply (control-plane commands before PSYNC: INFO, HGETALL): strings for
   * simple and bulk strings, numbers, arrays, null, and an Error for an error reply.
   */
  async reply(depth = 0): Promise<HandshakeReply> {
    const line = await this.line();
    const body = line.slice(1);
    switch (line[0]) {
      case '+':
        return body;
      case '-':
        return new Error(body);
      case ':':
        return Number(body);
      case '$': {
        const n = Number(body);
        if (n < 0) return null;
        if (!Number.isSafeInteger(n) || n > MAX_BULK) throw new ProtocolError(`handshake bulk reply of ${body} bytes`);
        const b = await this.bytes(n + 2);
        return b.toString('utf8', 0, n);
      }
      case '*': {
        const n = Number(body);
        if (n < 0) return null;
        if (!Number.isSafeInteger(n) || n > MAX_ARRAY || depth > 4) throw new ProtocolError(`handshake array reply of ${body} elements`);
        const out: HandshakeReply[] = [];
        for (let i = 0; i < n; i++) out.push(await this.reply(depth + 1));
        return out;
      }
      default:
        throw new ProtocolError(`unexpected handshake reply line ${JSON.stringify(line.slice(0, 100))}`);
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
