/**
 * Whether two selections of one source may copy the same source key: two syncs that both copy a
 * key apply every write to it twice. Decided on what PartialScope keeps of the *source* (dbs,
 * names, types): renames and the db map only move a kept key elsewhere on the target.
 *
 * Conservative by design: two selections are disjoint only when that is provable from their
 * filters alone; anything else counts as an overlap.
 */
import type { ValueType } from '../../rdb/types.js';

/** The part of a selection that decides which source keys it copies (null fields: everything). */
export interface SourceSelection {
  dbs: readonly number[] | null;
  /** Include globs and prefixes, as globs (`prefix*`); null: every name. */
  names: readonly string[] | null;
  /** Exclude globs. */
  excludes: readonly string[];
  types: readonly ValueType[] | null;
}

/** The whole source (a sync without filters). */
export const WHOLE_SOURCE: SourceSelection = { dbs: null, names: null, excludes: [], types: null };

/**
 * A registry entry's filter fingerprint (JSON written by PartialScope's describeSpec) back into a
 * SourceSelection; undefined/'' is a full copy. Unreadable text is taken as the whole source.
 */
export function selectionOfFingerprint(fingerprint: string | undefined): SourceSelection {
  if (fingerprint === undefined || fingerprint === '') return WHOLE_SOURCE;
  try {
    const o = JSON.parse(fingerprint) as Record<string, unknown>;
    const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    const dbs = Array.isArray(o.dbs) ? o.dbs.filter((x): x is number => typeof x === 'number') : [];
    const names = [...strings(o.keys), ...strings(o.prefixes).map(prefixGlob)];
    const types = strings(o.types) as ValueType[];
    return { dbs: dbs.length > 0 ? dbs : null, names: names.length > 0 ? names : null, excludes: strings(o.excludes), types: types.length > 0 ? types : null };
  } catch {
    return WHOLE_SOURCE;
  }
}

/** Null when the two selections provably copy no common source key; else why they may. */
export function selectionOverlap(a: SourceSelection, b: SourceSelection): string | null {
  if (a.dbs !== null && b.dbs !== null && !a.dbs.some((d) => b.dbs!.includes(d))) return null;
  if (a.types !== null && b.types !== null && !a.types.some((t) => b.types!.includes(t))) return null;
  const an = a.names ?? ['*'];
  const bn = b.names ?? ['*'];
  for (const x of an) {
    for (const y of bn) {
      if (!globsMayMeet(x, y)) continue;
      // A name of both that one side excludes entirely is not copied by that side.
      if (excludedBy(y, a.excludes) || excludedBy(x, b.excludes)) continue;
      return `the key patterns ${JSON.stringify(x)} and ${JSON.stringify(y)} may match the same keys`;
    }
  }
  return null;
}

/** A --key-prefix as the glob it is equivalent to. */
function prefixGlob(prefix: string): string {
  return `${prefix.replace(/[*?[\\]/g, (c) => `\\${c}`)}*`;
}

/** The literal text a glob starts with (escapes resolved), and whether the glob is nothing else. */
export function literalPrefix(glob: string): { text: string; exact: boolean } {
  let text = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' || c === '?' || c === '[') return { text, exact: false };
    if (c === '\\' && i + 1 < glob.length) text += glob[++i];
    else text += c;
  }
  return { text, exact: true };
}

/**
 * False only when no name can match both globs: their literal prefixes diverge, or one is an
 * exact name the other's literal prefix does not start.
 */
export function globsMayMeet(x: string, y: string): boolean {
  const a = literalPrefix(x);
  const b = literalPrefix(y);
  if (a.exact && b.exact) return a.text === b.text;
  if (a.exact) return a.text.startsWith(b.text);
  if (b.exact) return b.text.startsWith(a.text);
  return a.text.startsWith(b.text) || b.text.startsWith(a.text);
}

/** Every name `glob` matches is matched by one exclude of the form `literal*` that it starts with. */
function excludedBy(glob: string, excludes: readonly string[]): boolean {
  const g = literalPrefix(glob);
  return excludes.some((e) => {
    const lit = literalPrefix(e);
    const prefixOnly = !lit.exact && e === prefixGlob(lit.text);
    return (prefixOnly && g.text.startsWith(lit.text)) || (lit.exact && g.exact && lit.text === g.text);
  });
}
