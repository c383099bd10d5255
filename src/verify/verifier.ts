/**
 * `replicant verify`: does the target hold what the source holds?
 *
 *  1. Fast path: when both sides allow DEBUG, no db/key filter is given and the target has no
 *     checkpoint key, compare DEBUG DIGEST of the whole datasets (values and expiries, every
 *     db). Equal digests settle everything but stream groups, which are then checked per stream.
 *  2. Otherwise key by key: SCAN each source db that holds keys (INFO keyspace) and classify
 *     each batch (KeyChecker), then SCAN the target for keys the source does not have.
 *
 * A Redis Cluster side (VerifySide.open finds it) is read through all its masters; then only the
 * key-by-key pass runs (each node's DEBUG DIGEST covers its own keys only), and its db 0 is its
 * only db.
 *
 * `__replicant*` keys are Replicant's own and never compared. With `settleMs` > 0 a key found
 * different is checked again that long after, so replication lag on a live pair is not
 * reported as a difference; the queue holds only the keys found in the last `settleMs`.
 */
import { isOwnKey } from '../checkpoint/reserved.js';
import { LEGACY_CHECKPOINT_KEY, REGISTRY_KEY } from '../checkpoint/identity.js';
import { UsageError } from '../errors.js';
import { silentLogger, type Logger } from '../observe/logger.js';
import { RateMeter } from '../observe/progress.js';
import type { TlsSettings } from '../net/tls.js';
import { parseSourceUrl, resolveSource } from '../replication/source.js';
import { parseRedisUrl, type SourceEndpoint } from '../replication/url.js';
import { probeSide, type SideCapabilities } from './capabilities.js';
import { KeyChecker } from './check.js';
import type { SidePair } from './pair.js';
import { differenceCount, emptySummary, type Difference, type Verdict, type VerifyReport, type VerifySummary } from './report.js';
import { Sampler, describeSample, type SampleSpec } from './sample.js';
import { ServerReply, VerifySide } from './side.js';
import { compareStreamMeta } from './stream-meta.js';
import { PartialScope, type PartialSyncSpec } from '../sync/relay/selection.js';
import type { ValueType } from '../rdb/types.js';
import { VALUE_TYPES } from '../export/key-filter.js';

export interface VerifyOptions {
  /** `redis[s]://...` or `sentinel[s]://...`. */
  source: string;
  /** `redis[s]://...`. */
  target: string;
  /** TLS settings of a TLS source / target (default: system CAs). */
  tls?: { source?: TlsSettings; target?: TlsSettings };
  /** Only these databases (default: every db holding keys on either side, or the URL's db). */
  dbs?: number[];
  /** Only keys matching this Redis glob (SCAN MATCH). */
  keyPattern?: string;
  /**
   * A partial sync's selection (its `dbs` aside, given above): only the keys it keeps are
   * compared, each with its target name and db (--rename-prefix, --db-map).
   */
  partial?: PartialSyncSpec;
  sample?: SampleSpec | null;
  /** Examples kept in the report (default 20). */
  maxDiffs?: number;
  /** Re-check a differing key this long after (default 0: no recheck). */
  settleMs?: number;
  /** Try the whole-dataset DEBUG DIGEST first (default true). */
  useDigest?: boolean;
  /** ...but only when each side holds at most this many keys: it blocks the server while it runs (default 1,000,000). */
  digestMaxKeys?: number;
  /** SCAN COUNT, and keys per checked batch (default 500). */
  batchSize?: number;
  /** Stops the verify at the next SCAN page (run() rejects with the signal's reason). */
  signal?: AbortSignal;
  logger?: Logger;
}

export interface VerifyStatus {
  phase: string;
  /** Keys listed by SCAN (after filters), both scans. */
  scanned: number;
  compared: number;
  differences: number;
  keysPerSec: number;
  rechecksPending: number;
}


/** Batches being checked at the same time during a scan. */
const BATCHES_IN_FLIGHT = 3;

interface Recheck {
  db: number;
  key: Buffer;
  due: number;
}

export class Verifier {
  private readonly log: Logger;
  private readonly maxDiffs: number;
  private readonly settleMs: number;
  private readonly batchSize: number;
  private summary: VerifySummary = emptySummary();
  private differences: Difference[] = [];
  private readonly rechecks: Recheck[] = [];
  private phase = 'connecting';
  private scanned = 0;
  private readonly rate = new RateMeter();
  private readonly scope: PartialScope;
  /** SCAN MATCH on the source, and on the target (where names may be renamed). */
  private readonly sourceMatch: string | undefined;
  private readonly targetMatch: string | undefined;
  /** The selection named in the report (--db alone is shown as the dbs compared). */
  private readonly selection: string | null;

