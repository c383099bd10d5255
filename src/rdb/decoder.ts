/**
 * Incremental RDB decoder: push() Buffers of any size, get back the records they completed.
 *
 * This file owns buffering, the checksum, raw capture, the header and the top-level opcodes
 * (redis-internals §2.1, §2.6); value layouts live in ./values/, blob encodings in
 * ./structure/. See ./input.ts for the unit / NEED_MORE parsing discipline.
 */
import { RdbError, printableKey } from '../errors.js';
import { Capture } from './capture.js';
import { Crc64 } from './crc64.js';
import { NEED_MORE, RdbInput, hex2 } from './input.js';
import { BlobError } from './structure/blob-error.js';
import type { ArrayItem, HashItem, KeyHeader, RdbDecoderOptions, RdbRecord, StreamEntry, StreamPelEntry, ValueType, ZsetItem } from './types.js';
import { ArrayReader } from './values/array.js';
import type { ItemKind, ValueContext, ValueReader } from './values/context.js';
import { ModuleReader, skipModuleOpcode } from './values/module.js';
import { BlobReader, QuicklistReader } from './values/packed.js';
import { HashReader, SequenceReader, StringReader, ZsetReader } from './values/plain.js';
import { StreamReader } from './values/stream.js';

// Opcodes (redis src/rdb.h names in comments).
const OP_KEY_NOEVICT = 240; // RDB_OPCODE_KEY_NOEVICT (Redis dev)
const OP_KEY_META = 243; // RDB_OPCODE_KEY_META (Redis 8.6) / RDB_OPCODE_SLOT_IMPORT (Valkey 9)
const OP_SLOT_INFO = 244; // RDB_OPCODE_SLOT_INFO
const OP_FUNCTION2 = 245; // RDB_OPCODE_FUNCTION2
const OP_FUNCTION_PRE_GA = 246; // RDB_OPCODE_FUNCTION_PRE_GA
const OP_MODULE_AUX = 247; // RDB_OPCODE_MODULE_AUX
const OP_IDLE = 248; // RDB_OPCODE_IDLE
const OP_FREQ = 249; // RDB_OPCODE_FREQ
const OP_AUX = 250; // RDB_OPCODE_AUX
const OP_RESIZEDB = 251; // RDB_OPCODE_RESIZEDB
const OP_EXPIRETIME_MS = 252; // RDB_OPCODE_EXPIRETIME_MS
const OP_EXPIRETIME = 253; // RDB_OPCODE_EXPIRETIME
const OP_SELECTDB = 254; // RDB_OPCODE_SELECTDB
const OP_EOF = 255; // RDB_OPCODE_EOF
/** Redis Enterprise RAM_LRU / SLOT_NUM: one length each (librdb skips them). */
const OP_RE_RAM_LRU = 107;
const OP_RE_SLOT_NUM = 121;

const MAX_REDIS_VERSION = 15;
const MIN_VALKEY_VERSION = 80;
const MAX_VALKEY_VERSION = 81;

const ONE_MB = 1 << 20;
const DEFAULT_RAW_LIMIT = 16 * ONE_MB;

const enum State {
  Magic,
  Top,
  Value,
  ModuleAux,
  Done,
}

/** The records that belong to one key (everything between keyStart and keyEnd). */
export type KeyRecord = Extract<
  RdbRecord,
  {
    kind:
      | 'keyStart'
      | 'string'
      | 'listItems'
      | 'setItems'
      | 'zsetItems'
      | 'hashItems'
      | 'streamEntries'
      | 'streamMeta'
      | 'streamGroup'
      | 'streamPel'
      | 'streamConsumer'
      | 'arrayMeta'
      | 'arrayItems'
      | 'module'
      | 'keyEnd';
  }
>;

/** ValueType by RDB object type; null for types that are not values. */
function valueTypeOf(t: number): ValueType | null {
  switch (t) {
    case 0:
      return 'string';
    case 1:
    case 10:
    case 14:
    case 18:
      return 'list';
    case 2:
    case 11:
    case 20:
      return 'set';
    case 3:
    case 5:
    case 12:
    case 17:
      return 'zset';
    case 4:
    case 9:
    case 13:
    case 16:
    case 22:
    case 23:
    case 24:
    case 25:
      return 'hash';
    case 7:
      return 'module';
    case 15:
    case 19:
    case 21:
    case 26:
    case 27:
      return 'stream';
    case 28:
      return 'array';
    default:
      return null;
  }
}

