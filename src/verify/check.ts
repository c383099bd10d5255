/**
 * Classify a batch of keys of one database: one pipeline per side with TYPE, the expiry
 * (PEXPIRETIME, or PTTL) and a value fingerprint (one DEBUG DIGEST-VALUE for the whole batch;
 * without DEBUG, MEMORY USAGE per key, then DUMP of the keys up to BIG_VALUE_BYTES), then
 * element-wise reads (in ranges: values.ts) for the keys the fingerprint cannot settle.
 *
 * Verdict priority per key: missing / extra, then type, then value, then TTL (a key whose
 * value and TTL both differ counts as a value difference; the detail names both).
 */
import type { Logger } from '../observe/logger.js';
import type { SidePair } from './pair.js';
import type { Fingerprint, Verdict } from './report.js';
import { ServerReply, type VerifySide } from './side.js';
import type { Arg } from '../resp/encode.js';
import { compareStreamMeta } from './stream-meta.js';
import { compareValues } from './values.js';

/** Absolute expiries read with PTTL may differ by the read skew plus this. */
export const PTTL_TOLERANCE_MS = 2000;
/** Keys compared element by element at the same time (their commands share the connections). */
const COMPARE_CONCURRENCY = 16;
/** Keys per DEBUG DIGEST-VALUE call. */
const DIGEST_KEYS = 100;
/** Values above this (MEMORY USAGE) are compared in ranges rather than by DUMP payloads. */
export const BIG_VALUE_BYTES = 4 * 1024 * 1024;
/** DUMPs per pipeline add up to about this much (by MEMORY USAGE). */
const DUMP_PIPELINE_BYTES = 16 * 1024 * 1024;
/** What DEBUG DIGEST-VALUE answers for a key the node does not hold. */
const NO_KEY_DIGEST = /^0+$/;

export interface CheckerOptions {
  source: VerifySide;
  target: VerifySide;
  fingerprint: Fingerprint;
  expiry: 'pexpiretime' | 'pttl';
  /** Whether a value difference found by digest should be described by reading the value (for the examples). */
  describe: () => boolean;
  logger: Logger;
  /** A partial sync's target db and name of a source key (default: the same). */
  targetDb?: (db: number) => number;
  targetKey?: (key: Buffer) => Buffer;
  /** A partial sync's --type: keys of other types are outside the copy, on either side (TYPE names as Redis gives them). */
  keepsType?: (type: string) => boolean;
}

interface SideRead {
  type: string;
  /** PEXPIRETIME (absolute ms) or PTTL converted to absolute ms; -1 none. */
  expireAt: number;
  dump: Buffer | null;
  digest: string | null;
}

export class KeyChecker {
  private fp: Fingerprint;

  constructor(private readonly o: CheckerOptions) {
    this.fp = o.fingerprint;
  }

  get fingerprint(): Fingerprint {
    return this.fp;
  }

  /** A read of a key whose type is left out by --type counts as no key. */
  private inScope(r: SideRead): SideRead {
    const keeps = this.o.keepsType;
    return keeps === undefined || r.type === 'none' || keeps(r.type) ? r : { ...r, type: 'none' };
  }

