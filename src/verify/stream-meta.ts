/**
 * What a stream holds besides its entries: last id and counters, consumer groups, their
 * consumers and pending entries. DEBUG DIGEST and DIGEST-VALUE cover only the entries, so
 * this is checked for every stream whose DUMP payloads are not byte-identical.
 *
 * Compared: XINFO STREAM last-generated-id / max-deleted-entry-id / entries-added / groups;
 * per group name, consumers, pending, last-delivered-id, entries-read; per consumer its
 * pending count; each pending entry's id, owner and delivery count. Not compared: idle and
 * seen times (clock-dependent). A field one server does not report (older versions) is skipped.
 */
import { printableKey } from '../errors.js';
import { both, nextStreamId, type SidePair } from './pair.js';
import { quoted } from './report.js';

const PENDING_CHUNK = 1000;
const STREAM_FIELDS = ['last-generated-id', 'max-deleted-entry-id', 'entries-added', 'groups'];
const GROUP_FIELDS = ['consumers', 'pending', 'last-delivered-id', 'entries-read'];

type Info = Map<string, unknown>;

/** A flat [name, value, ...] reply -> map with text names. */
function toInfo(flat: unknown[]): Info {
  const m: Info = new Map();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
  return m;
}

function text(v: unknown): string {
  return v === null || v === undefined ? 'nil' : Buffer.isBuffer(v) ? v.toString('latin1') : String(v);
}

function firstFieldDiff(s: Info, t: Info, fields: string[]): string | null {
  for (const f of fields) {
    if (!s.has(f) || !t.has(f)) continue;
    if (text(s.get(f)) !== text(t.get(f))) return `${f} ${text(s.get(f))} on source, ${text(t.get(f))} on target`;
  }
  return null;
}

export async function compareStreamMeta(key: Buffer, pair: SidePair): Promise<string | null> {
  const [sInfo, tInfo] = await both(pair, ['XINFO', 'STREAM', key]);
  const s = toInfo(sInfo as unknown[]);
  const t = toInfo(tInfo as unknown[]);
  const streamDiff = firstFieldDiff(s, t, STREAM_FIELDS);
  if (streamDiff) return `stream ${streamDiff}`;
  if (Number(s.get('groups') ?? 0) === 0) return null;
  const [sg, tg] = await both(pair, ['XINFO', 'GROUPS', key]);
  const byName = (groups: unknown[]) => new Map((groups as unknown[][]).map((g) => toInfo(g)).map((g) => [text(g.get('name')), g]));
  const sGroups = byName(sg as unknown[]);
  const tGroups = byName(tg as unknown[]);
  for (const [name, sGroup] of sGroups) {
    const shown = quoted(Buffer.from(name, 'latin1'));
    const tGroup = tGroups.get(name);
    if (!tGroup) return `consumer group ${shown} missing on target`;
    const d = firstFieldDiff(sGroup, tGroup, GROUP_FIELDS);
    if (d) return `consumer group ${shown}: ${d}`;
    const c = await compareConsumers(key, name, pair);
    if (c) return `consumer group ${shown}: ${c}`;
    if (Number(sGroup.get('pending') ?? 0) > 0) {
      const p = await comparePending(key, name, pair);
      if (p) return `consumer group ${shown}: ${p}`;
    }
  }
  for (const name of tGroups.keys()) {
    if (!sGroups.has(name)) return `consumer group ${quoted(Buffer.from(name, 'latin1'))} only on target`;
  }
  return null;
}

async function compareConsumers(key: Buffer, group: string, pair: SidePair): Promise<string | null> {
  const g = Buffer.from(group, 'latin1');
  const [s, t] = await both(pair, ['XINFO', 'CONSUMERS', key, g]);
  const summary = (list: unknown) =>
    (list as unknown[][])
      .map((c) => toInfo(c))
      .map((c) => `${text(c.get('name'))}=${text(c.get('pending'))}`)
      .sort();
  const a = summary(s);
  const b = summary(t);
  if (a.length !== b.length) return `${a.length} consumers on source, ${b.length} on target`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `consumers differ (${printableKey(Buffer.from(a[i]!, 'latin1'))} vs ${printableKey(Buffer.from(b[i]!, 'latin1'))} pending)`;
  return null;
}

/** Pending entries in id order: id, owner, delivery count (idle time is clock-dependent). */
async function comparePending(key: Buffer, group: string, pair: SidePair): Promise<string | null> {
  const g = Buffer.from(group, 'latin1');
  let start = '-';
  for (;;) {
    const [s, t] = (await both(pair, ['XPENDING', key, g, start, '+', PENDING_CHUNK])) as [unknown[][], unknown[][]];
    for (let i = 0; i < Math.max(s.length, t.length); i++) {
      const a = s[i];
      const b = t[i];
      if (!a || !b) return `pending entry ${text((a ?? b)![0])} only on ${a ? 'source' : 'target'}`;
      if (text(a[0]) !== text(b[0])) return `pending entries differ (${text(a[0])} vs ${text(b[0])})`;
      if (text(a[1]) !== text(b[1])) return `pending entry ${text(a[0])} owned by ${printableKey(a[1] as Buffer)} on source, ${printableKey(b[1] as Buffer)} on target`;
      if (text(a[3]) !== text(b[3])) return `pending entry ${text(a[0])} delivered ${text(a[3])} times on source, ${text(b[3])} on target`;
    }
    if (s.length < PENDING_CHUNK) return null;
    start = nextStreamId(text(s[s.length - 1]![0]));
  }
}