  constructor(private readonly opts: VerifyOptions) {
    this.log = opts.logger ?? silentLogger();
    this.maxDiffs = opts.maxDiffs ?? 20;
    this.settleMs = opts.settleMs ?? 0;
    this.scope = new PartialScope({ ...opts.partial, dbs: opts.dbs ?? [] });
    const globs = opts.partial?.keys ?? [];
    const onlyGlob = globs.length === 1 && (opts.partial?.prefixes ?? []).length === 0 ? globs[0]!.toString() : undefined;
    this.sourceMatch = opts.keyPattern ?? onlyGlob;
    this.targetMatch = this.scope.renames ? undefined : this.sourceMatch;
    const p = opts.partial ?? {};
    const named = [p.keys, p.prefixes, p.excludes, p.types].some((a) => a !== undefined && a.length > 0) || p.renamePrefix !== undefined || (p.dbMap !== undefined && p.dbMap.size > 0);
    this.selection = named ? this.scope.fingerprint : null;
    this.batchSize = opts.batchSize ?? 500;
    if (!Number.isSafeInteger(this.maxDiffs) || this.maxDiffs < 0) throw new UsageError(`--max-diffs: expected a non-negative integer, got ${this.maxDiffs}`);
    if (!Number.isSafeInteger(this.batchSize) || this.batchSize < 1) throw new UsageError(`--batch: expected a positive integer, got ${this.batchSize}`);
    if (!(this.settleMs >= 0)) throw new UsageError(`--settle: expected a duration >= 0, got ${this.settleMs}`);
    for (const db of opts.dbs ?? []) if (!Number.isSafeInteger(db) || db < 0) throw new UsageError(`--db: expected database numbers, got ${db}`);
  }

  status(): VerifyStatus {
    this.rate.mark(this.scanned);
    return {
      phase: this.phase,
      scanned: this.scanned,
      compared: this.summary.compared,
      differences: differenceCount(this.summary),
      keysPerSec: this.rate.rate(),
      rechecksPending: this.rechecks.length,
    };
  }