  async check(db: number, keys: Buffer[]): Promise<Verdict[]> {
    if (keys.length === 0) return [];
    const fp = this.fp;
    const tdb = this.o.targetDb?.(db) ?? db;
    const rename = this.o.targetKey;
    const tkeys = rename === undefined ? keys : keys.map(rename);
    const [src, tgt] = await Promise.all([this.read(this.o.source, db, keys, fp), this.read(this.o.target, tdb, tkeys, fp)]);
    const base: SidePair = { source: this.o.source, target: this.o.target, db, targetDb: tdb };
    const verdicts: Verdict[] = new Array(keys.length);
    const deferred: (() => Promise<void>)[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const pair: SidePair = rename === undefined ? base : { ...base, key, targetKey: tkeys[i]! };
      const s = this.inScope(src[i]!);
      const t = this.inScope(tgt[i]!);
      if (s.type === 'none' && t.type === 'none') verdicts[i] = src[i]!.type === 'none' && tgt[i]!.type === 'none' ? { kind: 'absent' } : { kind: 'outside' };
      else if (s.type === 'none') verdicts[i] = { kind: 'extra', detail: `${t.type} only on target` };
      else if (t.type === 'none') verdicts[i] = { kind: 'missing', detail: `${s.type} only on source` };
      else if (s.type !== t.type) verdicts[i] = { kind: 'type', detail: `${s.type} on source, ${t.type} on target` };
      else {
        const ttl = this.compareExpiry(s.expireAt, t.expireAt);
        const settle = (valueDiff: string | null) => {
          verdicts[i] = valueDiff !== null ? { kind: 'value', detail: ttl ? `${valueDiff}; ${ttl}` : valueDiff } : ttl ? { kind: 'ttl', detail: ttl } : { kind: 'equal' };
        };
        const quick = this.quickValue(s, t);
        // Equal DUMP payloads include a stream's groups; equal digests do not.
        if (quick === 'equal' && (s.type !== 'stream' || s.dump !== null)) settle(null);
        else if (quick === 'equal') deferred.push(async () => settle(await compareStreamMeta(key, pair)));
        else if (quick === 'different' && !this.o.describe()) settle('value digest differs');
        else if (quick === 'different') deferred.push(async () => settle((await compareValues(s.type, key, pair)) ?? 'value digest differs (the values read equal afterwards: changed during the check?)'));
        else deferred.push(async () => settle(await compareValues(s.type, key, pair)));
      }
    }
    await runLimited(deferred, COMPARE_CONCURRENCY);
    return verdicts;
  }

  /** What the fingerprints say: equal, different, or unknown (read the values). */
  private quickValue(s: SideRead, t: SideRead): 'equal' | 'different' | 'unknown' {
    if (s.digest !== null && t.digest !== null) {
      if (s.digest === t.digest) return 'equal';
      // DIGEST-VALUE mixes in whether the key has an expiry: with only one side expiring, read the values.
      return (s.expireAt < 0) === (t.expireAt < 0) ? 'different' : 'unknown';
    }
    if (s.dump !== null && t.dump !== null) {
      if (s.dump.equals(t.dump)) return 'equal';
      if (this.fp === 'dump' && dumpVersion(s.dump) !== dumpVersion(t.dump)) {
        this.switchTo('values', `the DUMP payloads have different RDB versions (${dumpVersion(s.dump)} on source, ${dumpVersion(t.dump)} on target)`);
      }
    }
    return 'unknown';
  }

  private switchTo(fp: Fingerprint, why: string): void {
    if (this.fp === fp) return;
    this.o.logger.info({ from: this.fp, to: fp }, `values are compared by ${fp === 'values' ? 'reading them' : fp} from now on: ${why}`);
    this.fp = fp;
  }

  private compareExpiry(s: number, t: number): string | null {
    if (s === t) return null;
    if (s >= 0 && t >= 0 && this.o.expiry === 'pttl' && Math.abs(s - t) <= PTTL_TOLERANCE_MS) return null;
    const show = (at: number) => (at < 0 ? 'never' : new Date(at).toISOString());
    return `expires ${show(s)} on source, ${show(t)} on target`;
  }