export class RdbDecoder implements ValueContext {
  readonly input = new RdbInput();
  /** Keys with an empty collection value that were skipped (as Redis does on load). */
  emptyKeysSkipped = 0;

  private readonly verify: boolean;
  private readonly captureRaw: boolean;
  private readonly rawLimit: number;
  private readonly batchSize: number;
  private readonly skipCorrupt: boolean;

  private state = State.Magic;
  private _version = 0;
  private _magic: 'REDIS' | 'VALKEY' | undefined = undefined;
  private failure: RdbError | null = null;
  private out: RdbRecord[] = [];

  // Input bookkeeping.
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private tail: Buffer[] = [];
  private readonly crc: Crc64 | null;

  // Current db and the modifiers of the next key.
  private db = 0;
  private recordStart = -1;
  private expireMs: number | null = null;
  private lruIdle: number | null = null;
  private lfuFreq: number | null = null;

  // Current key.
  private reader: ValueReader | null = null;
  private pendingStart: ({ kind: 'keyStart' } & KeyHeader) | null = null;
  private valueStart = 0;
  private readonly capture = new Capture();
  private capturingRaw = false;
  private items: unknown[] = [];
  private batchBytes = 0;
  private kind: ItemKind = 'listItems';
  private corruptErr: BlobError | null = null;

  // One reader per layout, reused for every key.
  private readonly stringReader: StringReader;
  private readonly sequenceReader: SequenceReader;
  private readonly zsetReader: ZsetReader;
  private readonly hashReader: HashReader;
  private readonly blobReader: BlobReader;
  private readonly quicklistReader: QuicklistReader;
  private readonly streamReader: StreamReader;
  private readonly moduleReader: ModuleReader;
  private readonly arrayReader: ArrayReader;

  constructor(opts: RdbDecoderOptions = {}) {
    this.verify = opts.verifyChecksum !== false;
    this.captureRaw = opts.captureRaw === true;
    this.rawLimit = opts.rawLimit ?? DEFAULT_RAW_LIMIT;
    this.batchSize = Math.max(1, opts.batchSize ?? 1024);
    this.skipCorrupt = opts.onCorruptValue === 'skip';
    this.crc = this.verify ? new Crc64() : null;
    this.input.onBlobError = this;
    this.stringReader = new StringReader(this);
    this.sequenceReader = new SequenceReader(this);
    this.zsetReader = new ZsetReader(this);
    this.hashReader = new HashReader(this);
    this.blobReader = new BlobReader(this);
    this.quicklistReader = new QuicklistReader(this);
    this.streamReader = new StreamReader(this);
    this.moduleReader = new ModuleReader(this);
    this.arrayReader = new ArrayReader(this);
  }

  /** True once the 'end' record was emitted (EOF opcode and checksum consumed). */
  get done(): boolean {
    return this.state === State.Done;
  }

  get version(): number {
    return this._version;
  }

  get magic(): 'REDIS' | 'VALKEY' | undefined {
    return this._magic;
  }

  get valkey(): boolean {
    return this._magic === 'VALKEY';
  }

  /** Absolute offset of the next unparsed byte. */
  get bytesConsumed(): number {
    return this.input.base + this.input.pos;
  }

  get corrupt(): BlobError | null {
    return this.corruptErr;
  }

  /**
   * Feed bytes; returns the records they completed. The decoder keeps views of `chunk`, so the
   * caller must not modify it afterwards. Throws RdbError on bad input (and again on every
   * later call).
   */
  push(chunk: Buffer): RdbRecord[] {
    if (this.failure !== null) throw this.failure;
    if (this.state === State.Done) {
      if (chunk.length > 0) this.tail.push(chunk);
      return [];
    }
    if (chunk.length === 0) return [];
    const input = this.input;
    const avail = input.buf.length - input.pos;
    if (avail + this.pendingLen + chunk.length < input.need) {
      // The blocked unit needs more than this; join everything once, when it is all here.
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
      return [];
    }
    this.dropConsumed();
    if (avail === 0 && this.pendingLen === 0) {
      input.buf = chunk;
    } else {
      const parts = [input.buf.subarray(input.pos), ...this.pending, chunk];
      input.buf = Buffer.concat(parts, avail + this.pendingLen + chunk.length);
    }
    input.base += input.pos;
    input.pos = 0;
    input.p = 0;
    this.pending = [];
    this.pendingLen = 0;
    const out: RdbRecord[] = [];
    this.out = out;
    this.run();
    this.out = [];
    return out;
  }

