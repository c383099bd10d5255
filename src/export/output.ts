/**
 * A buffered byte writer in front of a Writable (stdout, a file, a socket): output is built
 * in large chunks and handed to the stream one chunk at a time, so the cost is one write
 * per chunk instead of one per key. Each chunk is a fresh Buffer, never reused, because the
 * stream may hold it until it is flushed.
 *
 * Backpressure: after a write the stream refused (`write()` returned false), `drain()`
 * waits for 'drain'. A closed reader (EPIPE, e.g. `| head`) marks the output `closed`; later
 * writes are dropped and the caller is expected to stop.
 */
import type { Writable } from 'node:stream';
import { encodedLength, type Arg } from '../resp/encode.js';

const DEFAULT_CHUNK = 1024 * 1024;
/** Up to this many bytes, copying in a JS loop is cheaper than a native call. */
const SMALL = 48;

export interface OutputMark {
  generation: number;
  pos: number;
}

export class OutputBuffer {
  private readonly sink: Writable;
  private readonly chunkSize: number;
  private buf: Buffer;
  private pos = 0;
  /** Bumped on every flush; a mark from an older generation can no longer be rolled back. */
  private generation = 0;
  private needDrain = false;
  private error: Error | null = null;
  private closedByReader = false;
  /** Bytes handed to the sink so far. */
  bytesWritten = 0;

  constructor(sink: Writable, chunkSize = DEFAULT_CHUNK) {
    this.sink = sink;
    this.chunkSize = chunkSize;
    this.buf = Buffer.allocUnsafe(chunkSize);
    sink.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') this.closedByReader = true;
      else this.error = err;
    });
  }

  /** True when the reader went away (EPIPE): stop producing. */
  get closed(): boolean {
    return this.closedByReader;
  }

  /** A write error other than EPIPE, if one happened. */
  get failure(): Error | null {
    return this.error;
  }

  /** Bytes waiting in the current chunk. */
  get buffered(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n > this.buf.length) this.flush();
  }

  /** Text that is known to be ASCII (JSON punctuation, numbers, type names). */
  ascii(s: string): void {
    const n = s.length;
    if (n > this.chunkSize) {
      this.bytes(Buffer.from(s, 'latin1'));
      return;
    }
    this.room(n);
    if (n <= SMALL) {
      // A JS loop beats the native write call for the short pieces JSON is made of.
      const buf = this.buf;
      let o = this.pos;
      for (let i = 0; i < n; i++) buf[o++] = s.charCodeAt(i);
      this.pos = o;
    } else {
      this.pos += this.buf.write(s, this.pos, 'latin1');
    }
  }

  /** Any text, as UTF-8. */
  utf8(s: string): void {
    const n = Buffer.byteLength(s);
    if (n > this.chunkSize) {
      this.bytes(Buffer.from(s, 'utf8'));
      return;
    }
    this.room(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  byte(b: number): void {
    if (this.pos >= this.buf.length) this.flush();
    this.buf[this.pos++] = b;
  }

  /** Raw bytes, copied (big values are copied through in chunk-sized pieces). */
  bytes(b: Buffer): void {
    const n = b.length;
    if (this.pos + n <= this.buf.length) {
      if (n <= SMALL) {
        const buf = this.buf;
        let o = this.pos;
        for (let i = 0; i < n; i++) buf[o++] = b[i]!;
        this.pos = o;
      } else {
        this.pos += b.copy(this.buf, this.pos);
      }
      return;
    }
    let o = 0;
    while (o < b.length) {
      if (this.pos >= this.buf.length) this.flush();
      const n = Math.min(b.length - o, this.buf.length - this.pos);
      b.copy(this.buf, this.pos, o, o + n);
      this.pos += n;
      o += n;
    }
  }

  /** One RESP command. */
  command(args: readonly Arg[]): void {
    const n = encodedLength(args);
    if (n > this.chunkSize) {
      // Framing written in place, long arguments copied through chunk by chunk: no Buffer
      // of the whole command (a 512 MB string goes out as 1 MiB SETRANGEs, each would be one).
      this.ascii(`*${args.length}\r\n`);
      for (const a of args) {
        const b = typeof a === 'object' ? a : Buffer.from(String(a));
        this.ascii(`$${b.length}\r\n`);
        this.bytes(b);
        this.ascii('\r\n');
      }
      return;
    }
    this.room(n);
    this.pos = writeCommandFast(this.buf, this.pos, args);
  }

  mark(): OutputMark {
    return { generation: this.generation, pos: this.pos };
  }

  /** Drop everything written since `m`; false when part of it was already flushed. */
  rollback(m: OutputMark): boolean {
    if (m.generation !== this.generation) return false;
    this.pos = m.pos;
    return true;
  }

  /** Hand the current chunk to the sink (synchronously) and start a new one. */
  flush(): void {
    if (this.pos === 0) return;
    const chunk = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(this.chunkSize);
    this.pos = 0;
    this.generation++;
    this.writeOut(chunk);
  }

  private writeOut(chunk: Buffer): void {
    if (this.closedByReader || this.error) return;
    this.bytesWritten += chunk.length;
    if (!this.sink.write(chunk)) this.needDrain = true;
  }

  /** Flush when more than `threshold` bytes wait, then wait for the sink if it asked to. */
  async maybeFlush(threshold = this.chunkSize / 2): Promise<void> {
    if (this.pos >= threshold) this.flush();
    if (this.needDrain) await this.drain();
  }

  /** Wait until the sink accepts more (or failed / was closed). */
  async drain(): Promise<void> {
    if (!this.needDrain || this.closedByReader || this.error) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.sink.off('drain', done);
        this.sink.off('error', done);
        this.sink.off('close', done);
        resolve();
      };
      this.sink.on('drain', done);
      this.sink.on('error', done);
      this.sink.on('close', done);
    });
    this.needDrain = false;
  }

  /** Flush everything and wait until the sink has taken it. */
  async end(): Promise<void> {
    this.flush();
    await this.drain();
  }
}

