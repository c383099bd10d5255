/**
 * `--format stats`: keys, keys with an expiry, and value bytes (the serialized value's size
 * in the file, `keyEnd.valueBytes`) per db and per type, plus the N biggest keys by value
 * bytes. Memory: one row per db and type, and N keys.
 */
import type { KeyHeader, RdbRecord, ValueType } from '../rdb/types.js';
import { printableKey } from '../errors.js';
import { BlobItemsRecord } from '../rdb/values/blob-items.js';
import { isJsonText } from './json-bytes.js';

export interface StatsRow {
  keys: number;
  /** Keys with an expiry. */
  expires: number;
  /** Keys whose expiry had already passed at `now`. */
  expired: number;
  bytes: number;
  elements: number;
}

export interface BigKey {
  db: number;
  key: Buffer;
  type: ValueType;
  bytes: number;
  elements: number;
  expireMs: number | null;
}

export interface RdbStats {
  rdbVersion: number | null;
  total: StatsRow;
  dbs: Map<number, StatsRow>;
  types: Map<ValueType, StatsRow>;
  /** Biggest first. */
  top: BigKey[];
  functions: number;
  auxFields: number;
  corruptSkipped: number;
}

const emptyRow = (): StatsRow => ({ keys: 0, expires: 0, expired: 0, bytes: 0, elements: 0 });

function addTo(row: StatsRow, h: KeyHeader, expired: boolean, bytes: number, elements: number): void {
  row.keys++;
  if (h.expireMs !== null) row.expires++;
  if (expired) row.expired++;
  row.bytes += bytes;
  row.elements += elements;
}

function rowOf<K>(rows: Map<K, StatsRow>, k: K): StatsRow {
  let row = rows.get(k);
  if (!row) rows.set(k, (row = emptyRow()));
  return row;
}

export class StatsCollector {
  private readonly topN: number;
  private readonly now: number;
  private readonly result: RdbStats = {
    rdbVersion: null, total: emptyRow(), dbs: new Map(), types: new Map(), top: [], functions: 0, auxFields: 0, corruptSkipped: 0,
  };
  private cur: KeyHeader | null = null;
  private elements = 0;
  /** The rows of the last key's db and type. */
  private lastDb = -1;
  private dbRow: StatsRow = emptyRow();
  private lastType: ValueType | null = null;
  private typeRow: StatsRow = emptyRow();

  constructor(opts: { top?: number; now?: number } = {}) {
    this.topN = Math.max(0, opts.top ?? 10);
    this.now = opts.now ?? Date.now();
  }

  /** push() of every record of a decoder push (one call, so the loop runs inside the collector). */
  pushAll(records: readonly RdbRecord[]): void {
    for (let i = 0; i < records.length; i++) this.push(records[i]!);
  }

  push(rec: RdbRecord): void {
    // The three records of every small string key first.
    switch (rec.kind) {
      case 'keyEnd':
        this.endKey(rec.valueBytes);
        return;
      case 'keyStart':
        this.cur = rec;
        this.elements = 0;
        return;
      case 'string':
      case 'stringPart':
      case 'module':
        this.elements = 1;
        return;
      case 'listItems':
      case 'setItems':
      case 'zsetItems':
      case 'hashItems':
        // A blob's items are counted without making them.
        this.elements += rec instanceof BlobItemsRecord ? rec.count : rec.items.length;
        return;
      case 'streamEntries':
        this.elements += rec.entries.length;
        return;
      case 'arrayItems':
        this.elements += rec.items.length;
        return;
      case 'keySkipped':
        this.cur = null;
        this.result.corruptSkipped++;
        return;
      case 'header':
        this.result.rdbVersion = rec.version;
        return;
      case 'aux':
        this.result.auxFields++;
        return;
      case 'function':
        this.result.functions++;
        return;
      default:
        return;
    }
  }

