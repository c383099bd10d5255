/**
 * Selects keys by db, name glob and type. Applied to the record stream: a key that does not
 * match is dropped from its keyStart through its keyEnd / keySkipped; other records pass.
 */
import type { KeyHeader, RdbRecord, ValueType } from '../rdb/types.js';
import { GlobMatcher } from './glob.js';

export const VALUE_TYPES: readonly ValueType[] = ['string', 'list', 'set', 'zset', 'hash', 'stream', 'module', 'array'];

export interface KeyFilterOptions {
  dbs?: readonly number[];
  /** Redis glob on the key name. */
  key?: Buffer | string;
  types?: readonly ValueType[];
}

export class KeyFilter {
  private readonly dbs: Set<number> | null;
  private readonly glob: GlobMatcher | null;
  private readonly types: Set<ValueType> | null;
  private dropping = false;
  /** Keys dropped by the filter. */
  dropped = 0;

  constructor(opts: KeyFilterOptions) {
    this.dbs = opts.dbs && opts.dbs.length > 0 ? new Set(opts.dbs) : null;
    this.glob = opts.key === undefined ? null : new GlobMatcher(opts.key);
    this.types = opts.types && opts.types.length > 0 ? new Set(opts.types) : null;
  }

  /** True when no criterion is set (every record passes). */
  get passAll(): boolean {
    return this.dbs === null && this.glob === null && this.types === null;
  }

  matchesKey(h: KeyHeader): boolean {
    if (this.dbs !== null && !this.dbs.has(h.db)) return false;
    if (this.types !== null && !this.types.has(h.type)) return false;
    if (this.glob !== null && !this.glob.matches(h.key)) return false;
    return true;
  }

  /** Whether `rec` passes. Call for every record, in order. */
  accept(rec: RdbRecord): boolean {
    if (rec.kind === 'keyStart') {
      this.dropping = !this.matchesKey(rec);
      if (this.dropping) this.dropped++;
      return !this.dropping;
    }
    if (rec.kind === 'keyEnd' || rec.kind === 'keySkipped') {
      const pass = !this.dropping;
      this.dropping = false;
      return pass;
    }
    if (this.dropping) {
      // Top-level records never come inside a key, but be explicit about what we drop.
      return !isKeyValueRecord(rec);
    }
    return true;
  }
}

function isKeyValueRecord(rec: RdbRecord): boolean {
  switch (rec.kind) {
    case 'string':
    case 'stringPart':
    case 'listItems':
    case 'setItems':
    case 'zsetItems':
    case 'hashItems':
    case 'streamEntries':
    case 'streamMeta':
    case 'streamGroup':
    case 'streamPel':
    case 'streamConsumer':
    case 'module':
    case 'arrayMeta':
    case 'arrayItems':
      return true;
    default:
      return false;
  }
}
