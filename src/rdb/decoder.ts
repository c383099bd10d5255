/**
 * Incremental RDB decoder: push() Buffers of any size, get back the records they completed.
 *
 * This file owns the bytes: which chunks form the working buffer, holding a blocked unit's
 * chunks until it can run, assembling a long unit in place, folding dropped bytes into the
 * checksum, and the bytes after the end. The RDB grammar (header, opcodes, key headers, EOF)
 * is in ./parser.ts, per-key output in ./key-output.ts, value layouts in ./values/, blob
 * encodings in ./structure/; ./input.ts explains the unit / NEED_MORE discipline that makes
 * every unit restartable.
 */
import { constants as bufferConstants } from 'node:buffer';
import { RdbError } from '../errors.js';
import { Crc64 } from './crc64.js';
import { RdbInput } from './input.js';
import { KeyOutput } from './key-output.js';
import { RecordParser } from './parser.js';
import type { RdbDecoderOptions, RdbRecord } from './types.js';

export type { KeyRecord } from './format.js';

const DEFAULT_RAW_LIMIT = 16 << 20;
/** A blocked unit needing at least this many bytes is assembled in place (startAssembly()). */
const ASSEMBLE_MIN = 256 * 1024;
const ASSEMBLE_SLACK = 64 * 1024;

export class RdbDecoder {
  private readonly input: RdbInput = new RdbInput();
  private readonly keys: KeyOutput;
  private readonly crc: Crc64 | null;
  private readonly parser: RecordParser;
  private failure: RdbError | null = null;

  // Chunks waiting until the blocked unit can run (see push()), and chunks after the end.
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private tail: Buffer[] = [];
  /** Destination of a long unit being assembled (see startAssembly()), and its filled length. */
  private asm: Buffer | null = null;
  private asmFill = 0;

  constructor(opts: RdbDecoderOptions = {}) {
    this.keys = new KeyOutput(this.input, {
      captureRaw: opts.captureRaw === true,
      rawLimit: opts.rawLimit ?? DEFAULT_RAW_LIMIT,
      batchSize: Math.max(1, Math.floor(opts.batchSize ?? 1024)),
      skipCorrupt: opts.onCorruptValue === 'skip',
    });
    this.crc = opts.verifyChecksum !== false ? new Crc64() : null;
    this.input.onBlobError = this.keys;
    this.parser = new RecordParser(this.input, this.keys, this.crc);
  }

  /** True once the 'end' record was emitted (EOF opcode and checksum consumed). */
  get done(): boolean {
    return this.parser.done;
  }

  /** RDB version from the header; 0 before it was read. */
  get version(): number {
    return this.keys.version;
  }

  get magic(): 'REDIS' | 'VALKEY' | undefined {
    return this.parser.magic;
  }

  /** Absolute offset of the next unparsed byte. */
  get bytesConsumed(): number {
    return this.input.base + this.input.pos;
  }

  /** Keys with an empty collection value that were skipped (Redis skips them on load too). */
  get emptyKeysSkipped(): number {
    return this.keys.emptyKeysSkipped;
  }

  /**
   * Feed bytes; returns the records they completed. The decoder keeps views of `chunk`, so the
   * caller must not modify it afterwards. Throws RdbError on bad input (and again on every
   * later call).
   *
   * Any chunk size works. For speed, push at most ~64 KiB at a time (subarray() a bigger
   * chunk): all records of one push are alive together, and a 1 MiB push of small keys makes
   * ~100k records that the GC has to copy, about 3x slower than the same bytes in 64 KiB pushes.
   *
   * Memory: a string value of 1 MiB or more (plain or LZF) goes out as `stringPart` pieces
   * and is never held (but every piece a push completes is in its result: LZF data can expand
   * about 90-fold, so a 64 KiB push may return ~6 MiB of pieces); any other element longer
   * than 256 KiB is held once (its chunks are
   * copied into one Buffer allocated when its length is read, and released), and a long LZF
   * element is decompressed as it arrives; beyond that the decoder holds at most about one chunk.
   */
  push(chunk: Buffer): RdbRecord[] {
    if (this.failure !== null) throw this.failure;
    if (this.parser.done) {
      if (chunk.length > 0) this.tail.push(chunk);
      return [];
    }
    if (chunk.length === 0) return [];
    const out: RdbRecord[] = [];
    this.keys.out = out;
    let rest: Buffer | null = chunk;
    while (rest !== null) {
      if (this.done) {
        this.tail.push(rest);
        break;
      }
      rest = this.asm !== null ? this.feedAssembly(rest) : this.feed(rest);
    }
    this.keys.out = [];
    return out;
  }

  /**
   * The usual path: the working buffer becomes the chunk itself (nothing held), or the held
   * bytes joined with it. A unit needing many more bytes than are here starts an assembly.
   * Returns the part of the chunk still to feed (after switching to an assembly), or null.
   */
  private feed(chunk: Buffer): Buffer | null {
    const input = this.input;
    const avail = input.buf.length - input.pos;
    if (avail + this.pendingLen + chunk.length < input.need) {
      if (input.need >= ASSEMBLE_MIN) {
        this.startAssembly();
        return chunk;
      }
      // The blocked unit needs more than this: keep the chunk and join everything once, later.
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
      return null;
    }
    this.dropConsumed();
    if (avail === 0 && this.pendingLen === 0) {
      input.buf = chunk;
    } else {
      const total = avail + this.pendingLen + chunk.length;
      try {
        if (total > bufferConstants.MAX_LENGTH) throw new RangeError(`more than ${bufferConstants.MAX_LENGTH} bytes, the largest Buffer Node can make`);
        input.buf = Buffer.concat([input.buf.subarray(input.pos), ...this.pending, chunk], total);
      } catch (e) {
        throw this.cannotHold(total, e);
      }
    }
    input.base += input.pos;
    input.pos = 0;
    input.p = 0;
    this.pending = [];
    this.pendingLen = 0;
    this.run();
    return null;
  }

