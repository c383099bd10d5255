/**
 * The spool: lets the replication link read the source at wire speed whatever the
 * target's speed (architecture decision 2).
 *
 * Bytes are kept in memory up to `memoryBudget`. Beyond that, appends go to
 * append-only segment files in the spool's own directory, written asynchronously
 * and read back while still being written; a segment is unlinked as soon as it has
 * been written to the end and fully read. Once the reader has caught up with the
 * disk, appends go to memory again. Order is preserved across every transition:
 * an append goes to memory only while nothing is waiting on disk.
 *
 * `append` never blocks and never refuses bytes (they were already read from the
 * socket); it returns false to ask the producer to stop reading until
 * `waitForSpace()` resolves (or 'drain' is emitted).
 */
import { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import { LocalIoError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { silentLogger } from '../observe/logger.js';
import { SpoolDirectory } from './directory.js';
import { Segment } from './segment.js';

export interface SpoolOptions {
  /** Parent directory; the spool creates its own subdirectory in it. Default: os.tmpdir(). */
  dir?: string;
  /** Bytes kept in memory before spilling to disk. Default 64 MiB. */
  memoryBudget?: number;
  /** Bytes allowed on disk (written or queued for writing) before `append` asks to stop. Default 4 GiB. */
  diskBudget?: number;
  /** Size at which a segment file is closed and a new one started. Default 64 MiB. */
  segmentSize?: number;
  /** Largest chunk `read()` returns from disk. Default 1 MiB. */
  readChunkSize?: number;
  logger?: Logger;
}

export const SPOOL_DEFAULTS = {
  memoryBudget: 64 * 1024 * 1024,
  diskBudget: 4 * 1024 * 1024 * 1024,
  segmentSize: 64 * 1024 * 1024,
  readChunkSize: 1024 * 1024,
} as const;

/** Writes gathered into one writev call, at most. */
const MAX_WRITE_BATCH_BYTES = 4 * 1024 * 1024;
const MAX_WRITE_BATCH_CHUNKS = 256;
/** The write lag always allowed (see writeLagLimit()): two write batches. */
const MIN_WRITE_LAG_BYTES = 2 * MAX_WRITE_BATCH_BYTES;

export interface SpoolEvents {
  /** Appends fit again after `append` returned false. */
  drain: [];
  /** A disk write or read failed; reads reject with the same error. */
  error: [LocalIoError];
}

export class Spool extends EventEmitter<SpoolEvents> {
  private memoryBudget: number;
  private readonly diskBudget: number;
  private readonly segmentSize: number;
  private readonly readChunkSize: number;
  private readonly log: Logger;
  private readonly directory: SpoolDirectory;

  /** In-memory chunks, read before anything on disk. */
  private memory: Buffer[] = [];
  private memoryHead = 0;
  private memoryBytesHeld = 0;

  /** Segment files in order; the last one is being written while `writing` or queued data exist. */
  private segments: Segment[] = [];
  private nextSegmentNumber = 1;
  /** Chunks accepted for disk, not yet handed to a write call. */
  private writeQueue: Buffer[] = [];
  private writeQueueHead = 0;
  /** Bytes queued or in a write call. */
  private writePendingBytes = 0;
  private writing = false;
  /** The running writer loop, awaited by close(). */
  private writer: Promise<void> = Promise.resolve();
  /** Bytes in segment files that still exist. */
  private diskBytesHeld = 0;

  private ended = false;
  private closed = false;
  private failure: LocalIoError | undefined;
  private reading = false;
  /** Wakes a read() waiting for data, end, or failure. */
  private wake: (() => void) | null = null;
  private full = false;
  private spaceWaiters: Array<() => void> = [];
  private totalAppended = 0;
  private totalRead = 0;

  private constructor(opts: SpoolOptions, directory: SpoolDirectory) {
    super();
    this.memoryBudget = opts.memoryBudget ?? SPOOL_DEFAULTS.memoryBudget;
    this.diskBudget = opts.diskBudget ?? SPOOL_DEFAULTS.diskBudget;
    this.segmentSize = opts.segmentSize ?? SPOOL_DEFAULTS.segmentSize;
    this.readChunkSize = opts.readChunkSize ?? SPOOL_DEFAULTS.readChunkSize;
    this.log = opts.logger ?? silentLogger();
    this.directory = directory;
  }

  /** Create a spool in its own new subdirectory of `opts.dir` (with a lock file). */
  static async open(opts: SpoolOptions = {}): Promise<Spool> {
    for (const [name, v] of [['memoryBudget', opts.memoryBudget], ['diskBudget', opts.diskBudget], ['segmentSize', opts.segmentSize], ['readChunkSize', opts.readChunkSize]] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < (name === 'memoryBudget' || name === 'diskBudget' ? 0 : 1))) {
        throw new RangeError(`spool: ${name} must be a non-negative integer, got ${v}`);
      }
    }
    const directory = await SpoolDirectory.create(opts.dir ?? tmpdir(), opts.logger);
    const spool = new Spool(opts, directory);
    spool.log.debug({ dir: directory.path }, 'spool opened');
    return spool;
  }

  /** The spool's own directory. */
  get path(): string {
    return this.directory.path;
  }

  /** Bytes appended and not yet read (memory + disk + queued writes). */
  get bufferedBytes(): number {
    return this.totalAppended - this.totalRead;
  }

  /** Bytes held in memory, including chunks waiting to be written to disk. */
  get memoryBytes(): number {
    return this.memoryBytesHeld + this.writePendingBytes;
  }

  /** Bytes accepted for disk and not written yet (held in memory meanwhile). */
  get pendingWriteBytes(): number {
    return this.writePendingBytes;
  }

  /** Bytes in segment files that exist now. */
  get diskBytes(): number {
    return this.diskBytesHeld;
  }

  get appendedBytes(): number {
    return this.totalAppended;
  }

  /** True after an append returned false, until space is available again. */
  get isFull(): boolean {
    return this.full;
  }

  /**
   * Add bytes at the end. Never blocks; the spool keeps a reference to `chunk`, so the
   * caller must not reuse it. Returns false when the producer should stop until
   * `waitForSpace()` resolves: over the disk budget, or the disk cannot keep up
   * (more bytes waiting to be written than the memory budget leaves, see writeLagLimit()).
   */
  append(chunk: Buffer): boolean {
    if (this.ended) throw new Error('spool: append after end()');
    if (this.closed) throw new Error('spool: append after close()');
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return !this.full;
    this.totalAppended += chunk.length;
    if (this.onDisk() || this.memoryBytesHeld + chunk.length > this.memoryBudget) {
      if (!this.onDisk()) this.log.info({ memoryBytes: this.memoryBytesHeld, memoryBudget: this.memoryBudget }, 'spool memory budget reached: spilling to disk');
      this.writeQueue.push(chunk);
      this.writePendingBytes += chunk.length;
      this.pumpWrites();
    } else {
      this.memory.push(chunk);
      this.memoryBytesHeld += chunk.length;
      this.notifyReader();
    }
    if (!this.full && this.overBudget()) {
      this.full = true;
      this.log.warn({ diskBytes: this.diskBytesHeld, pendingWrites: this.writePendingBytes, diskBudget: this.diskBudget }, 'spool full: the producer should pause');
    }
    return !this.full;
  }

  /**
   * Change the memory budget from now on. Lowering it keeps what memory already holds (it
   * is read first); later appends go to disk until the reader caught up with it.
   */
  setMemoryBudget(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`spool: memoryBudget must be a non-negative integer, got ${bytes}`);
    this.memoryBudget = bytes;
    this.checkSpace();
  }

  /** The memory budget now (see setMemoryBudget()). */
  get memoryBudgetBytes(): number {
    return this.memoryBudget;
  }

  /** Resolves when appends are welcome again (immediately if they are now). */
  waitForSpace(): Promise<void> {
    if (!this.full || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** No more appends; read() returns null once everything is read. */
  end(): void {
    this.ended = true;
    this.notifyReader();
  }

  /**
   * Next chunk in order (any size), or null after end() once everything was read.
   * Waits while empty. One read at a time. Chunks are never reused by the spool.
   */
  async read(): Promise<Buffer | null> {
    if (this.reading) throw new Error('spool: read() called while a read is pending');
    this.reading = true;
    try {
      for (;;) {
        if (this.closed) throw new Error('spool: closed');
        if (this.failure) throw this.failure;
        if (this.memoryHead < this.memory.length) return this.takeMemory();
        const seg = this.segments[0];
        if (seg !== undefined) {
          if (seg.readPos < seg.written) return await this.readSegment(seg);
          // Fully read. It may go if the writer moved on to a later segment, or if the
          // writer is idle (the next spill then starts a new segment).
          if (this.segments.length > 1 || !this.writing) {
            await this.dropFirstSegment();
            continue;
          }
        }
        if (this.ended && this.bufferedBytes === 0) return null;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.reading = false;
    }
  }

  /**
   * Close files and remove the spool's own files and directory (nothing else; a
   * directory holding foreign files is left in place with a warning). A pending read
   * rejects.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.notifyReader();
    this.releaseSpaceWaiters();
    // Let a write in flight finish before closing its file.
    await this.writer;
    for (const seg of this.segments.splice(0)) await seg.destroy();
    this.memory = [];
    this.writeQueue = [];
    this.diskBytesHeld = 0;
    try {
      await this.directory.remove();
      this.log.debug({ dir: this.directory.path }, 'spool closed');
    } catch (e) {
      // Not fatal: something we did not create is in the directory, so it stays.
      this.log.warn({ dir: this.directory.path, err: e }, 'spool directory left in place');
    }
  }

  // ---------------------------------------------------------------------------

  /** True while bytes are waiting on disk or for a write: appends must follow them there. */
  private onDisk(): boolean {
    return this.writePendingBytes > 0 || this.segments.some((s) => s.readPos < s.written);
  }

  private overBudget(): boolean {
    return this.diskBytesHeld + this.writePendingBytes > this.diskBudget || this.writePendingBytes > this.writeLagLimit();
  }

  /**
   * Bytes allowed to wait for the disk (held in memory) before the producer must pause: what
   * the memory budget leaves, so that memory chunks and queued writes together stay near the
   * budget, but never less than a few write batches (a deeper queue does not make the disk
   * faster; a shallower one would pause the producer on every write).
   */
  private writeLagLimit(): number {
    return Math.max(this.memoryBudget - this.memoryBytesHeld, Math.min(this.segmentSize, MIN_WRITE_LAG_BYTES));
  }

  /**
   * Resume the producer as soon as it fits again: a paused socket makes the source buffer
   * the stream, and the source drops replicas whose output buffer grows too much. Disk
   * space comes back a whole segment at a time, which is hysteresis enough; the write lag
   * must halve before resuming.
   */
  private checkSpace(): void {
    if (!this.full || this.overBudget()) return;
    if (this.writePendingBytes > this.writeLagLimit() / 2) return;
    this.full = false;
    this.log.info({ diskBytes: this.diskBytesHeld }, 'spool has room again');
    this.releaseSpaceWaiters();
    this.emit('drain');
  }

  private releaseSpaceWaiters(): void {
    for (const w of this.spaceWaiters.splice(0)) w();
  }

  private notifyReader(): void {
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }

  private takeMemory(): Buffer {
    const chunk = this.memory[this.memoryHead]!;
    this.memory[this.memoryHead++] = EMPTY;
    if (this.memoryHead > 1024 && this.memoryHead * 2 > this.memory.length) {
      this.memory = this.memory.slice(this.memoryHead);
      this.memoryHead = 0;
    } else if (this.memoryHead === this.memory.length) {
      this.memory.length = 0;
      this.memoryHead = 0;
    }
    this.memoryBytesHeld -= chunk.length;
    this.totalRead += chunk.length;
    // Memory freed leaves more room for queued writes (writeLagLimit()).
    if (this.full) this.checkSpace();
    return chunk;
  }

  private async readSegment(seg: Segment): Promise<Buffer> {
    const n = Math.min(this.readChunkSize, seg.written - seg.readPos);
    try {
      const buf = await seg.read(n);
      this.totalRead += buf.length;
      return buf;
    } catch (e) {
      if (this.closed) throw new Error('spool: closed');
      throw this.fail(`reading spool segment ${seg.path}`, e);
    }
  }

  private async dropFirstSegment(): Promise<void> {
    const seg = this.segments.shift()!;
    this.diskBytesHeld -= seg.written;
    try {
      await seg.destroy();
    } catch (e) {
      throw this.fail(`removing spool segment ${seg.path}`, e);
    }
    if (!this.onDisk() && this.segments.length === 0) this.log.debug('spool caught up with the disk: back to memory');
    this.checkSpace();
  }

  /** Start the single writer loop if it is idle. */
  private pumpWrites(): void {
    if (this.writing || this.failure || this.closed) return;
    this.writing = true;
    this.writer = this.writeLoop();
  }

  private async writeLoop(): Promise<void> {
    try {
      while (this.writeQueueHead < this.writeQueue.length && !this.closed) {
        let seg = this.segments[this.segments.length - 1];
        if (seg === undefined || seg.written >= this.segmentSize || seg.sealed) {
          if (seg !== undefined) seg.sealed = true;
          seg = await Segment.create(this.directory, this.nextSegmentNumber++);
          this.segments.push(seg);
          this.directory.track(seg.path);
        }
        const batch: Buffer[] = [];
        let bytes = 0;
        while (this.writeQueueHead < this.writeQueue.length && batch.length < MAX_WRITE_BATCH_CHUNKS && bytes < MAX_WRITE_BATCH_BYTES) {
          const c = this.writeQueue[this.writeQueueHead]!;
          this.writeQueue[this.writeQueueHead++] = EMPTY;
          batch.push(c);
          bytes += c.length;
        }
        if (this.writeQueueHead === this.writeQueue.length) {
          this.writeQueue.length = 0;
          this.writeQueueHead = 0;
        }
        await seg.append(batch, bytes);
        this.writePendingBytes -= bytes;
        this.diskBytesHeld += bytes;
        this.notifyReader();
        this.checkSpace();
      }
    } catch (e) {
      this.fail('writing a spool segment', e);
    } finally {
      this.writing = false;
    }
    // Appends may have arrived during the last await of the loop's exit path.
    if (this.writeQueueHead < this.writeQueue.length && !this.failure && !this.closed) this.pumpWrites();
  }

  private fail(what: string, cause: unknown): LocalIoError {
    if (!this.failure) {
      const msg = cause instanceof Error ? cause.message : String(cause);
      this.failure = new LocalIoError(`spool: ${what} in ${this.directory.path} failed: ${msg}`, { cause });
      this.log.error({ err: this.failure }, 'spool I/O failed');
      this.notifyReader();
      this.releaseSpaceWaiters();
      if (this.listenerCount('error') > 0) this.emit('error', this.failure);
    }
    return this.failure;
  }
}

const EMPTY = Buffer.alloc(0);
