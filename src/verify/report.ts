/** What a verify found, and how it is printed (text for people, JSON for machines). */
import { printableKey } from '../errors.js';

export type DiffKind = 'missing' | 'extra' | 'value' | 'type' | 'ttl';

/** The outcome for one key. `absent`: on neither side any more (deleted or expired meanwhile). */
/** `outside`: a key of a type the partial sync's --type leaves out (on each side that has it). */
export type Verdict = { kind: 'equal' } | { kind: 'absent' } | { kind: 'outside' } | { kind: DiffKind; detail: string };

export interface Difference {
  db: number;
  key: Buffer;
  kind: DiffKind;
  detail: string;
}

/** How values were fingerprinted: DEBUG DIGEST-VALUE, DUMP payloads, or reading them. */
export type Fingerprint = 'digest-value' | 'dump' | 'values';

export interface VerifySummary {
  /** Source keys with a verdict (equal + missing + value + type + ttl). */
  compared: number;
  equal: number;
  missing: number;
  extra: number;
  value: number;
  type: number;
  ttl: number;
  /** Keys SCAN listed that were gone from both sides when checked. */
  vanished: number;
  /** Keys found different at first and equal when re-checked after --settle. */
  settled: number;
  /** `__replicant*` keys left out (counted on each side). */
  reserved: number;
  /** Keys of types left out by --type (counted on each side scanned). */
  otherTypes: number;
}

export interface SideInfo {
  address: string;
  version: string;
  debug: boolean;
  /** A Redis Cluster's number of masters; null for a standalone server. */
  masters: number | null;
}

export interface VerifyReport {
  equal: boolean;
  /** `digest`: whole-dataset DEBUG DIGEST matched; `keys`: key by key. */
  method: 'digest' | 'keys';
  fingerprint: Fingerprint | null;
  expiry: 'pexpiretime' | 'pttl';
  source: SideInfo;
  target: SideInfo;
  /** Databases compared. */
  dbs: number[];
  keyPattern: string | null;
  /** A partial sync's selection (dbs, keys, rename, db map) the comparison was limited to, or null. */
  selection: string | null;
  sample: string | null;
  settleMs: number;
  summary: VerifySummary;
  /** Up to --max-diffs examples, in the order found. */
  differences: Difference[];
  durationMs: number;
  /** Facts that explain some of the differences (a cluster's single db). */
  notes: string[];
}

/** A key or member for people: printable text (\xNN for other bytes) in double quotes. */
export function quoted(b: Buffer): string {
  return `"${printableKey(b)}"`;
}

export function emptySummary(): VerifySummary {
  return { compared: 0, equal: 0, missing: 0, extra: 0, value: 0, type: 0, ttl: 0, vanished: 0, settled: 0, reserved: 0, otherTypes: 0 };
}

export function differenceCount(s: VerifySummary): number {
  return s.missing + s.extra + s.value + s.type + s.ttl;
}

export const KIND_LABEL: Record<DiffKind, string> = {
  missing: 'missing on target',
  extra: 'extra on target',
  value: 'different value',
  type: 'different type',
  ttl: 'different TTL',
};

export function formatReport(r: VerifyReport): string {
  const s = r.summary;
  const how =
    r.method === 'digest'
      ? 'DEBUG DIGEST of the whole dataset'
      : `key by key, values by ${r.fingerprint === 'digest-value' ? 'DEBUG DIGEST-VALUE' : r.fingerprint === 'dump' ? 'DUMP payloads' : 'reading them'}`;
  const lines = [
    `source ${sideText(r.source)}  target ${sideText(r.target)}`,
    `compared ${how}; expiries by ${r.expiry === 'pexpiretime' ? 'PEXPIRETIME' : 'PTTL'}; dbs ${r.dbs.length ? r.dbs.join(',') : 'none'}` +
      `${r.keyPattern !== null ? `; keys ${JSON.stringify(r.keyPattern)}` : ''}${r.sample !== null ? `; sample ${r.sample}` : ''}${r.settleMs > 0 ? `; settle ${r.settleMs} ms` : ''}`,
    ...(r.selection !== null ? [`selection ${r.selection}`] : []),
    ...r.notes.map((n) => `note: ${n}`),
    '',
    row('keys compared', s.compared),
    row('equal', s.equal),
    row(KIND_LABEL.missing, s.missing),
    row(KIND_LABEL.extra, s.extra),
    row(KIND_LABEL.value, s.value),
    row(KIND_LABEL.type, s.type),
    row(KIND_LABEL.ttl, s.ttl),
  ];
  if (s.vanished > 0) lines.push(row('vanished meanwhile', s.vanished));
  if (r.settleMs > 0) lines.push(row('settled on recheck', s.settled));
  if (s.reserved > 0) lines.push(row("Replicant's own keys skipped", s.reserved));
  if (s.otherTypes > 0) lines.push(row('other types skipped', s.otherTypes));
  const total = differenceCount(s);
  if (r.differences.length > 0) {
    lines.push('', total > r.differences.length ? `differences (first ${r.differences.length} of ${total}):` : 'differences:');
    for (const d of r.differences) {
      lines.push(`  db ${d.db}  ${KIND_LABEL[d.kind].padEnd(17)}  ${quoted(d.key)}${d.detail ? `  ${d.detail}` : ''}`);
    }
  }
  const what = r.selection !== null ? 'the selected part of the source (renamed / mapped as given)' : 'what the source holds';
  lines.push('', r.equal ? `EQUAL: the target holds ${what}` : `DIFFERENT: ${total} difference${total === 1 ? '' : 's'}`);
  return `${lines.join('\n')}\n`;
}

function sideText(s: SideInfo): string {
  return `${s.address} (${s.version}${s.masters !== null ? `, cluster of ${s.masters} master${s.masters === 1 ? '' : 's'}` : ''})`;
}

function row(label: string, n: number): string {
  return `${label.padEnd(22)}${String(n).padStart(12)}`;
}

export function reportToJson(r: VerifyReport): unknown {
  return {
    ...r,
    differences: r.differences.map((d) => ({ db: d.db, key: printableKey(d.key), keyBase64: d.key.toString('base64'), kind: d.kind, detail: d.detail })),
  };
}