  private endKey(bytes: number): void {
    const h = this.cur;
    if (h === null) return;
    this.cur = null;
    const r = this.result;
    const expired = h.expireMs !== null && h.expireMs <= this.now;
    addTo(r.total, h, expired, bytes, this.elements);
    // Consecutive keys mostly share their db and type: look the rows up only when they change.
    if (h.db !== this.lastDb) {
      this.lastDb = h.db;
      this.dbRow = rowOf(r.dbs, h.db);
    }
    addTo(this.dbRow, h, expired, bytes, this.elements);
    if (h.type !== this.lastType) {
      this.lastType = h.type;
      this.typeRow = rowOf(r.types, h.type);
    }
    addTo(this.typeRow, h, expired, bytes, this.elements);
    if (this.topN > 0 && (this.result.top.length < this.topN || bytes > this.result.top[this.result.top.length - 1]!.bytes)) this.considerTop(h, bytes);
  }

  private considerTop(h: KeyHeader, bytes: number): void {
    const top = this.result.top;
    if (this.topN === 0) return;
    if (top.length >= this.topN && bytes <= top[top.length - 1]!.bytes) return;
    const entry: BigKey = { db: h.db, key: Buffer.from(h.key), type: h.type, bytes, elements: this.elements, expireMs: h.expireMs };
    // Sorted insert (descending); N is small.
    let i = top.length;
    while (i > 0 && top[i - 1]!.bytes < bytes) i--;
    top.splice(i, 0, entry);
    if (top.length > this.topN) top.pop();
  }

  get stats(): RdbStats {
    return this.result;
  }
}

/** Stats as plain JSON (keys as the byte-string convention's text where possible). */
export function statsToJson(s: RdbStats): unknown {
  const rows = <K>(m: Map<K, StatsRow>) => Object.fromEntries([...m].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([k, v]) => [String(k), v]));
  return {
    rdb_version: s.rdbVersion,
    total: s.total,
    dbs: rows(s.dbs),
    types: rows(s.types),
    top: s.top.map((k) => ({
      db: k.db,
      key: keyJson(k.key),
      type: k.type,
      bytes: k.bytes,
      elements: k.elements,
      expire_ms: k.expireMs,
    })),
    functions: s.functions,
    aux_fields: s.auxFields,
    corrupt_skipped: s.corruptSkipped,
  };
}

function keyJson(k: Buffer): string | { b64: string } {
  return isJsonText(k) ? k.toString('utf8') : { b64: k.toString('base64') };
}

/** A human-readable report. */
export function formatStats(s: RdbStats): string {
  const lines: string[] = [];
  const header = ['', 'keys', 'expires', 'expired', 'elements', 'value bytes'];
  const table = (title: string, rows: [string, StatsRow][]) => {
    const cells = [[title, ...header.slice(1)], ...rows.map(([name, r]) => [name, String(r.keys), String(r.expires), String(r.expired), String(r.elements), String(r.bytes)])];
    const widths = header.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
    for (const c of cells) lines.push(c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ').trimEnd());
    lines.push('');
  };
  lines.push(`RDB version ${s.rdbVersion ?? '?'}: ${s.total.keys} keys, ${s.total.bytes} value bytes, ${s.functions} function libraries, ${s.auxFields} aux fields`);
  if (s.corruptSkipped > 0) lines.push(`${s.corruptSkipped} corrupt keys skipped`);
  lines.push('');
  table('db', [...s.dbs].sort((a, b) => a[0] - b[0]).map(([db, r]) => [String(db), r]));
  table('type', [...s.types].sort((a, b) => b[1].bytes - a[1].bytes).map(([t, r]) => [t, r]));
  table('total', [['all', s.total]]);
  if (s.top.length > 0) {
    lines.push(`biggest ${s.top.length} keys by value bytes:`);
    const cells = s.top.map((k) => [String(k.bytes), k.type, `db${k.db}`, String(k.elements), printableKey(k.key)]);
    const widths = [0, 1, 2, 3].map((i) => Math.max(...cells.map((c) => c[i]!.length)));
    for (const c of cells) lines.push(`  ${c[0]!.padStart(widths[0]!)}  ${c[1]!.padEnd(widths[1]!)}  ${c[2]!.padEnd(widths[2]!)}  ${c[3]!.padStart(widths[3]!)} el  ${c[4]}`);
  }
  return `${lines.join('\n')}\n`;
}
