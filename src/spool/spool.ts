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

/**
 * A FIFO of chunks with their total size: the spool's memory tier, and the chunks queued for
 * the disk. Consumed slots are cleared at once (the chunk can be collected) and the array is
 * compacted from time to time, so taking the head is O(1) amortised.
 */
class ChunkQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  /** Bytes of the chunks in the queue. */
  bytes = 0;

  get isEmpty(): boolean {
    return this.head === this.chunks.length;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** The oldest chunk; the queue must not be empty. */
  shift(): Buffer {
    const chunk = this.chunks[this.head]!;
    this.chunks[this.head++] = EMPTY;
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    } else if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    }
    this.bytes -= chunk.length;
    return chunk;
  }

  /** Moves up to `maxChunks` chunks or about `maxBytes` bytes into `into`; returns their bytes. */
  shiftBatch(into: Buffer[], maxChunks: number, maxBytes: number): number {
    let bytes = 0;
    while (!this.isEmpty && into.length < maxChunks && bytes < maxBytes) {
      const c = this.shift();
      into.push(c);
      bytes += c.length;
    }
    return bytes;
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.bytes = 0;
  }
}

/**
 * The disk tier: segment files in order (the last one is written while queued data exist) and
 * what waits to be written to them. The single writer loop that moves the queue into the files
 * is Spool.writeLoop(), which also wakes the reader and the producer.
 */
class DiskTier {
  readonly segments: Segment[] = [];
  /** Chunks accepted for disk, not yet handed to a write call. */
  readonly queue = new ChunkQueue();
  /** Bytes queued or in a write call. */
  pendingBytes = 0;
  /** Bytes in segment files that still exist. */
  bytesHeld = 0;
  writing = false;
  /** The running writer loop, awaited by close(). */
  writer: Promise<void> = Promise.resolve();
  private nextNumber = 1;
  private readonly directory: SpoolDirectory;
  /** Size at which a segment is sealed and the next one started. */
  readonly segmentBytes: number;

  constructor(directory: SpoolDirectory, segmentBytes: number) {
    this.directory = directory;
    this.segmentBytes = segmentBytes;
  }

  /** True while bytes are waiting on disk or for a write: appends must follow them there. */
  hasUnread(): boolean {
    return this.pendingBytes > 0 || this.segments.some((s) => s.readPos < s.written);
  }

  enqueue(chunk: Buffer): void {
    this.queue.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** The segment to append to: the last one, or a new one once it is full or sealed. */
  async writableSegment(): Promise<Segment> {
    let seg = this.segments[this.segments.length - 1];
    if (seg === undefined || seg.written >= this.segmentBytes || seg.sealed) {
      if (seg !== undefined) seg.sealed = true;
      seg = await Segment.create(this.directory, this.nextNumber++);
      this.segments.push(seg);
      this.directory.track(seg.path);
    }
    return seg;
  }

  /** `bytes` of the queue reached a segment file. */
  wrote(bytes: number): void {
    this.pendingBytes -= bytes;
    this.bytesHeld += bytes;
  }

  /** Removes the first segment (fully written and read); its file is deleted. */
  async dropFirst(): Promise<void> {
    const seg = this.segments.shift()!;
    this.bytesHeld -= seg.written;
    await seg.destroy();
  }

  async destroyAll(): Promise<void> {
    for (const seg of this.segments.splice(0)) await seg.destroy();
    this.queue.clear();
    this.bytesHeld = 0;
  }
}

/**
 * Who waits on the spool: the one reader (for data, the end or a failure) and the paused
 * producers (for space). Kept apart from the data so that every wake-up goes through here.
 */
class SpoolWaiters {
  private reader: (() => void) | null = null;
  private space: Array<() => void> = [];

  /** Resolves at the next wakeReader(). */
  readerWait(): Promise<void> {
    return new Promise<void>((resolve) => (this.reader = resolve));
  }

  wakeReader(): void {
    const w = this.reader;
    this.reader = null;
    if (w) w();
  }

  /** Resolves at the next releaseSpace(). */
  spaceWait(): Promise<void> {
    return new Promise((resolve) => this.space.push(resolve));
  }

  releaseSpace(): void {
    for (const w of this.space.splice(0)) w();
  }
}

export class Spool extends EventEmitter<SpoolEvents> {
  private memoryBudget: number;
  private readonly diskBudget: number;
  private readonly readChunkSize: number;
  private readonly log: Logger;
  private readonly directory: SpoolDirectory;

  /** In-memory chunks, read before anything on disk. */
  private readonly memory = new ChunkQueue();
  private readonly disk: DiskTier;
  private readonly waiters = new SpoolWaiters();

  private ended = false;
  private closed = false;
  private failure: LocalIoError | undefined;
  private reading = false;
  private full = false;
  private totalAppended = 0;
  private totalRead = 0;

  private constructor(opts: SpoolOptions, directory: SpoolDirectory) {
    super();
    this.memoryBudget = opts.memoryBudget ?? SPOOL_DEFAULTS.memoryBudget;
    this.diskBudget = opts.diskBudget ?? SPOOL_DEFAULTS.diskBudget;
    this.readChunkSize = opts.readChunkSize ?? SPOOL_DEFAULTS.readChunkSize;
    this.log = opts.logger ?? silentLogger();
    this.directory = directory;
    this.disk = new DiskTier(directory, opts.segmentSize ?? SPOOL_DEFAULTS.segmentSize);
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
    return this.memory.bytes + this.disk.pendingBytes;
  }

