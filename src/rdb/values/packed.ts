/**
 * Values whose elements sit in compact blobs (one RDB string each): zipmap, ziplist,
 * listpack and intset encodings of lists, sets, sorted sets and hashes, and quicklists
 * (a sequence of such blobs). A blob is read whole, validated, then turned into items.
 */
import type { HashItem, ZsetItem } from '../types.js';
import { BlobError } from '../structure/blob-error.js';
import { intsetValues } from '../structure/intset.js';
import { ListpackCursor, listpackValues } from '../structure/listpack.js';
import type { PackedCursor } from '../structure/packed.js';
import { ZiplistCursor, ziplistValues } from '../structure/ziplist.js';
import { zipmapValues } from '../structure/zipmap.js';
import type { ItemKind, ValueContext, ValueReader } from './context.js';
import { LzfStream } from './lzf-stream.js';

/** Item kind per compact type. */
function kindOf(rdbType: number): ItemKind {
  switch (rdbType) {
    case 10:
    case 14:
    case 18:
      return 'listItems';
    case 11:
    case 20:
      return 'setItems';
    case 12:
    case 17:
      return 'zsetItems';
    default:
      return 'hashItems';
  }
}

function zsetPairs(c: PackedCursor): ZsetItem[] {
  const out: ZsetItem[] = [];
  while (c.next()) {
    const member = c.value();
    if (!c.next()) throw c.error('sorted set blob has a member without a score');
    out.push({ member, score: c.score() });
  }
  return out;
}

function hashPairs(values: Buffer[], absOffset: number, what: string): HashItem[] {
  if (values.length % 2 !== 0) throw new BlobError(`${what} hash has an odd number of entries (${values.length})`, absOffset);
  const out: HashItem[] = new Array<HashItem>(values.length / 2);
  for (let i = 0; i < values.length; i += 2) out[i / 2] = { field: values[i]!, value: values[i + 1]!, expireMs: null };
  return out;
}

/** Listpack of (field, value, expireAt) triplets; expireAt 0 means no TTL (types 23, 25). */
function hashTriplets(blob: Buffer, absOffset: number): HashItem[] {
  const c = new ListpackCursor(blob, absOffset);
  const out: HashItem[] = [];
  while (c.next()) {
    const field = c.value();
    if (!c.next()) throw c.error('hash listpack has a field without a value');
    const value = c.value();
    if (!c.next()) throw c.error('hash listpack has a field without an expire time');
    const t = c.integer();
    if (typeof t !== 'number' || t < 0) throw c.error(`hash field expire time ${String(t)} is invalid`);
    out.push({ field, value, expireMs: t === 0 ? null : t });
  }
  return out;
}

/** Decode one compact blob into items; throws BlobError. */
function decodeBlob(rdbType: number, blob: Buffer, abs: number): unknown[] {
  switch (rdbType) {
    case 9:
      return hashPairs(zipmapValues(blob, abs), abs, 'zipmap');
    case 10:
      return ziplistValues(blob, abs);
    case 11:
      return intsetValues(blob, abs);
    case 12:
      return zsetPairs(new ZiplistCursor(blob, abs));
    case 13:
      return hashPairs(ziplistValues(blob, abs), abs, 'ziplist');
    case 16:
      return hashPairs(listpackValues(blob, abs), abs, 'listpack');
    case 17:
      return zsetPairs(new ListpackCursor(blob, abs));
    case 20:
      return listpackValues(blob, abs);
    default: // 23, 25
      return hashTriplets(blob, abs);
  }
}

function itemBytes(item: unknown): number {
  if (Buffer.isBuffer(item)) return item.length;
  const h = item as Partial<HashItem> & Partial<ZsetItem>;
  if (h.member !== undefined) return h.member.length + 8;
  return (h.field?.length ?? 0) + (h.value?.length ?? 0);
}

/** Types 9, 10, 11, 12, 13, 16, 17, 20, 23, 25: one blob (25 has a minExpire before it). */
export class BlobReader implements ValueReader {
  private rdbType = 0;
  constructor(private readonly ctx: ValueContext) {}

  begin(rdbType: number): void {
    this.rdbType = rdbType;
    this.ctx.itemKind(kindOf(rdbType));
  }

  step(): boolean {
    const input = this.ctx.input;
    // HASH_LISTPACK_EX: the minimum expire time is a hint; the listpack holds absolute times.
    if (this.rdbType === 25) input.i64le('hash minimum field expire time');
    const abs = input.offset;
    const blob = input.str('encoded value');
    if (this.ctx.corrupt !== null) return true;
    let items: unknown[];
    try {
      items = decodeBlob(this.rdbType, blob, abs);
    } catch (e) {
      if (!(e instanceof BlobError)) throw e;
      this.ctx.blobError(e);
      return true;
    }
    for (let i = 0; i < items.length; i++) this.ctx.addItem(items[i], itemBytes(items[i]));
    return true;
  }

  describe(): string {
    return 'the encoded value blob';
  }
}

/** Types 14 (ziplist nodes) and 18 (PLAIN / PACKED listpack nodes; a long LZF PLAIN one streamed). */
export class QuicklistReader implements ValueReader {
  private remaining = -1;
  private total = 0;
  private v2 = false;
  private readonly lzf: LzfStream;
  constructor(private readonly ctx: ValueContext) {
    this.lzf = new LzfStream(ctx);
  }

  begin(rdbType: number): void {
    this.remaining = -1;
    this.v2 = rdbType === 18;
    this.lzf.reset();
    this.ctx.itemKind('listItems');
  }

  step(): boolean {
    const input = this.ctx.input;
    if (this.remaining < 0) {
      const n = input.len('quicklist node count');
      this.remaining = n;
      this.total = n;
      return n === 0;
    }
    if (this.lzf.active) {
      const plain = this.lzf.step();
      if (plain === null) return false;
      this.remaining--;
      if (this.ctx.corrupt === null) this.ctx.addItem(plain, plain.length);
      return this.remaining === 0;
    }
    let container = 2;
    if (this.v2) {
      const at = input.offset;
      container = input.len('quicklist container');
      if (container !== 1 && container !== 2) throw input.error(`quicklist container ${container} is not 1 (PLAIN) or 2 (PACKED)`, at);
      // A PLAIN node is one element, often a big one: stream it when it is long LZF data.
      if (container === 1 && this.lzf.begin('quicklist node')) return false;
    }
    const abs = input.offset;
    const blob = input.str('quicklist node');
    this.remaining--;
    if (this.ctx.corrupt !== null) return this.remaining === 0;
    if (container === 1) {
      this.ctx.addItem(blob, blob.length);
      return this.remaining === 0;
    }
    let items: Buffer[];
    try {
      items = this.v2 ? listpackValues(blob, abs) : ziplistValues(blob, abs);
    } catch (e) {
      if (!(e instanceof BlobError)) throw e;
      this.ctx.blobError(e);
      return this.remaining === 0;
    }
    // Empty nodes are skipped, as Redis does; a list of only empty nodes is an empty key.
    for (let i = 0; i < items.length; i++) this.ctx.addItem(items[i], items[i]!.length);
    return this.remaining === 0;
  }

  describe(): string {
    if (this.remaining < 0) return 'the quicklist node count';
    const node = `quicklist node ${this.total - this.remaining + 1} of ${this.total}`;
    return this.lzf.active ? `${this.lzf.describe()} (${node})` : node;
  }
}
