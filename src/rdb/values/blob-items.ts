/**
 * The elements of one compact blob (ziplist, listpack, intset: a small collection, or one
 * quicklist node) as a single record whose `items` are made when first read. The decoder
 * still walks the blob with every check when it reads it (errors come at the same place, and
 * `--on-corrupt skip` skips the same keys), but makes no Buffer per element: `--format stats`
 * needs only `count`, and the sync's restore/auto mode drops a small key's records for one
 * RESTORE of its raw bytes without ever reading them.
 */
import type { HashItem, ZsetItem } from '../types.js';
import { BlobError } from '../structure/blob-error.js';
import { walkIntset } from '../structure/intset.js';
import { ListpackCursor } from '../structure/listpack.js';
import type { PackedCursor } from '../structure/packed.js';
import { ZiplistCursor } from '../structure/ziplist.js';

/** Blob layouts (RDB types; 14 and 18 for one quicklist node of ziplist / listpack). */
export type BlobLayout = 10 | 11 | 12 | 13 | 14 | 16 | 17 | 18 | 20 | 23 | 25;

export type BlobItemKind = 'listItems' | 'setItems' | 'zsetItems' | 'hashItems';

/** Estimated bytes of a record's commands per element, as translate/held-records.ts recordBytes() counts them. */
const SEQ_OVERHEAD = 16;
const PAIR_OVERHEAD = 32;

/** What walkBlob() found: the number of items and their recordBytes() estimate (without the record's own). */
export interface BlobWalk {
  count: number;
  bytes: number;
}

function cursor(layout: BlobLayout, blob: Buffer, abs: number): PackedCursor {
  return layout === 10 || layout === 12 || layout === 13 || layout === 14 ? new ZiplistCursor(blob, abs) : new ListpackCursor(blob, abs);
}

/**
 * Walks a blob with every check the eager decoding makes, in the same order; appends its
 * items to `out` (null: makes none). Throws BlobError.
 */
export function walkBlob(layout: BlobLayout, blob: Buffer, abs: number, out: unknown[] | null, walk: BlobWalk): void {
  walk.count = 0;
  walk.bytes = 0;
  if (layout === 11) {
    walk.bytes = walkIntset(blob, abs, out as Buffer[] | null);
    walk.count = blob.readUInt32LE(4);
    walk.bytes += walk.count * SEQ_OVERHEAD;
    return;
  }
  const c = cursor(layout, blob, abs);
  switch (layout) {
    case 12:
    case 17:
      while (c.next()) {
        const member = out !== null ? c.value() : null;
        const len = c.valueLength();
        if (!c.next()) throw c.error('sorted set blob has a member without a score');
        const score = c.score();
        if (out !== null) out.push({ member: member!, score } satisfies ZsetItem);
        walk.count++;
        walk.bytes += len + PAIR_OVERHEAD;
      }
      return;
    case 13:
    case 16: {
      let entries = 0;
      let field: Buffer | null = null;
      let fieldLen = 0;
      while (c.next()) {
        entries++;
        if ((entries & 1) === 1) {
          field = out !== null ? c.value() : null;
          fieldLen = c.valueLength();
          continue;
        }
        if (out !== null) out.push({ field: field!, value: c.value(), expireMs: null } satisfies HashItem);
        walk.bytes += fieldLen + c.valueLength() + PAIR_OVERHEAD;
      }
      if ((entries & 1) === 1) throw new BlobError(`${layout === 13 ? 'ziplist' : 'listpack'} hash has an odd number of entries (${entries})`, abs);
      walk.count = entries / 2;
      return;
    }
    case 23:
    case 25:
      while (c.next()) {
        const field = out !== null ? c.value() : null;
        const fieldLen = c.valueLength();
        if (!c.next()) throw c.error('hash listpack has a field without a value');
        const value = out !== null ? c.value() : null;
        const valueLen = c.valueLength();
        if (!c.next()) throw c.error('hash listpack has a field without an expire time');
        const t = c.integer();
        if (typeof t !== 'number' || t < 0) throw c.error(`hash field expire time ${String(t)} is invalid`);
        if (out !== null) out.push({ field: field!, value: value!, expireMs: t === 0 ? null : t } satisfies HashItem);
        walk.count++;
        walk.bytes += fieldLen + valueLen + PAIR_OVERHEAD;
      }
      return;
    default: // 10, 14, 18, 20: a sequence of elements
      while (c.next()) {
        if (out !== null) out.push(c.value());
        walk.count++;
        walk.bytes += c.valueLength() + SEQ_OVERHEAD;
      }
  }
}

/** The items of one blob, walked again (and made) when first read. */
export class BlobItemsRecord {
  private made: unknown[] | null = null;

  constructor(
    readonly kind: BlobItemKind,
    /** Number of items (pairs for zsets and hashes). */
    readonly count: number,
    /** translate/held-records.ts recordBytes() of the items, without making them. */
    readonly itemBytes: number,
    private readonly layout: BlobLayout,
    private readonly blob: Buffer,
    private readonly abs: number,
  ) {}

  get items(): unknown[] {
    if (this.made === null) {
      const items: unknown[] = [];
      walkBlob(this.layout, this.blob, this.abs, items, { count: 0, bytes: 0 });
      this.made = items;
    }
    return this.made;
  }

  toJSON(): { kind: BlobItemKind; items: unknown[] } {
    return { kind: this.kind, items: this.items };
  }
}
