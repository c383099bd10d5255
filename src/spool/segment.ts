/**
 * One append-only segment file of the spool, written and read with positional I/O on
 * a single descriptor, so it can be read back while it is still being written.
 * No fsync: the spool is a buffer, not a journal (a crash resumes from the checkpoint).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { SpoolDirectory } from './directory.js';

export class Segment {
  /** Bytes written to the file (all of them readable). */
  written = 0;
  /** Next byte to read. */
  readPos = 0;
  /** No more writes will go to this segment. */
  sealed = false;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly directory: SpoolDirectory,
  ) {}

  static async create(directory: SpoolDirectory, n: number): Promise<Segment> {
    const path = join(directory.path, `segment-${String(n).padStart(6, '0')}.spool`);
    // 'wx+': exclusive create, so an existing file is never overwritten; 0600: source data.
    const fh = await open(path, 'wx+', 0o600);
    directory.track(path);
    return new Segment(path, fh, directory);
  }

  /** Write `batch` (`bytes` in total) at the end of the file. */
  async append(batch: Buffer[], bytes: number): Promise<void> {
    let done = (await this.fh.writev(batch, this.written)).bytesWritten;
    if (done < bytes) {
      // Partial writev (rare on regular files): write what is left in plain writes.
      const rest = Buffer.concat(batch).subarray(done);
      let off = 0;
      while (off < rest.length) {
        const { bytesWritten } = await this.fh.write(rest, off, rest.length - off, this.written + done + off);
        if (bytesWritten === 0) throw new Error(`short write to ${this.path}`);
        off += bytesWritten;
      }
      done = bytes;
    }
    this.written += bytes;
  }

  /** Read up to `n` bytes at the read position into a fresh buffer (never reused). */
  async read(n: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(n);
    const { bytesRead } = await this.fh.read(buf, 0, n, this.readPos);
    if (bytesRead === 0) throw new Error(`unexpected end of ${this.path} at byte ${this.readPos} (${this.written} written)`);
    this.readPos += bytesRead;
    return bytesRead === n ? buf : buf.subarray(0, bytesRead);
  }

  private destroyed = false;

  /** Close and delete the file (once). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      await this.fh.close();
    } finally {
      await this.directory.unlink(this.path);
    }
  }
}
