/**
 * The RDB grammar, one restartable unit at a time: the header, the top-level opcodes
 * (redis-internals §2.1, §2.6, §2.7), each key's header and modifiers, and the EOF checksum.
 * A key's value is handed to its reader in ./values/. The bytes come from ./input.ts, which
 * ./decoder.ts fills; see input.ts for the unit / NEED_MORE discipline.
 */
import { RdbError, printableKey } from '../errors.js';
import type { Crc64 } from './crc64.js';
import * as F from './format.js';
import { NEED_MORE, type RdbInput, hex2 } from './input.js';
import type { KeyOutput } from './key-output.js';
import { KeyStartRecord } from './records.js';
import type { ValueReader } from './values/context.js';
import { skipModuleOpcode } from './values/module.js';
import { ValueReaders } from './values/readers.js';
import { LZF_ENCODING } from './values/lzf-stream.js';
import { isLongPlainString } from './values/plain.js';

const enum State {
  Magic,
  Top,
  Value,
  ModuleAux,
  Done,
}

export class RecordParser {
  private state = State.Magic;
  private _magic: 'REDIS' | 'VALKEY' | undefined = undefined;

  // Current db and the modifiers (expire, idle, freq, key meta) of the next key.
  private db = 0;
  private recordStart = -1;
  private expireMs: number | null = null;
  private lruIdle: number | null = null;
  private lfuFreq: number | null = null;

  /** Reader of the current key's value (or of a MODULE_AUX record). */
  private reader: ValueReader | null = null;
  private readonly readers: ValueReaders;

  /** `crc` (null: not verified) must hold every byte before input.buf[0] when EOF is parsed. */
  constructor(
    private readonly input: RdbInput,
    private readonly keys: KeyOutput,
    private readonly crc: Crc64 | null,
  ) {
    this.readers = new ValueReaders(keys);
  }

  /** True once the 'end' record was emitted (EOF opcode and checksum consumed). */
  get done(): boolean {
    return this.state === State.Done;
  }

  get magic(): 'REDIS' | 'VALKEY' | undefined {
    return this._magic;
  }

  /**
   * Parse units from input.pos until the buffer runs short or the RDB ends. Returns null then,
   * or the error that stops the decoding (anything but an RdbError becomes an internal one).
   */
  run(): RdbError | null {
    const input = this.input;
    try {
      for (;;) {
        input.p = input.pos;
        switch (this.state) {
          case State.Top:
            input.keyHeader = undefined;
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
            return null;
        }
        input.pos = input.p;
        input.need = 0;
      }
    } catch (e) {
      if (e === NEED_MORE) return null;
      return e instanceof RdbError
        ? e
        : new RdbError(`internal decoder error: ${e instanceof Error ? e.message : String(e)}`, input.base + input.p, input.key, { cause: e });
    }
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
    input.strRange('key');
    const valueStart = input.base + input.p;
    const offset = this.recordStart >= 0 ? this.recordStart : at;
    const start = new KeyStartRecord(this.db, t, type, this.expireMs, this.lruIdle, this.lfuFreq, offset, input.rangeBuf, input.rangeAt, input.rangeLen);
    // Plain strings, by far the most common keys, are read in the same unit as their header
    // (the value's range is left in input.range*). LZF ones take the general path, which can
    // skip them under onCorruptValue 'skip', and so do long ones, which go out in pieces
    // (values/plain.ts). (The choice depends only on the data, never on where a chunk ended.)
    let inline = false;
    if (t === 0) {
      input.keyHeader = start;
      if (input.p >= input.buf.length) input.short(1);
      if (input.buf[input.p] !== LZF_ENCODING && !isLongPlainString(input)) {
        input.strRange('string value');
        inline = true;
      }
    }
    this.recordStart = -1;
    this.expireMs = null;
    this.lruIdle = null;
    this.lfuFreq = null;
    if (inline) {
      this.keys.stringKey(start, valueStart);
      input.keyHeader = undefined;
      return;
    }
    this.keys.begin(start, valueStart);
    const reader = this.readers.for(t);
    this.reader = reader;
    this.state = State.Value;
    reader.begin(t);
  }

  /** What the decoder is waiting for, for "truncated" messages. */
  expecting(): string {
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
