/**
 * Values whose elements sit in compact blobs (one RDB string each): zipmap, ziplist,
 * listpack and intset encodings of lists, sets, sorted sets and hashes, and quicklists
 * (a sequence of such blobs). A blob is read whole and checked; its items are made when a
 * consumer reads them (./blob-items.ts), except for zipmaps and blobs of more than a batch.
 */
import type { HashItem, ZsetItem } from '../types.js';
import { BlobError } from '../structure/blob-error.js';
import { zipmapValues } from '../structure/zipmap.js';
import { BlobItemsRecord, walkBlob, type BlobItemKind, type BlobLayout, type BlobWalk } from './blob-items.js';
import type { ValueContext, ValueReader } from './context.js';
import { LzfStream } from './lzf-stream.js';

/** Item kind per compact type. */
function kindOf(rdbType: number): BlobItemKind {
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

function hashPairs(values: Buffer[], absOffset: number, what: string): HashItem[] {
  if (values.length % 2 !== 0) throw new BlobError(`${what} hash has an odd number of entries (${values.length})`, absOffset);
  const out: HashItem[] = new Array<HashItem>(values.length / 2);
  for (let i = 0; i < values.length; i += 2) out[i / 2] = { field: values[i]!, value: values[i + 1]!, expireMs: null };
  return out;
}

/** A zipmap (type 9, Redis <= 2.4 hashes) decoded into items; throws BlobError. */
function zipmapItems(blob: Buffer, abs: number): HashItem[] {
  return hashPairs(zipmapValues(blob, abs), abs, 'zipmap');
}

function itemBytes(item: unknown): number {
  if (Buffer.isBuffer(item)) return item.length;
  const h = item as Partial<HashItem> & Partial<ZsetItem>;
  if (h.member !== undefined) return h.member.length + 8;
  return (h.field?.length ?? 0) + (h.value?.length ?? 0);
}

/** Items of an eagerly decoded blob into the batch. */
function addAll(ctx: ValueContext, items: unknown[]): void {
  for (let i = 0; i < items.length; i++) ctx.addItem(items[i], itemBytes(items[i]));
}

/** Blobs up to this size become one lazy record (./blob-items.ts); bigger ones go into batches as before. */
const LAZY_BLOB_MAX = 1024 * 1024;

/**
 * A blob's elements, checked: one record whose items are made when read, or (more than a
 * batch of them, or a blob over LAZY_BLOB_MAX) the items themselves into batches. Throws BlobError.
 */
function addBlob(ctx: ValueContext, kind: BlobItemKind, layout: BlobLayout, blob: Buffer, abs: number, walk: BlobWalk): void {
  if (blob.length <= LAZY_BLOB_MAX) {
    walkBlob(layout, blob, abs, null, walk);
    if (walk.count === 0) return;
    if (walk.count <= ctx.batchSize) {
      ctx.addBlobItems(new BlobItemsRecord(kind, walk.count, walk.bytes, layout, blob, abs));
      return;
    }
  }
  const items: unknown[] = [];
  walkBlob(layout, blob, abs, items, walk);
  addAll(ctx, items);
}

/** Types 9, 10, 11, 12, 13, 16, 17, 20, 23, 25: one blob (25 has a minExpire before it). */
export class BlobReader implements ValueReader {
  private rdbType = 0;
  private readonly walk: BlobWalk = { count: 0, bytes: 0 };
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
    try {
      if (this.rdbType === 9) addAll(this.ctx, zipmapItems(blob, abs));
      else addBlob(this.ctx, kindOf(this.rdbType), this.rdbType as BlobLayout, blob, abs, this.walk);
    } catch (e) {
      if (!(e instanceof BlobError)) throw e;
      this.ctx.blobError(e);
    }
    return true;
  }

  describe(): string {
    return 'the encoded value blob';
  }
}

/** Types 14 (ziplist nodes) and 18 (PLAIN / PACKED listpack nodes; a long LZF PLAIN one streamed). */
export class QuicklistReader implements ValueReader {
  private readonly walk: BlobWalk = { count: 0, bytes: 0 };
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
    try {
      // Empty nodes are skipped, as Redis does; a list of only empty nodes is an empty key.
      addBlob(this.ctx, 'listItems', this.v2 ? 18 : 14, blob, abs, this.walk);
    } catch (e) {
      if (!(e instanceof BlobError)) throw e;
      this.ctx.blobError(e);
    }
    return this.remaining === 0;
  }

  describe(): string {
    if (this.remaining < 0) return 'the quicklist node count';
    const node = `quicklist node ${this.total - this.remaining + 1} of ${this.total}`;
    return this.lzf.active ? `${this.lzf.describe()} (${node})` : node;
  }
}