  async run(): Promise<VerifyReport> {
    const started = Date.now();
    const sourceSpec = parseSourceUrl(this.opts.source, this.opts.tls?.source);
    const targetEndpoint = parseRedisUrl(this.opts.target, this.opts.tls?.target);
    const dbFilter = this.dbFilter(sourceSpec.kind === 'direct' ? sourceSpec.endpoint : undefined, targetEndpoint);
    const source = new VerifySide('source', await resolveSource(sourceSpec, this.log), this.log);
    const target = new VerifySide('target', targetEndpoint, this.log);
    try {
      // One after the other, so a dead source is reported as such even when the target is dead too.
      await source.open();
      await target.open();
      const [sc, tc] = await Promise.all([probeSide(source), probeSide(target)]);
      this.log.debug({ source: { ...sc, keyspace: [...sc.keyspace] }, target: { ...tc, keyspace: [...tc.keyspace] } }, 'capabilities');
      const checker = new KeyChecker({
        source,
        target,
        fingerprint: sc.debug && tc.debug ? 'digest-value' : 'dump',
        expiry: sc.pexpiretime && tc.pexpiretime ? 'pexpiretime' : 'pttl',
        describe: () => this.differences.length < this.maxDiffs,
        logger: this.log,
        targetDb: (db) => this.scope.targetDb(db),
        ...(this.scope.renames ? { targetKey: (k: Buffer) => this.scope.rename(k) } : {}),
        ...(this.scope.types === null ? {} : { keepsType: (t: string) => this.scope.keepsType(typeOfReply(t)) }),
      });
      const sourceDbs = selectDbs(sc.keyspace, dbFilter);
      // Target dbs by the source db they hold (--db-map), each scanned for keys the source lacks.
      const targetDbs = [...tc.keyspace.keys()]
        .map((t) => this.scope.sourceDb(t))
        .filter((d): d is number => d !== null && (dbFilter === null || dbFilter.includes(d)))
        .sort((a, b) => a - b);
      const report = (method: 'digest' | 'keys'): VerifyReport => ({
        equal: differenceCount(this.summary) === 0,
        method,
        fingerprint: method === 'digest' ? null : checker.fingerprint,
        expiry: sc.pexpiretime && tc.pexpiretime ? 'pexpiretime' : 'pttl',
        source: { address: source.label, version: sc.version, debug: sc.debug, masters: source.clusterMasters?.length ?? null },
        target: { address: target.label, version: tc.version, debug: tc.debug, masters: target.clusterMasters?.length ?? null },
        dbs: dbFilter ?? [...new Set([...sourceDbs, ...targetDbs])].sort((a, b) => a - b),
        keyPattern: this.sourceMatch ?? null,
        selection: this.selection,
        sample: this.opts.sample ? describeSample(this.opts.sample) : null,
        settleMs: this.settleMs,
        summary: this.summary,
        differences: this.differences,
        durationMs: Date.now() - started,
        notes: clusterNotes(source, target, sourceDbs, targetDbs, (d) => this.scope.targetDb(d)),
      });

      const clusters = source.clusterMasters !== null || target.clusterMasters !== null;
      // A cluster's DEBUG DIGEST covers one node: the fast path would need the same slot layout on both sides.
      if (clusters && this.opts.useDigest !== false) this.log.info('a side is a cluster: comparing key by key (no whole-dataset DEBUG DIGEST)');
      const digestUsable = !clusters && this.opts.useDigest !== false && dbFilter === null && this.opts.keyPattern === undefined && this.scope.identity && sc.debug && tc.debug;
      const biggest = Math.max(...[sc, tc].map((c) => [...c.keyspace.values()].reduce((a, b) => a + b, 0)));
      const digestMax = this.opts.digestMaxKeys ?? 1_000_000;
      if (digestUsable && biggest > digestMax) {
        this.log.info({ keys: biggest, digestMaxKeys: digestMax }, 'too many keys to block the servers for DEBUG DIGEST: comparing key by key');
      } else if (digestUsable && (await this.digestsMatch(source, target, sc, checker))) {
        this.phase = 'done';
        return report('digest');
      }
      // One sampler per side over all its dbs: --sample n means n keys in all. With --key the
      // number of matching keys is unknown: then the first n that match.
      const filtered = this.opts.keyPattern !== undefined || this.scope.keysLeftOut;
      const keysIn = (ks: Map<number, number>, dbs: number[]) => (filtered ? 0 : dbs.reduce((n, db) => n + (ks.get(db) ?? 0), 0));
      const sourceSampler = new Sampler(this.opts.sample ?? null, keysIn(sc.keyspace, sourceDbs));
      const targetSampler = new Sampler(this.opts.sample ?? null, keysIn(tc.keyspace, targetDbs.map((d) => this.scope.targetDb(d))));
      for (const db of sourceDbs) if (!sourceSampler.done) await this.scanSource(db, source, checker, sourceSampler);
      for (const db of targetDbs) if (!targetSampler.done) await this.scanTarget(db, source, target, checker, targetSampler);
      this.phase = 'settling';
      await this.processRechecks(checker, true);
      this.phase = 'done';
      return report('keys');
    } finally {
      source.close();
      target.close();
    }
  }

  /** --db, else a db named in the URLs (they must agree), else null (every db). */
  private dbFilter(source: SourceEndpoint | undefined, target: SourceEndpoint): number[] | null {
    if (this.opts.dbs && this.opts.dbs.length > 0) return [...new Set(this.opts.dbs)].sort((a, b) => a - b);
    const s = (source as { db?: number } | undefined)?.db;
    const t = (target as { db?: number }).db;
    if (s !== undefined && t !== undefined && s !== t) throw new UsageError(`the source URL names db ${s} and the target URL db ${t}: verify compares a db with the same db; use --db`);
    const db = s ?? t;
    return db === undefined ? null : [db];
  }

