/**
 * The records of one key that restore/auto mode holds back until keyEnd says whether the
 * key's raw bytes came (the records are then dropped for one RESTORE) or not (they are
 * translated after all).
 *
 * A small key's records are kept as the decoder made them. Once a key has held more than
 * PACK_AFTER_ELEMENTS elements, its item records are packed: the element bytes copied into
 * one Buffer, lengths, scores, TTLs and stream ids into flat arrays. Otherwise a big key's
 * hundreds of thousands of Buffer views stay alive across many young-generation GCs, each of
 * which copies all of them (measured: about 10 % of the CPU of a full sync of the 161 MB
 * mixed benchmark dataset). Packing costs one copy of the element bytes; `take()` rebuilds
 * records of views into the packed bytes, for the rare key whose raw bytes do not come.
 *
 * `bytes` is the same estimate, record for record, whether a record is packed or not, so
 * the restore buffer limit cuts in at the same place either way.
 */
import type { HashItem, RdbRecord, StreamEntry, ZsetItem } from '../rdb/types.js';
import { BlobItemsRecord } from '../rdb/values/blob-items.js';

/** Elements held loose before a key's item records are packed. */
const PACK_AFTER_ELEMENTS = 4096;
/** Estimated bytes of any record, on top of its elements. */
const RECORD_OVERHEAD = 64;

interface PackedRecord {
  kind: 'packed';
  of: 'listItems' | 'setItems' | 'zsetItems' | 'hashItems' | 'streamEntries';
  /** Every element Buffer of the record, back to back, in record order. */
  bytes: Buffer;
  /** Length of each element Buffer (zset: members; hash: field, value; stream: fields). */
  lens: Uint32Array;
  /** zset scores; hash field TTLs (NaN for none). */
  nums: Float64Array | null;
  /** Stream entry ids, and each entry's number of field/value Buffers. */
  ids: string[] | null;
  counts: Uint32Array | null;
  /** recordBytes() of the record it was packed from. */
  estimate: number;
}

type Held = RdbRecord | PackedRecord;

export class HeldRecords {
  private recs: Held[] = [];
  private loose = 0;
  private packing = false;
  /** Estimated payload bytes of the held records (what their commands would carry). */
  bytes = 0;

  get length(): number {
    return this.recs.length;
  }

  push(rec: RdbRecord): void {
    if (this.packing) {
      const p = pack(rec);
      this.bytes += p === null ? recordBytes(rec) : p.estimate;
      this.recs.push(p ?? rec);
      return;
    }
    this.bytes += recordBytes(rec);
    this.recs.push(rec);
    this.loose += elementCount(rec);
    if (this.loose > PACK_AFTER_ELEMENTS) {
      this.packing = true;
      for (let i = 0; i < this.recs.length; i++) this.recs[i] = pack(this.recs[i] as RdbRecord) ?? this.recs[i]!;
    }
  }

  /** The held records as the decoder produced them (packed ones rebuilt); empties the holder. */
  take(): RdbRecord[] {
    const out = this.recs.map((r) => (r.kind === 'packed' ? unpack(r) : r));
    this.clear();
    return out;
  }

  clear(): void {
    if (this.recs.length !== 0) this.recs = [];
    this.loose = 0;
    this.packing = false;
    this.bytes = 0;
  }
}

/** Approximate payload bytes of a value record (what its commands would carry). */
export function recordBytes(rec: RdbRecord): number {
  // A blob's items, not made yet: the decoder counted the same estimate.
  if (rec instanceof BlobItemsRecord) return RECORD_OVERHEAD + rec.itemBytes;
  let n = RECORD_OVERHEAD;
  switch (rec.kind) {
    case 'listItems':
    case 'setItems':
      for (const b of rec.items) n += b.length + 16;
      break;
    case 'zsetItems':
      for (const z of rec.items) n += z.member.length + 32;
      break;
    case 'hashItems':
      for (const it of rec.items) n += it.field.length + it.value.length + 32;
      break;
    case 'streamEntries':
      for (const e of rec.entries) for (const f of e.fields) n += f.length + 16;
      break;
    case 'string':
    case 'stringPart':
      n += rec.value.length;
      break;
    case 'module':
      n += rec.payload.length;
      break;
    default:
      break;
  }
  return n;
}

function elementCount(rec: RdbRecord): number {
  if (rec instanceof BlobItemsRecord) return rec.count;
  switch (rec.kind) {
    case 'listItems':
    case 'setItems':
    case 'zsetItems':
    case 'hashItems':
      return rec.items.length;
    case 'streamEntries': {
      let n = rec.entries.length;
      for (const e of rec.entries) n += e.fields.length;
      return n;
    }
    default:
      return 0;
  }
}

