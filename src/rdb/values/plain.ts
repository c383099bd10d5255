/**
 * Values stored element by element in the RDB stream itself (no compact blob): strings,
 * linked lists and hashtable sets (types 0, 1, 2), skiplist sorted sets (3, 5) and
 * hashtable hashes with or without field TTLs (4, 22, 24; 22 is Valkey's HASH_2 under a
 * VALKEY magic). One element per unit, so a 10-million-element key streams through.
 */
import type { RdbInput } from '../input.js';
import type { HashItem, ZsetItem } from '../types.js';
import { parseScore } from '../structure/packed.js';
import type { ValueContext, ValueReader } from './context.js';
import { LZF_ENCODING, LzfStream, STREAM_STRING_MIN } from './lzf-stream.js';

/** Bytes per `stringPart` record of a long plain string. */
const PIECE_BYTES = 1024 * 1024;

/**
 * True when the string at the cursor is stored uncompressed with a length of at least
 * STREAM_STRING_MIN (it then goes out as pieces). Reads nothing: the cursor stays put.
 */
export function isLongPlainString(input: RdbInput): boolean {
  const start = input.p;
  const b = input.buf[start]!;
  // 6- and 14-bit lengths are short; 0xc0.. are integers or LZF.
  if (b < 0x80 || b >= 0xc0) return false;
  const n = input.len('string value');
  input.p = start;
  return n >= STREAM_STRING_MIN;
}

/**
 * Type 0 values that keyHeader() did not read in its own unit: LZF-compressed strings (the
 * long ones decompressed as their bytes arrive, ./lzf-stream.ts) and strings of
 * STREAM_STRING_MIN bytes or more, which go out as `stringPart` records of the bytes each
 * unit finds buffered, so that neither the decoder nor its consumer ever holds them whole.
 */
export class StringReader implements ValueReader {
  private readonly lzf: LzfStream;
  /** A long plain string: bytes still to read (-1 before its length was read), and its length. */
  private remaining = -1;
  private total = 0;
  constructor(private readonly ctx: ValueContext) {
    this.lzf = new LzfStream(ctx);
  }

  begin(): void {
    this.lzf.reset();
    this.remaining = -1;
  }

  step(): boolean {
    const input = this.ctx.input;
    if (this.remaining >= 0) return this.piece(input);
    let value: Buffer | null;
    if (this.lzf.active) {
      value = this.lzf.step();
      if (value === null) return false;
      if (this.lzf.pieces) return true; // it went out as stringPart records
    } else {
      if (this.lzf.begin('string value', true)) return false;
      if (input.p >= input.buf.length) input.short(1);
      if (isLongPlainString(input)) {
        const n = input.len('string value');
        this.remaining = n;
        this.total = n;
        this.ctx.rawAtLeast(n);
        return false;
      }
      value = input.str('string value');
    }
    this.ctx.emit({ kind: 'string', value });
    return true;
  }

  /**
   * One unit of a long plain string: its next PIECE_BYTES bytes. Fixed-size pieces keep the
   * records the same for any chunking of the input; the decoder assembles each one in a
   * Buffer of its own (decoder.ts startAssembly()), so a piece pins nothing else.
   */
  private piece(input: RdbInput): boolean {
    const offset = this.total - this.remaining;
    const value = input.bytes(Math.min(this.remaining, PIECE_BYTES));
    this.ctx.emit({ kind: 'stringPart', value, offset, total: this.total });
    this.remaining -= value.length;
    return this.remaining === 0;
  }

  describe(): string {
    if (this.remaining >= 0) return `byte ${this.total - this.remaining + 1} of the ${this.total}-byte string value`;
    return this.lzf.active ? this.lzf.describe() : 'the string value';
  }
}

/** Types 1 (LIST) and 2 (SET): len(n) then n strings (a long LZF one streamed). */
export class SequenceReader implements ValueReader {
  private remaining = -1;
  private total = 0;
  private what = 'list';
  private elementWhat = 'list element';
  private readonly lzf: LzfStream;
  constructor(private readonly ctx: ValueContext) {
    this.lzf = new LzfStream(ctx);
  }

  begin(rdbType: number): void {
    this.remaining = -1;
    this.what = rdbType === 1 ? 'list' : 'set';
    this.elementWhat = rdbType === 1 ? 'list element' : 'set element';
    this.lzf.reset();
    this.ctx.itemKind(rdbType === 1 ? 'listItems' : 'setItems');
  }

  step(): boolean {
    const input = this.ctx.input;
    if (this.remaining < 0) {
      const n = input.len(`${this.what} length`);
      this.remaining = n;
      this.total = n;
      return n === 0;
    }
    let v: Buffer | null;
    if (this.lzf.active) {
      v = this.lzf.step();
      if (v === null) return false;
    } else {
      if (input.buf[input.p] === LZF_ENCODING && this.lzf.begin(this.elementWhat)) return false;
      v = input.str(this.elementWhat);
    }
    this.ctx.addItem(v, v.length);
    return --this.remaining === 0;
  }