  /** Bytes accepted for disk and not written yet (held in memory meanwhile). */
  get pendingWriteBytes(): number {
    return this.disk.pendingBytes;
  }

  /** Bytes in segment files that exist now. */
  get diskBytes(): number {
    return this.disk.bytesHeld;
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
    const onDisk = this.disk.hasUnread();
    if (onDisk || this.memory.bytes + chunk.length > this.memoryBudget) {
      if (!onDisk) this.log.info({ memoryBytes: this.memory.bytes, memoryBudget: this.memoryBudget }, 'spool memory budget reached: spilling to disk');
      this.disk.enqueue(chunk);
      this.pumpWrites();
    } else {
      this.memory.push(chunk);
      this.waiters.wakeReader();
    }
    if (!this.full && this.overBudget()) {
      this.full = true;
      this.log.warn({ diskBytes: this.disk.bytesHeld, pendingWrites: this.disk.pendingBytes, diskBudget: this.diskBudget }, 'spool full: the producer should pause');
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
    return this.waiters.spaceWait();
  }

  /** No more appends; read() returns null once everything is read. */
  end(): void {
    this.ended = true;
    this.waiters.wakeReader();
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
        if (!this.memory.isEmpty) return this.takeMemory();
        const segments = this.disk.segments;
        const seg = segments[0];
        if (seg !== undefined) {
          if (seg.readPos < seg.written) return await this.readSegment(seg);
          // Fully read. It may go if the writer moved on to a later segment, or if the
          // writer is idle (the next spill then starts a new segment).
          if (segments.length > 1 || !this.disk.writing) {
            await this.dropFirstSegment();
            continue;
          }
        }
        if (this.ended && this.bufferedBytes === 0) return null;
        await this.waiters.readerWait();
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
    this.waiters.wakeReader();
    this.waiters.releaseSpace();
    // Let a write in flight finish before closing its file.
    await this.disk.writer;
    await this.disk.destroyAll();
    this.memory.clear();
    try {
      await this.directory.remove();
      this.log.debug({ dir: this.directory.path }, 'spool closed');
    } catch (e) {
      // Not fatal: something we did not create is in the directory, so it stays.
      this.log.warn({ dir: this.directory.path, err: e }, 'spool directory left in place');
    }
  }

  // ---------------------------------------------------------------------------

  private overBudget(): boolean {
    const pending = this.disk.pendingBytes;
    return this.disk.bytesHeld + pending > this.diskBudget || pending > this.writeLagLimit();
  }

  /**
   * Bytes allowed to wait for the disk (held in memory) before the producer must pause: what
   * the memory budget leaves, so that memory chunks and queued writes together stay near the
   * budget, but never less than a few write batches (a deeper queue does not make the disk
   * faster; a shallower one would pause the producer on every write).
   */
  private writeLagLimit(): number {
    return Math.max(this.memoryBudget - this.memory.bytes, Math.min(this.disk.segmentBytes, MIN_WRITE_LAG_BYTES));
  }

  /**
   * Resume the producer as soon as it fits again: a paused socket makes the source buffer
   * the stream, and the source drops replicas whose output buffer grows too much. Disk
   * space comes back a whole segment at a time, which is hysteresis enough; the write lag
   * must halve before resuming.
   */
  private checkSpace(): void {
    if (!this.full || this.overBudget()) return;
    if (this.disk.pendingBytes > this.writeLagLimit() / 2) return;
    this.full = false;
    this.log.info({ diskBytes: this.disk.bytesHeld }, 'spool has room again');
    this.waiters.releaseSpace();
    this.emit('drain');
  }

  private takeMemory(): Buffer {
    const chunk = this.memory.shift();
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
    const path = this.disk.segments[0]!.path;
    try {
      await this.disk.dropFirst();
    } catch (e) {
      throw this.fail(`removing spool segment ${path}`, e);
    }
    if (!this.disk.hasUnread() && this.disk.segments.length === 0) this.log.debug('spool caught up with the disk: back to memory');
    this.checkSpace();
  }

  /** Start the single writer loop if it is idle. */
  private pumpWrites(): void {
    if (this.disk.writing || this.failure || this.closed) return;
    this.disk.writing = true;
    this.disk.writer = this.writeLoop();
  }

  private async writeLoop(): Promise<void> {
    const disk = this.disk;
    try {
      while (!disk.queue.isEmpty && !this.closed) {
        const seg = await disk.writableSegment();
        const batch: Buffer[] = [];
        const bytes = disk.queue.shiftBatch(batch, MAX_WRITE_BATCH_CHUNKS, MAX_WRITE_BATCH_BYTES);
        await seg.append(batch, bytes);
        disk.wrote(bytes);
        this.waiters.wakeReader();
        this.checkSpace();
      }
    } catch (e) {
      this.fail('writing a spool segment', e);
    } finally {
      disk.writing = false;
    }
    // Appends may have arrived during the last await of the loop's exit path.
    if (!disk.queue.isEmpty && !this.failure && !this.closed) this.pumpWrites();
  }

  private fail(what: string, cause: unknown): LocalIoError {
    if (!this.failure) {
      const msg = cause instanceof Error ? cause.message : String(cause);
      this.failure = new LocalIoError(`spool: ${what} in ${this.directory.path} failed: ${msg}`, { cause });
      this.log.error({ err: this.failure }, 'spool I/O failed');
      this.waiters.wakeReader();
      this.waiters.releaseSpace();
      if (this.listenerCount('error') > 0) this.emit('error', this.failure);
    }
    return this.failure;
  }
}

const EMPTY = Buffer.alloc(0);
