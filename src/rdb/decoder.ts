/**
 * Incremental RDB decoder: push() Buffers of any size, get back the records they completed.
 *
 * This file owns buffering, the checksum, the header and the top-level opcodes
 * (redis-internals §2.1, §2.6, §2.7). Per-key output is in ./key-output.ts, value layouts in
 * ./values/, blob encodings in ./structure/; ./input.ts explains the unit / NEED_MORE
 * discipline that makes every unit restartable.
 */
import { constants as bufferConstants } from 'node:buffer';
import { RdbError, printableKey } from '../errors.js';
import { Crc64 } from './crc64.js';
import * as F from './format.js';
import { NEED_MORE, RdbInput, hex2 } from './input.js';
import { KeyOutput, type KeyStartRecord } from './key-output.js';
import type { RdbDecoderOptions, RdbRecord } from './types.js';
import type { ValueReader } from './values/context.js';
import { skipModuleOpcode } from './values/module.js';
import { ValueReaders } from './values/readers.js';
import { LZF_ENCODING } from './values/lzf-stream.js';
import { isLongPlainString } from './values/plain.js';

export type { KeyRecord } from './format.js';

const DEFAULT_RAW_LIMIT = 16 << 20;
/** A blocked unit needing at least this many bytes is assembled in place (startAssembly()). */
const ASSEMBLE_MIN = 256 * 1024;
const ASSEMBLE_SLACK = 64 * 1024;

const enum State {
  Magic,
  Top,
  Value,
  ModuleAux,
  Done,
}

export class RdbDecoder {
  private readonly input: RdbInput = new RdbInput();
  private readonly keys: KeyOutput;
  private readonly crc: Crc64 | null;

  private state = State.Magic;
  private _magic: 'REDIS' | 'VALKEY' | undefined = undefined;
  private failure: RdbError | null = null;

  // Chunks waiting until the blocked unit can run (see push()), and chunks after the end.
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private tail: Buffer[] = [];
  /** Destination of a long unit being assembled (see startAssembly()), and its filled length. */
  private asm: Buffer | null = null;
  private asmFill = 0;

  // Current db and the modifiers (expire, idle, freq, key meta) of the next key.
  private db = 0;
  private recordStart = -1;
  private expireMs: number | null = null;
  private lruIdle: number | null = null;
  private lfuFreq: number | null = null;

  /** Reader of the current key's value (or of a MODULE_AUX record). */
  private reader: ValueReader | null = null;
  private readonly readers: ValueReaders;

  constructor(opts: RdbDecoderOptions = {}) {
    this.keys = new KeyOutput(this.input, {
      captureRaw: opts.captureRaw === true,
      rawLimit: opts.rawLimit ?? DEFAULT_RAW_LIMIT,
      batchSize: Math.max(1, Math.floor(opts.batchSize ?? 1024)),
      skipCorrupt: opts.onCorruptValue === 'skip',
    });
    this.crc = opts.verifyChecksum !== false ? new Crc64() : null;
    this.input.onBlobError = this.keys;
    this.readers = new ValueReaders(this.keys);
  }

  /** True once the 'end' record was emitted (EOF opcode and checksum consumed). */
  get done(): boolean {
    return this.state === State.Done;
  }

  /** RDB version from the header; 0 before it was read. */
  get version(): number {
    return this.keys.version;
  }