/** Copies `bufs` back to back into one Buffer; their lengths go to `lens` from `at`. */
function gather(bufs: readonly Buffer[], lens: Uint32Array, at: number, out: Buffer, o: number): number {
  for (let i = 0; i < bufs.length; i++) {
    const b = bufs[i]!;
    out.set(b, o);
    o += b.length;
    lens[at + i] = b.length;
  }
  return o;
}

/** The packed form of an item record, or null for a record kind that is kept as is. */
function pack(rec: RdbRecord): PackedRecord | null {
  // A blob's items not made yet are one Buffer already (a view of the blob): kept as they are.
  if (rec instanceof BlobItemsRecord) return null;
  switch (rec.kind) {
    case 'listItems':
    case 'setItems': {
      const items = rec.items;
      let total = 0;
      for (const b of items) total += b.length;
      const bytes = Buffer.allocUnsafe(total);
      const lens = new Uint32Array(items.length);
      gather(items, lens, 0, bytes, 0);
      return { kind: 'packed', of: rec.kind, bytes, lens, nums: null, ids: null, counts: null, estimate: RECORD_OVERHEAD + total + 16 * items.length };
    }
    case 'zsetItems': {
      const items = rec.items;
      let total = 0;
      for (const z of items) total += z.member.length;
      const bytes = Buffer.allocUnsafe(total);
      const lens = new Uint32Array(items.length);
      const nums = new Float64Array(items.length);
      let o = 0;
      for (let i = 0; i < items.length; i++) {
        const m = items[i]!.member;
        bytes.set(m, o);
        o += m.length;
        lens[i] = m.length;
        nums[i] = items[i]!.score;
      }
      return { kind: 'packed', of: 'zsetItems', bytes, lens, nums, ids: null, counts: null, estimate: RECORD_OVERHEAD + total + 32 * items.length };
    }
    case 'hashItems': {
      const items = rec.items;
      let total = 0;
      for (const it of items) total += it.field.length + it.value.length;
      const bytes = Buffer.allocUnsafe(total);
      const lens = new Uint32Array(items.length * 2);
      const nums = new Float64Array(items.length);
      let o = 0;
      for (let i = 0; i < items.length; i++) {
        const { field, value, expireMs } = items[i]!;
        bytes.set(field, o);
        o += field.length;
        bytes.set(value, o);
        o += value.length;
        lens[2 * i] = field.length;
        lens[2 * i + 1] = value.length;
        nums[i] = expireMs === null ? NaN : expireMs;
      }
      return { kind: 'packed', of: 'hashItems', bytes, lens, nums, ids: null, counts: null, estimate: RECORD_OVERHEAD + total + 32 * items.length };
    }
    case 'streamEntries': {
      const entries = rec.entries;
      let total = 0;
      let fields = 0;
      for (const e of entries) {
        fields += e.fields.length;
        for (const f of e.fields) total += f.length;
      }
      const bytes = Buffer.allocUnsafe(total);
      const lens = new Uint32Array(fields);
      const counts = new Uint32Array(entries.length);
      const ids: string[] = new Array<string>(entries.length);
      let o = 0;
      let at = 0;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        ids[i] = e.id;
        counts[i] = e.fields.length;
        o = gather(e.fields, lens, at, bytes, o);
        at += e.fields.length;
      }
      return { kind: 'packed', of: 'streamEntries', bytes, lens, nums: null, ids, counts, estimate: RECORD_OVERHEAD + total + 16 * fields };
    }
    default:
      return null;
  }
}

function unpack(p: PackedRecord): RdbRecord {
  const { bytes, lens } = p;
  let o = 0;
  const next = (i: number): Buffer => {
    const b = bytes.subarray(o, o + lens[i]!);
    o += lens[i]!;
    return b;
  };
  switch (p.of) {
    case 'listItems':
    case 'setItems': {
      const items: Buffer[] = [];
      for (let i = 0; i < lens.length; i++) items.push(next(i));
      return { kind: p.of, items };
    }
    case 'zsetItems': {
      const items: ZsetItem[] = [];
      for (let i = 0; i < lens.length; i++) items.push({ member: next(i), score: p.nums![i]! });
      return { kind: 'zsetItems', items };
    }
    case 'hashItems': {
      const items: HashItem[] = [];
      for (let i = 0; i < lens.length / 2; i++) {
        const field = next(2 * i);
        const value = next(2 * i + 1);
        const t = p.nums![i]!;
        items.push({ field, value, expireMs: Number.isNaN(t) ? null : t });
      }
      return { kind: 'hashItems', items };
    }
    case 'streamEntries': {
      const entries: StreamEntry[] = [];
      let at = 0;
      for (let i = 0; i < p.counts!.length; i++) {
        const fields: Buffer[] = [];
        for (let k = 0; k < p.counts![i]!; k++) fields.push(next(at++));
        entries.push({ id: p.ids![i]!, fields });
      }
      return { kind: 'streamEntries', entries };
    }
  }
}