  /**
   * The fast path. True when the whole datasets are equal (stream groups included); false
   * when it does not apply or the digests differ (then the key-by-key pass finds the keys).
   */
  private async digestsMatch(source: VerifySide, target: VerifySide, sc: SideCapabilities, checker: KeyChecker): Promise<boolean> {
    // Replicant's keys (registry, checkpoints) are in the target's digest but never on the source: skip a sure miss.
    for (const key of [REGISTRY_KEY, LEGACY_CHECKPOINT_KEY]) {
      if ((await target.call(0, ['EXISTS', key]).catch(rethrowUnlessReply)) === 1) {
        this.log.info('the target holds Replicant checkpoint keys: comparing key by key instead of DEBUG DIGEST');
        return false;
      }
    }
    this.phase = 'digest';
    const [sd, td] = await Promise.all([source.tryCall(0, ['DEBUG', 'DIGEST']), target.tryCall(0, ['DEBUG', 'DIGEST'])]);
    if (sd instanceof ServerReply || td instanceof ServerReply) return false;
    if (String(sd) !== String(td)) {
      this.log.info({ source: String(sd), target: String(td) }, 'DEBUG DIGEST differs: comparing key by key');
      return false;
    }
    // The digests skip consumer groups: compare each stream's metadata.
    let streams = 0;
    for (const [db] of [...sc.keyspace].sort((a, b) => a[0] - b[0])) {
      this.phase = `streams db ${db}`;
      const pair: SidePair = { source, target, db, targetDb: db };
      let cursor = '0';
      do {
        const reply = await source.tryCall(db, ['SCAN', cursor, 'COUNT', this.batchSize, 'TYPE', 'stream']);
        if (reply instanceof ServerReply) {
          this.log.info(`SCAN TYPE failed on the source (${reply.message}): comparing key by key`);
          this.summary = emptySummary();
          this.differences = [];
          this.rechecks.length = 0;
          this.scanned = 0;
          return false;
        }
        const [next, keys] = reply as [Buffer, Buffer[]];
        cursor = next.toString();
        for (const key of keys) {
          if (isOwnKey(key)) continue;
          streams++;
          const diff = await compareStreamMeta(key, pair);
          this.record(db, key, diff === null ? { kind: 'equal' } : { kind: 'value', detail: diff }, false);
        }
        await this.processRechecks(checker, false);
      } while (cursor !== '0');
    }
    await this.processRechecks(checker, true);
    const total = [...sc.keyspace.values()].reduce((a, b) => a + b, 0);
    const rest = Math.max(0, total - streams);
    this.summary.compared += rest;
    this.summary.equal += rest;
    this.scanned += rest;
    return true;
  }

  /**
   * SCAN one side's db and hand the keys on in batches of `batchSize`; the next page is
   * requested while the current one is checked, and up to BATCHES_IN_FLIGHT batches are
   * checked at once so neither server waits for the other or for us.
   */
  private async scanPages(side: VerifySide, db: number, sampler: Sampler, onBatch: (keys: Buffer[]) => Promise<void>): Promise<void> {
    const isSource = side.kind === 'source';
    // Keys are handed on under their source names; those outside the selection are not keys of the copy.
    const toSource = isSource ? (k: Buffer) => (this.scope.keepsKey(k) ? k : null) : (k: Buffer) => this.scope.sourceName(k);
    const match = isSource ? this.sourceMatch : this.targetMatch;
    const extra = [...(match !== undefined ? ['MATCH', match] : []), 'COUNT', this.batchSize];
    const page = (cursor: string): Promise<[string, Buffer[]]> => side.scanPage(db, cursor, extra);
    const inFlight: Promise<void>[] = [];
    const submit = async (keys: Buffer[]) => {
      const p = onBatch(keys);
      p.catch(() => {}); // awaited below, in order; this only keeps a later failure from being "unhandled"
      inFlight.push(p);
      while (inFlight.length >= BATCHES_IN_FLIGHT) await inFlight.shift();
    };
    let batch: Buffer[] = [];
    let pending = page('0');
    for (;;) {
      const [next, keys] = await pending;
      this.opts.signal?.throwIfAborted();
      const more = next !== '0';
      if (more) {
        pending = page(next);
        pending.catch(() => {}); // awaited on the next turn; only a page we abandon goes unobserved
      }
      for (const raw of keys) {
        // Replicant's own keys are not data; user keys under the prefix are compared (and found missing).
        if (isOwnKey(raw)) {
          this.summary.reserved++;
          continue;
        }
        const k = toSource(raw);
        if (k === null) continue;
        if (!sampler.take()) continue;
        this.scanned++;
        batch.push(k);
        if (batch.length >= this.batchSize) {
          await submit(batch);
          batch = [];
        }
      }
      if (!more || sampler.done) break;
    }
    if (batch.length > 0) await submit(batch);
    for (const p of inFlight.splice(0)) await p;
  }

  private async scanSource(db: number, source: VerifySide, checker: KeyChecker, sampler: Sampler): Promise<void> {
    this.phase = `source db ${db}`;
    await this.scanPages(source, db, sampler, async (keys) => {
      const verdicts = await checker.check(db, keys);
      for (let i = 0; i < keys.length; i++) {
        // Gone from the source since SCAN listed it but still on the target: the target scan
        // reports it (counting it here too would count it twice).
        if (verdicts[i]!.kind !== 'extra') this.record(db, keys[i]!, verdicts[i]!, false);
      }
      await this.processRechecks(checker, false);
    });
  }