/** Write `n` (a non-negative integer) as decimal digits at `o`; returns the offset after. */
function writeDecimal(buf: Buffer, o: number, n: number): number {
  if (n < 10) {
    buf[o] = 0x30 + n;
    return o + 1;
  }
  const s = String(n);
  for (let i = 0; i < s.length; i++) buf[o++] = s.charCodeAt(i);
  return o;
}

/**
 * The same bytes as resp/encode.ts `writeCommand`, with the short pieces (lengths, verbs,
 * small values) copied by JS loops instead of native calls: on `--format resp` output the
 * per-call overhead of Buffer#write/copy dominated. The caller has made room.
 */
function writeCommandFast(buf: Buffer, offset: number, args: readonly Arg[]): number {
  let o = offset;
  buf[o++] = 0x2a; // '*'
  o = writeDecimal(buf, o, args.length);
  buf[o++] = 0x0d;
  buf[o++] = 0x0a;
  for (const a of args) {
    buf[o++] = 0x24; // '$'
    if (typeof a === 'string') {
      let ascii = a.length <= SMALL;
      for (let i = 0; ascii && i < a.length; i++) if (a.charCodeAt(i) >= 0x80) ascii = false;
      if (ascii) {
        o = writeDecimal(buf, o, a.length);
        buf[o++] = 0x0d;
        buf[o++] = 0x0a;
        for (let i = 0; i < a.length; i++) buf[o++] = a.charCodeAt(i);
      } else {
        o = writeDecimal(buf, o, Buffer.byteLength(a));
        buf[o++] = 0x0d;
        buf[o++] = 0x0a;
        o += buf.write(a, o, 'utf8');
      }
    } else if (typeof a === 'number') {
      const s = String(a);
      o = writeDecimal(buf, o, s.length);
      buf[o++] = 0x0d;
      buf[o++] = 0x0a;
      for (let i = 0; i < s.length; i++) buf[o++] = s.charCodeAt(i);
    } else {
      const n = a.length;
      o = writeDecimal(buf, o, n);
      buf[o++] = 0x0d;
      buf[o++] = 0x0a;
      if (n <= SMALL) for (let i = 0; i < n; i++) buf[o++] = a[i]!;
      else o += a.copy(buf, o);
    }
    buf[o++] = 0x0d;
    buf[o++] = 0x0a;
  }
  return o;
}
