/**
 * Selects keys by db, name (globs, prefixes, exclusions) and type. Applied to the record stream: a key that does not
 * match is dropped from its keyStart through its keyEnd / keySkipped; other records pass.
 */
import type { KeyHeader, RdbRecord, ValueType } from '../rdb/types.js';
import { UsageError } from '../errors.js';
import { GlobMatcher } from './glob.js';

export const VALUE_TYPES: readonly ValueType[] = ['string', 'list', 'set', 'zset', 'hash', 'stream', 'module', 'array'];

/** Which key names are selected: any of `keys` (globs) or `prefixes` (none given: every key), minus `excludes` (globs). */
export interface KeySelection {
  keys?: readonly (Buffer | string)[];
  prefixes?: readonly (Buffer | string)[];
  excludes?: readonly (Buffer | string)[];
}

/** Matches key names against a KeySelection (shared by `rdb`, `sync` and `verify`). */
export class KeyMatcher {
  private readonly includes: GlobMatcher[];
  private readonly prefixes: Buffer[];
  private readonly excludes: GlobMatcher[];

  constructor(sel: KeySelection) {
    this.includes = (sel.keys ?? []).map((k) => new GlobMatcher(k));
    this.prefixes = (sel.prefixes ?? []).map((p) => (typeof p === 'string' ? Buffer.from(p) : p));
    this.excludes = (sel.excludes ?? []).map((k) => new GlobMatcher(k));
  }

  /** True when every key matches. */
  get passAll(): boolean {
    return this.includes.length === 0 && this.prefixes.length === 0 && this.excludes.length === 0;
  }

  matches(key: Buffer): boolean {
    if (this.includes.length > 0 || this.prefixes.length > 0) {
      if (!this.includes.some((g) => g.matches(key)) && !this.prefixes.some((p) => startsWith(key, p))) return false;
    }
    return !this.excludes.some((g) => g.matches(key));
  }
}

export function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** `--type` values (repeated or comma-separated, any case) as value types; a UsageError names a wrong one. */
export function parseValueTypes(values: readonly string[]): ValueType[] {
  const types: ValueType[] = [];
  for (const v of values.flatMap((s) => s.split(','))) {
    const t = v.trim().toLowerCase() as ValueType;
    if (!VALUE_TYPES.includes(t)) throw new UsageError(`--type: "${v}" is not one of ${VALUE_TYPES.join(', ')}`);
    types.push(t);
  }
  return types;
}

export interface KeyFilterOptions extends KeySelection {
  dbs?: readonly number[];
  types?: readonly ValueType[];
}

export class KeyFilter {
  private readonly dbs: Set<number> | null;
  private readonly names: KeyMatcher | null;
  private readonly types: Set<ValueType> | null;
  private dropping = false;
  /** Keys dropped by the filter. */
  dropped = 0;

  constructor(opts: KeyFilterOptions) {
    this.dbs = opts.dbs && opts.dbs.length > 0 ? new Set(opts.dbs) : null;
    const names = new KeyMatcher(opts);
    this.names = names.passAll ? null : names;
    this.types = opts.types && opts.types.length > 0 ? new Set(opts.types) : null;
  }

  /** True when no criterion is set (every record passes). */
  get passAll(): boolean {
    return this.dbs === null && this.names === null && this.types === null;
  }

  matchesKey(h: KeyHeader): boolean {
    if (this.dbs !== null && !this.dbs.has(h.db)) return false;
    if (this.types !== null && !this.types.has(h.type)) return false;
    if (this.names !== null && !this.names.matches(h.key)) return false;
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