  /** Keys on the target that the source does not have. */
  private async scanTarget(db: number, source: VerifySide, target: VerifySide, checker: KeyChecker, sampler: Sampler): Promise<void> {
    const tdb = this.scope.targetDb(db);
    this.phase = `target db ${tdb}`;
    // `keys` come under their source names (db: the source db they belong to).
    await this.scanPages(target, tdb, sampler, async (keys) => {
      // Usually every key is on the source: one EXISTS for the batch says so.
      if ((await source.existsCount(db, keys)) === keys.length) {
        await this.processRechecks(checker, false);
        return;
      }
      // A cluster source has no db but 0: none of these keys is there.
      const exists = db !== 0 && source.clusterMasters !== null ? keys.map(() => 0) : await source.pipeline(db, keys.map((k) => ['EXISTS', k]));
      const candidates = keys.filter((_, i) => {
        if (exists[i] instanceof ServerReply) throw source.fail(exists[i], 'EXISTS');
        return exists[i] === 0;
      });
      // A full check tells the type; a key the source created meanwhile was not in the
      // source scan and is left to the next verify.
      const verdicts = await checker.check(db, candidates);
      for (let i = 0; i < candidates.length; i++) {
        const v = verdicts[i]!;
        if (v.kind === 'extra') this.record(db, candidates[i]!, v, false);
        else this.log.debug({ db, key: candidates[i]!.toString('latin1'), verdict: v.kind }, 'a target-only key changed during the check');
      }
      await this.processRechecks(checker, false);
    });
  }

  private record(db: number, key: Buffer, v: Verdict, recheck: boolean): void {
    const s = this.summary;
    if (v.kind === 'equal') {
      s.compared++;
      s.equal++;
      if (recheck) s.settled++;
      return;
    }
    if (v.kind === 'outside') {
      s.otherTypes++;
      return;
    }
    if (v.kind === 'absent') {
      s.vanished++;
      if (recheck) s.settled++;
      return;
    }
    if (this.settleMs > 0 && !recheck) {
      this.rechecks.push({ db, key, due: Date.now() + this.settleMs });
      return;
    }
    s[v.kind]++;
    if (v.kind !== 'extra') s.compared++;
    if (this.differences.length < this.maxDiffs) this.differences.push({ db, key, kind: v.kind, detail: v.detail });
  }

  /** Re-check the keys whose settle time has come; with `all`, wait for every queued one. */
  private async processRechecks(checker: KeyChecker, all: boolean): Promise<void> {
    while (this.rechecks.length > 0) {
      const wait = this.rechecks[0]!.due - Date.now();
      if (wait > 0) {
        if (!all) return;
        await new Promise((r) => setTimeout(r, wait));
      }
      const now = Date.now();
      let n = 0;
      while (n < this.rechecks.length && n < this.batchSize && this.rechecks[n]!.due <= now) n++;
      const due = this.rechecks.splice(0, n);
      const byDb = new Map<number, Buffer[]>();
      for (const r of due) {
        const list = byDb.get(r.db) ?? [];
        list.push(r.key);
        byDb.set(r.db, list);
      }
      for (const [db, keys] of byDb) {
        const verdicts = await checker.check(db, keys);
        for (let i = 0; i < keys.length; i++) this.record(db, keys[i]!, verdicts[i]!, true);
      }
    }
  }
}

function selectDbs(keyspace: Map<number, number>, filter: number[] | null): number[] {
  return [...keyspace.keys()].filter((db) => filter === null || filter.includes(db)).sort((a, b) => a - b);
}

function rethrowUnlessReply(e: unknown): unknown {
  if (e instanceof ServerReply) return e;
  throw e;
}

/**
 * A cluster holds db 0 only: what that means for the dbs the other side uses, said in the report
 * (those keys are counted as differences, as they are: the copy cannot hold them there).
 */
function clusterNotes(source: VerifySide, target: VerifySide, sourceDbs: number[], targetDbs: number[], targetDb: (db: number) => number): string[] {
  const notes: string[] = [];
  const list = (dbs: number[]) => `${dbs.length === 1 ? 'db' : 'dbs'} ${dbs.join(',')}`;
  if (target.clusterMasters !== null) {
    const lost = sourceDbs.filter((d) => targetDb(d) !== 0);
    if (lost.length > 0) notes.push(`the target is a cluster (db 0 only): the keys of source ${list(lost)} count as missing`);
  }
  if (source.clusterMasters !== null) {
    const extra = targetDbs.filter((d) => d !== 0);
    if (extra.length > 0) notes.push(`the source is a cluster (db 0 only): the keys the target holds for source ${list(extra)} count as extra`);
  }
  return notes;
}

/** A TYPE reply as a value type: a module's own type name counts as `module`. */
function typeOfReply(t: string): ValueType {
  return (VALUE_TYPES as readonly string[]).includes(t) ? (t as ValueType) : 'module';
}