  describe(): string {
    if (this.remaining < 0) return `the ${this.what} length`;
    const element = `${this.what} element ${this.total - this.remaining + 1} of ${this.total}`;
    return this.lzf.active ? `${this.lzf.describe()} (${element})` : element;
  }
}

/** Types 3 (ZSET, text scores) and 5 (ZSET_2, binary doubles). */
export class ZsetReader implements ValueReader {
  private remaining = -1;
  private total = 0;
  private binary = false;
  constructor(private readonly ctx: ValueContext) {}

  begin(rdbType: number): void {
    this.remaining = -1;
    this.binary = rdbType === 5;
    this.ctx.itemKind('zsetItems');
  }

  step(): boolean {
    const input = this.ctx.input;
    if (this.remaining < 0) {
      const n = input.len('sorted set length');
      this.remaining = n;
      this.total = n;
      return n === 0;
    }
    const member = input.str('sorted set member');
    let score: number;
    if (this.binary) {
      const at = input.offset;
      score = input.f64le();
      if (Number.isNaN(score)) throw input.error('sorted set score is NaN', at);
    } else {
      score = this.textScore();
    }
    const item: ZsetItem = { member, score };
    this.ctx.addItem(item, member.length + 8);
    return --this.remaining === 0;
  }

  /** Legacy string-double: u8 length, 253 NaN, 254 +inf, 255 -inf. */
  private textScore(): number {
    const input = this.ctx.input;
    const at = input.offset;
    const n = input.u8();
    if (n === 253) throw input.error('sorted set score is NaN', at);
    if (n === 254) return Infinity;
    if (n === 255) return -Infinity;
    const start = input.p;
    input.skip(n);
    const s = parseScore(input.buf, start, start + n);
    if (s === null) throw input.error(`invalid sorted set score ${JSON.stringify(input.buf.toString('latin1', start, start + n))}`, at);
    return s;
  }

  describe(): string {
    return this.remaining < 0 ? 'the sorted set length' : `sorted set element ${this.total - this.remaining + 1} of ${this.total}`;
  }
}

const enum HashLayout {
  /** 4: field, value */
  Plain,
  /** 24: minExpire, then (ttl, field, value) with expire = ttl + minExpire - 1 */
  Metadata,
  /** 22 (Redis 7.4 RC): (absolute expire or 0, field, value) */
  MetadataPreGa,
  /** 22 under VALKEY magic: (field, value, i64 expire or -1) */
  ValkeyHash2,
}

export class HashReader implements ValueReader {
  private remaining = -1;
  private total = 0;
  private layout = HashLayout.Plain;
  private minExpire = 0;
  constructor(private readonly ctx: ValueContext) {}

  begin(rdbType: number): void {
    this.remaining = -1;
    this.minExpire = 0;
    if (rdbType === 4) this.layout = HashLayout.Plain;
    else if (rdbType === 24) this.layout = HashLayout.Metadata;
    else this.layout = this.ctx.valkey ? HashLayout.ValkeyHash2 : HashLayout.MetadataPreGa;
    this.ctx.itemKind('hashItems');
  }

  step(): boolean {
    const input = this.ctx.input;
    if (this.remaining < 0) {
      const minExpire = this.layout === HashLayout.Metadata ? input.i64le('hash minimum field expire time') : 0;
      const n = input.len('hash length');
      this.minExpire = minExpire;
      this.remaining = n;
      this.total = n;
      return n === 0;
    }
    let expireMs: number | null = null;
    let field: Buffer;
    let value: Buffer;
    switch (this.layout) {
      case HashLayout.Plain:
        field = input.str('hash field');
        value = input.str('hash value');
        break;
      case HashLayout.Metadata: {
        const ttl = input.len('hash field TTL');
        field = input.str('hash field');
        value = input.str('hash value');
        if (ttl !== 0) expireMs = ttl + this.minExpire - 1;
        break;
      }
      case HashLayout.MetadataPreGa: {
        const ttl = input.len('hash field expire time');
        field = input.str('hash field');
        value = input.str('hash value');
        if (ttl !== 0) expireMs = ttl;
        break;
      }
      case HashLayout.ValkeyHash2: {
        field = input.str('hash field');
        value = input.str('hash value');
        const at = input.offset;
        const t = input.i64le('hash field expire time');
        if (t < -1) throw input.error(`hash field expire time ${t} is invalid (-1 means none)`, at);
        if (t !== -1) expireMs = t;
        break;
      }
    }
    const item: HashItem = { field, value, expireMs };
    this.ctx.addItem(item, field.length + value.length);
    return --this.remaining === 0;
  }

  describe(): string {
    return this.remaining < 0 ? 'the hash length' : `hash field ${this.total - this.remaining + 1} of ${this.total}`;
  }
}