  get magic(): 'REDIS' | 'VALKEY' | undefined {
    return this._magic;
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
    if (this.state === State.Done) {
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
    if (this.state === State.Done) return;
    const input = this.input;
    const have = input.buf.length - input.pos + this.pendingLen;
    this.failure = new RdbError(
      `truncated: expected ${this.expecting()} (input ended ${have} byte(s) into a unit that needs at least ${Math.max(input.need, have + 1)})`,
      input.base + input.buf.length + this.pendingLen,
      input.key,
    );
    throw this.failure;
  }

  /** Bytes received after the RDB ended (e.g. a diskless EOF mark, then stream bytes). */
  remainder(): Buffer {
    const input = this.input;
    const head = this.state === State.Done ? [input.buf.subarray(input.pos)] : [];
    const parts = head.concat(this.pending, this.tail);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  // ---- Parsing ----------------------------------------------------------------------------

  private run(): void {
    const input = this.input;
    try {
      for (;;) {
        input.p = input.pos;
        switch (this.state) {
          case State.Top:
            input.key = undefined;
            this.topUnit();
            break;
          case State.Value:
            if (this.reader!.step()) {
              this.keys.end();
              this.reader = null;
              this.state = State.Top;
            }
            break;
          case State.ModuleAux:
            if (this.readers.module.step()) {
              this.keys.capture.stop();
              this.reader = null;
              this.state = State.Top;
            }
            break;
          case State.Magic:
            this.magicUnit();
            break;
          case State.Done:
            return;
        }
        input.pos = input.p;
        input.need = 0;
      }
    } catch (e) {
      if (e === NEED_MORE) return;
      this.failure =
        e instanceof RdbError
          ? e
          : new RdbError(`internal decoder error: ${e instanceof Error ? e.message : String(e)}`, input.base + input.p, input.key, { cause: e });
      throw this.failure;
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

  private magicUnit(): void {
    const input = this.input;
    const text = input.bytes(9).toString('latin1');
    let magic: 'REDIS' | 'VALKEY';
    let digits: string;
    if (text.startsWith('REDIS')) {
      magic = 'REDIS';
      digits = text.slice(5);
    } else if (text.startsWith('VALKEY')) {
      magic = 'VALKEY';
      digits = text.slice(6);
    } else {
      throw input.error(`not an RDB file: expected magic "REDIS" or "VALKEY", found ${JSON.stringify(text)}`, input.base);
    }
    const at = input.base + 9 - digits.length;
    if (!/^[0-9]+$/.test(digits)) throw input.error(`bad RDB version ${JSON.stringify(digits)} in the header`, at);
    const version = Number(digits);
    const ok = magic === 'REDIS' ? version >= 1 && version <= F.MAX_REDIS_VERSION : version >= F.MIN_VALKEY_VERSION && version <= F.MAX_VALKEY_VERSION;
    if (!ok) throw input.error(`unsupported RDB version ${version} for magic ${magic}`, at);
    this._magic = magic;
    this.keys.version = version;
    this.keys.valkey = magic === 'VALKEY';
    input.version = version;
    this.state = State.Top;
    this.keys.out.push({ kind: 'header', magic, version });
  }

  /** One top-level opcode with its payload, or a key header. */
  private topUnit(): void {
    const input = this.input;
    const at = input.base + input.p;
    const op = input.u8();
    if (op <= F.MAX_OBJECT_TYPE) return this.keyHeader(op, at);
    const out = this.keys.out;
    switch (op) {
      case F.OP_EOF:
        this.checkNoModifiers(at, 'EOF');
        return this.eofUnit();
      case F.OP_SELECTDB: {
        const db = input.len('SELECTDB db number');
        this.checkNoModifiers(at, 'SELECTDB');
        this.db = db;
        out.push({ kind: 'selectDb', db });
        return;
      }
      case F.OP_EXPIRETIME_MS: {
        const ms = input.i64le('expire time');
        this.modifier(at);
        this.expireMs = ms;
        return;
      }
      case F.OP_EXPIRETIME: {
        const s = input.i32le();
        this.modifier(at);
        this.expireMs = s * 1000;
        return;
      }
      case F.OP_IDLE: {
        const idle = input.len('LRU idle time');
        this.modifier(at);
        this.lruIdle = idle;
        return;
      }
      case F.OP_FREQ: {
        const f = input.u8();
        this.modifier(at);
        this.lfuFreq = f;
        return;
      }
      case F.OP_AUX: {
        const key = input.str('AUX key');
        const value = input.str('AUX value');
        out.push({ kind: 'aux', key, value });
        return;
      }
      case F.OP_RESIZEDB: {
        const dbSize = input.len('RESIZEDB db size');
        const expiresSize = input.len('RESIZEDB expires size');
        out.push({ kind: 'resizeDb', dbSize, expiresSize });
        return;
      }
      case F.OP_SLOT_INFO: {
        const slot = input.len('SLOT_INFO slot');
        const keys = input.len('SLOT_INFO key count');
        const expires = input.len('SLOT_INFO expires count');
        out.push({ kind: 'slotInfo', slot, keys, expires });
        return;
      }
      case F.OP_FUNCTION2: {
        const code = input.str('function library code');
        this.checkNoModifiers(at, 'FUNCTION2');
        out.push({ kind: 'function', code });
        return;
      }
      case F.OP_FUNCTION_PRE_GA: {
        const name = input.str('function name');
        const engine = input.str('function engine');
        const hasDesc = input.len('function description flag');
        if (hasDesc) input.str('function description');
        const code = input.str('function code');
        this.checkNoModifiers(at, 'FUNCTION_PRE_GA');
        // Redis 7.0 GA loads these by rebuilding the shebang line in front of the code.
        const head = Buffer.from(`#!${engine.toString('latin1')} name=${name.toString('latin1')}\n`, 'latin1');
        out.push({ kind: 'function', code: Buffer.concat([head, code]) });
        return;
      }
      case F.OP_MODULE_AUX:
        this.checkNoModifiers(at, 'MODULE_AUX');
        this.keys.capture.begin(input.base + input.p, Infinity);
        this.readers.module.begin(-1);
        this.reader = this.readers.module;
        this.state = State.ModuleAux;
        return;
      case F.OP_KEY_META:
        if (this.keys.valkey) return this.skipSlotImport(at);
        this.skipKeyMeta();
        this.modifier(at);
        return;
      case F.OP_KEY_NOEVICT:
        if (this.keys.valkey) throw input.error(`unsupported opcode 0x${hex2(op)} in a VALKEY file`, at);
        this.modifier(at);
        return;
      case F.OP_RE_RAM_LRU:
      case F.OP_RE_SLOT_NUM:
        input.len('Redis Enterprise opcode value');
        return;
      default:
        throw input.error(`unknown opcode or value type 0x${hex2(op)}`, at);
    }
  }

  private modifier(at: number): void {
    if (this.recordStart < 0) this.recordStart = at;
  }

  /** Key modifiers (expire, idle, freq, key meta) must be followed by their key. */
  private checkNoModifiers(at: number, what: string): void {
    if (this.recordStart >= 0) throw this.input.error(`${what} opcode between a key's expire/idle/freq opcodes and its value type`, at);
  }

  /** Redis 8.6 KEY_META (§2.14): len(class count 1..7), each a u32 class spec and module opcodes. */
  private skipKeyMeta(): void {
    const input = this.input;
    const at = input.offset;
    const n = input.len('KEY_META class count');
    if (n < 1 || n > 7) throw input.error(`KEY_META class count ${n} is not 1..7`, at);
    for (let i = 0; i < n; i++) {
      input.skip(4);
      while (skipModuleOpcode(input));
    }
  }

  /** Valkey 9 SLOT_IMPORT: str job name, len(n), n × (len start, len end); parsed and dropped. */
  private skipSlotImport(at: number): void {
    const input = this.input;
    this.checkNoModifiers(at, 'SLOT_IMPORT');
    input.str('SLOT_IMPORT job name');
    const n = input.len('SLOT_IMPORT range count');
    for (let i = 0; i < n; i++) {
      input.len('SLOT_IMPORT range start');
      input.len('SLOT_IMPORT range end');
    }
  }

  private eofUnit(): void {
    const input = this.input;
    const eofEnd = input.p;
    let checksum = 0n;
    if (this.keys.version >= 5) {
      input.ensure(8);
      checksum = input.buf.readBigUInt64LE(input.p);
      input.p += 8;
    }
    let verified = false;
    if (this.crc !== null && checksum !== 0n) {
      // Everything before buf[0] is already folded in (dropConsumed).
      this.crc.update(input.buf, 0, eofEnd);
      const computed = this.crc.value();
      if (computed !== checksum) {
        const hex = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;
        throw input.error(`checksum mismatch: the file says ${hex(checksum)}, the data hashes to ${hex(computed)}`, input.base + eofEnd);
      }
      verified = true;
    }
    this.state = State.Done;
    this.keys.out.push({ kind: 'end', checksum, checksumVerified: verified });
  }

  private keyHeader(t: number, at: number): void {
    const input = this.input;
    const type = t === 0 ? 'string' : F.valueTypeOf(t);
    if (type === null || (t >= 23 && this.keys.valkey)) throw input.error(F.unsupportedTypeMessage(t, this.keys.valkey), at);
    const key = input.str('key');
    const valueStart = input.base + input.p;
    // Plain strings, by far the most common keys, are read in the same unit as their header.
    // LZF ones take the general path, which can skip them under onCorruptValue 'skip', and
    // so do long ones, which go out in pieces (values/plain.ts).
    // (The choice depends only on the data, never on where a chunk ended.)
    let value: Buffer | null = null;
    if (t === 0) {
      input.key = key;
      if (input.p >= input.buf.length) input.short(1);
      if (input.buf[input.p] !== LZF_ENCODING && !isLongPlainString(input)) value = input.str('string value');
    }
    const start: KeyStartRecord = {
      kind: 'keyStart',
      db: this.db,
      key,
      rdbType: t,
      type,
      expireMs: this.expireMs,
      lruIdle: this.lruIdle,
      lfuFreq: this.lfuFreq,
      offset: this.recordStart >= 0 ? this.recordStart : at,
    };
    this.recordStart = -1;
    this.expireMs = null;
    this.lruIdle = null;
    this.lfuFreq = null;
    if (value !== null) {
      this.keys.stringKey(start, value, valueStart);
      input.key = undefined;
      return;
    }
    this.keys.begin(start, valueStart);
    const reader = this.readers.for(t);
    this.reader = reader;
    this.state = State.Value;
    reader.begin(t);
  }

  /** What the decoder is waiting for, for "truncated" messages. */
  private expecting(): string {
    const input = this.input;
    switch (this.state) {
      case State.Magic:
        return 'the 9-byte RDB header';
      case State.Top: {
        const b = input.pos < input.buf.length ? input.buf[input.pos]! : -1;
        if (b === F.OP_EOF) return '8-byte checksum after EOF opcode';
        if (input.key !== undefined) return `the string value of key ${JSON.stringify(printableKey(input.key))}`;
        if (b >= 0 && b <= F.MAX_OBJECT_TYPE) return `the key name of a type ${b} record`;
        if (b >= 0) return `the payload of opcode 0x${hex2(b)}`;
        return 'an opcode or a key (the RDB has no EOF opcode)';
      }
      case State.ModuleAux:
        return `${this.readers.module.describe()} of a MODULE_AUX record`;
      case State.Value:
        return `${this.reader!.describe()} of key ${JSON.stringify(input.key ? printableKey(input.key) : '')}`;
      default:
        return 'nothing';
    }
  }
}