  /**
   * A unit needs `need` bytes, far more than are here (a long string): allocate them now and
   * copy every chunk in as it arrives, so the chunks die young and the element exists once,
   * instead of a list of chunks plus their concatenation (twice its size at the join). Like
   * Redis, which allocates a string's declared length before reading it, this trusts the
   * length: only the bytes that really arrive are touched.
   * The slack lets the few bytes that usually follow in the same unit (a score after a
   * member, a hash value after its field) land in the same buffer instead of forcing a copy
   * of the whole element into the next working buffer.
   */
  private startAssembly(): void {
    const input = this.input;
    const need = input.need;
    this.dropConsumed();
    let asm: Buffer;
    try {
      if (need > bufferConstants.MAX_LENGTH) throw new RangeError(`more than ${bufferConstants.MAX_LENGTH} bytes, the largest Buffer Node can make`);
      asm = Buffer.allocUnsafe(Math.min(need + ASSEMBLE_SLACK, bufferConstants.MAX_LENGTH));
    } catch (e) {
      throw this.cannotHold(need, e);
    }
    let fill = input.buf.copy(asm, 0, input.pos);
    for (const b of this.pending) fill += b.copy(asm, fill);
    input.base += input.pos;
    input.pos = 0;
    input.p = 0;
    input.buf = asm.subarray(0, fill);
    this.pending = [];
    this.pendingLen = 0;
    this.asm = asm;
    this.asmFill = fill;
  }

  /** Copy a chunk into the assembly, run the unit once its bytes are in. Returns the rest. */
  private feedAssembly(chunk: Buffer): Buffer | null {
    const asm = this.asm!;
    if (this.input.need > asm.length) {
      this.outgrowAssembly();
      return chunk;
    }
    const n = Math.min(asm.length - this.asmFill, chunk.length);
    chunk.copy(asm, this.asmFill, 0, n);
    this.asmFill += n;
    this.runAssembly();
    return n < chunk.length ? chunk.subarray(n) : null;
  }

  /**
   * The parser sees only the bytes the blocked unit asked for (the unit starts at asm[0]), so
   * no later unit can make a view into this buffer and keep a long element alive with, say,
   * the next key's name. Once the unit is done, the bytes after it are copied out.
   */
  private runAssembly(): void {
    const input = this.input;
    const asm = this.asm!;
    while (input.need <= this.asmFill) {
      input.buf = asm.subarray(0, input.need);
      this.run();
      if (input.pos > 0 || this.done) {
        this.leaveAssembly();
        // The bytes copied after the unit may already hold the next units.
        if (!this.done && input.buf.length >= input.need) this.run();
        return;
      }
      if (input.need > asm.length) {
        this.outgrowAssembly();
        return;
      }
    }
    input.buf = asm.subarray(0, this.asmFill);
  }

  /** The long unit is done: continue on a copy of the (slack-sized) bytes after it. */
  private leaveAssembly(): void {
    const input = this.input;
    const asm = this.asm!;
    this.asm = null;
    input.buf = asm.subarray(0, this.asmFill);
    this.dropConsumed();
    input.buf = Buffer.from(asm.subarray(input.pos, this.asmFill));
    input.base += input.pos;
    input.pos = 0;
    input.p = 0;
  }

  /** The unit needs more than the assembly holds (a long field, then a long value): the usual path takes over. */
  private outgrowAssembly(): void {
    const asm = this.asm!;
    this.asm = null;
    this.input.buf = asm.subarray(0, this.asmFill);
  }

  private cannotHold(total: number, e: unknown): RdbError {
    const input = this.input;
    const why = e instanceof Error ? e.message : String(e);
    this.failure = new RdbError(`cannot hold one element of ${total} bytes in memory (${why})`, input.base + input.pos, input.key, { cause: e });
    return this.failure;
  }

  /** Call at end of input: throws RdbError unless the 'end' record was emitted. */
  finish(): void {
    if (this.failure !== null) throw this.failure;
    if (this.parser.done) return;
    const input = this.input;
    const have = input.buf.length - input.pos + this.pendingLen;
    this.failure = new RdbError(
      `truncated: expected ${this.parser.expecting()} (input ended ${have} byte(s) into a unit that needs at least ${Math.max(input.need, have + 1)})`,
      input.base + input.buf.length + this.pendingLen,
      input.key,
    );
    throw this.failure;
  }

  /** Bytes received after the RDB ended (e.g. a diskless EOF mark, then stream bytes). */
  remainder(): Buffer {
    const input = this.input;
    const head = this.parser.done ? [input.buf.subarray(input.pos)] : [];
    const parts = head.concat(this.pending, this.tail);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Parse what the working buffer holds; an error stops the decoder for good. */
  private run(): void {
    const err = this.parser.run();
    if (err !== null) {
      this.failure = err;
      throw err;
    }
  }

  /** Fold the bytes about to be dropped from the working buffer into the checksum and capture. */
  private dropConsumed(): void {
    const input = this.input;
    const to = input.pos;
    if (to === 0) return;
    if (this.crc !== null) this.crc.update(input.buf, 0, to);
    const capture = this.keys.capture;
    if (capture.active) capture.save(input.buf, input.base, to);
  }
}