  /** Call at end of input: throws RdbError unless the 'end' record was emitted. */
  finish(): void {
    if (this.failure !== null) throw this.failure;
    if (this.state === State.Done) return;
    const input = this.input;
    const end = input.base + input.buf.length + this.pendingLen;
    const have = input.buf.length - input.pos + this.pendingLen;
    const err = new RdbError(
      `truncated: expected ${this.expecting()} (input ended ${have} byte(s) into a unit that needs at least ${Math.max(input.need, have + 1)})`,
      end,
      this.reader !== null ? input.key : undefined,
    );
    this.failure = err;
    throw err;
  }

  /** Bytes received after the RDB ended (e.g. a diskless EOF mark, then stream bytes). */
  remainder(): Buffer {
    const input = this.input;
    const parts: Buffer[] = [];
    if (this.state === State.Done) parts.push(input.buf.subarray(input.pos));
    parts.push(...this.pending, ...this.tail);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  // ---- ValueContext -------------------------------------------------------------------

  emit(rec: RdbRecord): void {
    // A key found corrupt (skip mode) ends with keySkipped; nothing else of it goes out.
    if (this.corruptErr !== null) return;
    if (this.pendingStart !== null) {
      this.out.push(this.pendingStart);
      this.pendingStart = null;
    }
    this.out.push(rec);
  }

  itemKind(kind: ItemKind): void {
    if (kind !== this.kind) {
      this.flushItems();
      this.kind = kind;
    }
  }

  addItem(item: unknown, bytes: number): void {
    if (this.corruptErr !== null) return;
    this.items.push(item);
    this.batchBytes += bytes;
    if (this.items.length >= this.batchSize || this.batchBytes >= ONE_MB) this.flushItems();
  }

  flushItems(): void {
    const items = this.items;
    if (items.length === 0 || this.corruptErr !== null) return;
    this.items = [];
    this.batchBytes = 0;
    this.emit(itemsRecord(this.kind, items));
  }

  blobError(err: BlobError): void {
    if (!this.skipCorrupt || this.reader === null || this.reader === this.moduleReader) {
      throw new RdbError(err.message, err.offset, this.input.key);
    }
    if (this.corruptErr === null) this.corruptErr = err;
    this.items = [];
    this.batchBytes = 0;
  }

  capturedValue(): Buffer {
    const input = this.input;
    return this.capture.take(input.buf, input.base, input.p) ?? Buffer.alloc(0);
  }

  // ---- Parsing --------------------------------------------------------------------------

  private run(): void {
    const input = this.input;
    try {
      for (;;) {
        input.p = input.pos;
        switch (this.state) {
          case State.Top:
            this.topUnit();
            break;
          case State.Value:
            if (this.reader!.step()) this.endKey();
            break;
          case State.ModuleAux:
            if (this.moduleReader.step()) {
              this.capture.stop();
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
      this.failure = e instanceof RdbError ? e : new RdbError(`internal decoder error: ${String(e instanceof Error ? e.message : e)}`, input.base + input.p, input.key, { cause: e });
      throw this.failure;
    }
  }

  /** Fold the bytes about to be dropped into the checksum and the capture. */
  private dropConsumed(): void {
    const input = this.input;
    const to = input.pos;
    if (to === 0) return;
    if (this.crc !== null && this.state !== State.Done) this.crc.update(input.buf, 0, to);
    if (this.capture.active) this.capture.save(input.buf, input.base, to);
  }

  private magicUnit(): void {
    const input = this.input;
    const m = input.bytes(9);
    const text = m.toString('latin1', 0, 9);
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
    if (!/^[0-9]+$/.test(digits)) throw input.error(`bad RDB version ${JSON.stringify(digits)} in the header`, input.base + 9 - digits.length);
    const version = Number(digits);
    const ok = magic === 'REDIS' ? version >= 1 && version <= MAX_REDIS_VERSION : version >= MIN_VALKEY_VERSION && version <= MAX_VALKEY_VERSION;
    if (!ok) throw input.error(`unsupported RDB version ${version} for magic ${magic}`, input.base + 9 - digits.length);
    this._magic = magic;
    this._version = version;
    input.version = version;
    this.state = State.Top;
    this.out.push({ kind: 'header', magic, version });
  }

  /** One top-level opcode with its payload, or a key header. */
  private topUnit(): void {
    const input = this.input;
    const at = input.base + input.p;
    const op = input.u8();
    if (op <= 33) return this.keyHeader(op, at);
    switch (op) {
      case OP_EOF:
        this.checkNoModifiers(at, 'EOF');
        return this.eofUnit();
      case OP_SELECTDB: {
        const db = input.len('SELECTDB db number');
        this.checkNoModifiers(at, 'SELECTDB');
        this.db = db;
        this.out.push({ kind: 'selectDb', db });
        return;
      }
      case OP_EXPIRETIME_MS: {
        const ms = input.i64le('expire time');
        this.modifier(at);
        this.expireMs = ms;
        return;
      }
      case OP_EXPIRETIME: {
        const s = input.i32le();
        this.modifier(at);
        this.expireMs = s * 1000;
        return;
      }
      case OP_IDLE: {
        const idle = input.len('LRU idle time');
        this.modifier(at);
        this.lruIdle = idle;
        return;
      }
      case OP_FREQ: {
        const f = input.u8();
        this.modifier(at);
        this.lfuFreq = f;
        return;
      }
      case OP_AUX: {
        const key = input.str('AUX key');
        const value = input.str('AUX value');
        this.out.push({ kind: 'aux', key, value });
        return;
      }
      case OP_RESIZEDB: {
        const dbSize = input.len('RESIZEDB db size');
        const expiresSize = input.len('RESIZEDB expires size');
        this.out.push({ kind: 'resizeDb', dbSize, expiresSize });
        return;
      }
      case OP_SLOT_INFO: {
        const slot = input.len('SLOT_INFO slot');
        const keys = input.len('SLOT_INFO key count');
        const expires = input.len('SLOT_INFO expires count');
        this.out.push({ kind: 'slotInfo', slot, keys, expires });
        return;
      }
      case OP_FUNCTION2: {
        const code = input.str('function library code');
        this.checkNoModifiers(at, 'FUNCTION2');
        this.out.push({ kind: 'function', code });
        return;
      }
      case OP_FUNCTION_PRE_GA: {
        const name = input.str('function name');
        const engine = input.str('function engine');
        const hasDesc = input.len('function description flag');
        if (hasDesc) input.str('function description');
        const code = input.str('function code');
        this.checkNoModifiers(at, 'FUNCTION_PRE_GA');
        const head = Buffer.from(`#!${engine.toString('latin1')} name=${name.toString('latin1')}\n`, 'latin1');
        this.out.push({ kind: 'function', code: Buffer.concat([head, code]) });
        return;
      }
      case OP_MODULE_AUX: {
        this.checkNoModifiers(at, 'MODULE_AUX');
        this.capture.begin(input.base + input.p, Infinity);
        this.moduleReader.begin(-1);
        this.state = State.ModuleAux;
        return;
      }
      case OP_KEY_META:
        if (this.valkey) return this.skipSlotImport(at);
        this.skipKeyMeta();
        this.modifier(at);
        return;
      case OP_KEY_NOEVICT:
        if (this.valkey) throw input.error(`unsupported opcode 0x${hex2(op)} in a VALKEY file`, at);
        this.modifier(at);
        return;
      case OP_RE_RAM_LRU:
      case OP_RE_SLOT_NUM:
        input.len('Redis Enterprise opcode value');
        return;
      default:
        throw input.error(`unknown opcode or value type 0x${hex2(op)}`, at);
    }
  }

  private modifier(at: number): void {
    if (this.recordStart < 0) this.recordStart = at;
  }

  /** Key modifiers (expire, idle, freq) must be followed by a key. */
  private checkNoModifiers(at: number, what: string): void {
    if (this.recordStart >= 0) throw this.input.error(`${what} opcode between a key's expire/idle/freq opcodes and its value type`, at);
  }

  /** Redis 8.6 KEY_META: len(num classes 1..7), each a u32 class spec and module opcodes. */
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

  /** Valkey 9 SLOT_IMPORT: str job name, len(n), n × (len start, len end). Parsed and dropped. */
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
    if (this._version >= 5) {
      input.ensure(8);
      checksum = input.buf.readBigUInt64LE(input.p);
      input.p += 8;
    }
    let verified = false;
    if (this.crc !== null && checksum !== 0n) {
      this.crc.update(input.buf, 0, eofEnd);
      const computed = this.crc.value();
      if (computed !== checksum) {
        throw input.error(`checksum mismatch: the file says 0x${checksum.toString(16).padStart(16, '0')}, the data hashes to 0x${computed.toString(16).padStart(16, '0')}`, input.base + eofEnd);
      }
      verified = true;
    }
    this.state = State.Done;
    this.out.push({ kind: 'end', checksum, checksumVerified: verified });
  }

  private keyHeader(t: number, at: number): void {
    const input = this.input;
    const type = valueTypeOf(t);
    if (type === null || (this.valkey && t >= 23)) {
      if (t === 6) throw input.error('module value of type 6 (MODULE_PRE_GA, Redis 4.0 RC) cannot be decoded without its module', at);
      if (t === 8) throw input.error('unknown value type 0x08', at);
      if (t >= 29) throw input.error(`unsupported value type ${t} (Redis development hash templates / GCRA)`, at);
      throw input.error(`unsupported value type ${t} in a VALKEY file`, at);
    }
    const key = input.str('key');
    const recordStart = this.recordStart >= 0 ? this.recordStart : at;
    this.pendingStart = {
      kind: 'keyStart',
      db: this.db,
      key,
      rdbType: t,
      type,
      expireMs: this.expireMs,
      lruIdle: this.lruIdle,
      lfuFreq: this.lfuFreq,
      offset: recordStart,
    };
    this.recordStart = -1;
    this.expireMs = null;
    this.lruIdle = null;
    this.lfuFreq = null;
    input.key = key;
    this.valueStart = input.base + input.p;
    this.corruptErr = null;
    this.items = [];
    this.batchBytes = 0;
    this.capturingRaw = this.captureRaw;
    if (this.captureRaw || t === 7) this.capture.begin(this.valueStart, t === 7 ? Infinity : this.rawLimit, t);
    const reader = this.readerFor(t);
    this.reader = reader;
    this.state = State.Value;
    reader.begin(t);
  }

  private readerFor(t: number): ValueReader {
    switch (t) {
      case 0:
        return this.stringReader;
      case 1:
      case 2:
        return this.sequenceReader;
      case 3:
      case 5:
        return this.zsetReader;
      case 4:
      case 24:
        return this.hashReader;
      case 22:
        return this.hashReader;
      case 7:
        return this.moduleReader;
      case 14:
      case 18:
        return this.quicklistReader;
      case 15:
      case 19:
      case 21:
      case 26:
      case 27:
        return this.streamReader;
      case 28:
        return this.arrayReader;
      default:
        return this.blobReader;
    }
  }

  private endKey(): void {
    const input = this.input;
    const end = input.base + input.p;
    this.flushItems();
    if (this.corruptErr !== null) {
      const err = new RdbError(this.corruptErr.message, this.corruptErr.offset, input.key);
      if (this.pendingStart !== null) this.out.push(this.pendingStart);
      this.out.push({ kind: 'keySkipped', error: err });
      this.corruptErr = null;
    } else if (this.pendingStart !== null) {
      // Nothing was emitted for this key: an empty collection, which Redis skips on load.
      this.emptyKeysSkipped++;
    } else {
      let raw: Buffer | null = null;
      if (this.capture.active) {
        raw = this.capture.take(input.buf, input.base, input.p);
        if (!this.capturingRaw || (raw !== null && raw.length > this.rawLimit)) raw = null;
      }
      this.out.push({ kind: 'keyEnd', raw, valueBytes: end - this.valueStart });
    }
    this.pendingStart = null;
    if (this.capture.active) this.capture.stop();
    this.reader = null;
    input.key = undefined;
    this.state = State.Top;
  }

  /** What the decoder is waiting for, for "truncated" messages. */
  private expecting(): string {
    switch (this.state) {
      case State.Magic:
        return 'the 9-byte RDB header';
      case State.Top: {
        const input = this.input;
        if (input.buf[input.pos] === OP_EOF && input.pos < input.buf.length) return '8-byte checksum after EOF opcode';
        return 'an opcode or a key (the RDB has no EOF opcode)';
      }
      case State.ModuleAux:
        return `${this.moduleReader.describe()} of a MODULE_AUX record`;
      case State.Value: {
        const key = this.input.key;
        return `${this.reader!.describe()} of key ${JSON.stringify(key ? printableKey(key) : '')}`;
      }
      default:
        return 'nothing';
    }
  }
}

function itemsRecord(kind: ItemKind, items: unknown[]): RdbRecord {
  switch (kind) {
    case 'streamEntries':
      return { kind, entries: items as StreamEntry[] };
    case 'streamPel':
      return { kind, entries: items as StreamPelEntry[] };
    case 'listItems':
    case 'setItems':
      return { kind, items: items as Buffer[] };
    case 'zsetItems':
      return { kind, items: items as ZsetItem[] };
    case 'hashItems':
      return { kind, items: items as HashItem[] };
    case 'arrayItems':
      return { kind, items: items as ArrayItem[] };
  }
}