  private async read(side: VerifySide, db: number, keys: Buffer[], fp: Fingerprint): Promise<SideRead[]> {
    // A cluster has no other db: its keys there are simply not there.
    if (db !== 0 && side.clusterMasters !== null) return keys.map(() => ({ type: 'none', expireAt: -1, dump: null, digest: null }));
    const expiryCmd = this.o.expiry === 'pexpiretime' ? 'PEXPIRETIME' : 'PTTL';
    const per = fp === 'dump' ? 3 : 2;
    const cmds: Arg[][] = [];
    for (const k of keys) {
      cmds.push(['TYPE', k], [expiryCmd, k]);
      // The size first: a big value is compared in ranges (values.ts), never DUMPed whole.
      if (fp === 'dump') cmds.push(['MEMORY', 'USAGE', k]);
    }
    // DIGEST-VALUE gets slower than linear with many arguments: a few keys per call, and on a
    // cluster only keys of one master per call (DEBUG is not routed: it digests what the node holds).
    const groups = fp === 'digest-value' ? side.groupByNode(keys) : null;
    if (groups === null && fp === 'digest-value') for (let i = 0; i < keys.length; i += DIGEST_KEYS) cmds.push(['DEBUG', 'DIGEST-VALUE', ...keys.slice(i, i + DIGEST_KEYS)]);
    // The key index of each digest, when the calls list the keys in another order (by node).
    const order: number[] = [];
    for (const group of groups ?? []) {
      for (let i = 0; i < group.length; i += DIGEST_KEYS) {
        const part = group.slice(i, i + DIGEST_KEYS);
        cmds.push(['DEBUG', 'DIGEST-VALUE', ...part.map((j) => keys[j]!)]);
        order.push(...part);
      }
    }
    const replies = await side.pipeline(db, cmds);
    const readAt = Date.now();
    let digests: unknown[] | null = null;
    if (fp === 'digest-value') {
      digests = [];
      for (let i = keys.length * per; i < replies.length; i++) {
        const d = replies[i];
        if (Array.isArray(d)) digests.push(...(d as unknown[]));
        else {
          this.switchTo('dump', `DEBUG DIGEST-VALUE failed on the ${side.kind} (${d instanceof ServerReply ? d.message : 'unexpected reply'})`);
          digests = null;
          break;
        }
      }
      if (digests !== null && digests.length !== keys.length) throw side.fail(new Error(`${digests.length} digests for ${keys.length} keys`), 'DEBUG DIGEST-VALUE');
      if (digests !== null && groups !== null) {
        const byKey: unknown[] = new Array(keys.length);
        order.forEach((k, i) => (byKey[k] = digests![i]));
        digests = byKey;
      }
    }
    const dumps = fp === 'dump' ? await this.smallDumps(side, db, keys, (i) => replies[i * per + 2]) : null;
    const out: SideRead[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const type = replies[i * per];
      const exp = replies[i * per + 1];
      if (type instanceof ServerReply) throw side.fail(type, `TYPE`);
      if (exp instanceof ServerReply) throw side.fail(exp, expiryCmd);
      let expireAt = Number(exp);
      let typeName = String(type);
      // -2: the key went away between TYPE and the expiry read.
      if (expireAt === -2) typeName = 'none';
      else if (expireAt >= 0 && this.o.expiry === 'pttl') expireAt += readAt;
      const dump = dumps?.[i] ?? null;
      let digest = digests !== null ? String(digests[i]) : null;
      // On a cluster, the digest of no key for a key TYPE found: it left the node in between
      // (a slot migration, or a delete). Unknown: the values are read (routed) instead.
      if (groups !== null && digest !== null && typeName !== 'none' && NO_KEY_DIGEST.test(digest)) digest = null;
      out[i] = { type: typeName, expireAt: typeName === 'none' ? -1 : expireAt, dump, digest };
    }
    return out;
  }

  /**
   * DUMP payloads of the keys whose value is small by MEMORY USAGE (`usage(i)`), in pipelines of
   * bounded size; null for a big key (compared in ranges instead: a 256 MB DUMP held on both sides
   * took a gigabyte) and for a key gone meanwhile. A side that refuses MEMORY USAGE is DUMPed as
   * before; one that refuses DUMP switches the check to reading values.
   */
  private async smallDumps(side: VerifySide, db: number, keys: Buffer[], usage: (i: number) => unknown): Promise<(Buffer | null)[]> {
    const out: (Buffer | null)[] = new Array(keys.length).fill(null);
    let batch: number[] = [];
    let bytes = 0;
    const send = async () => {
      const replies = await side.pipeline(db, batch.map((i) => ['DUMP', keys[i]!]));
      replies.forEach((d, j) => {
        if (d instanceof ServerReply) this.switchTo('values', `DUMP failed on the ${side.kind} (${d.message})`);
        else if (Buffer.isBuffer(d)) out[batch[j]!] = d;
      });
      batch = [];
      bytes = 0;
    };
    for (let i = 0; i < keys.length; i++) {
      const u = usage(i);
      const size = typeof u === 'number' ? u : u === null ? 0 : -1;
      if (size > BIG_VALUE_BYTES) continue;
      batch.push(i);
      bytes += Math.max(size, 0);
      if (bytes >= DUMP_PIPELINE_BYTES) await send();
    }
    if (batch.length > 0) await send();
    return out;
  }
}

/** The RDB version in a DUMP payload's trailer (u16le before the CRC64). */
export function dumpVersion(payload: Buffer): number {
  return payload.length >= 10 ? payload.readUInt16LE(payload.length - 10) : -1;
}

async function runLimited(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
