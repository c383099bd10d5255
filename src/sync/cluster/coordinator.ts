/**
 * ClusterSourceSync: `replicant sync` from a Redis Cluster. One SyncSession per shard (one
 * replication link each, its own checkpoint and lease, named `<name>@<shard key>`), all writing
 * into the same target (a standalone server, merging the shards into db 0, or a cluster).
 *
 * - Shard keys: the node id of the shard's master when the sync first saw it. The shard list
 *   (key → node ids) is kept on the target (`__replicant:shards:<name>`), so a restart after a
 *   failover maps the promoted master to its shard's checkpoint and resumes with PSYNC.
 * - Snapshots are staggered: at most `parallelSyncs` shards in handshake + snapshot at once, so
 *   the source cluster never forks on every master together.
 * - The --existing check is made once, for the whole target, at the first start; the shards'
 *   sessions are siblings, never "other syncs" to each other.
 * - The topology is polled: a shard whose master changed is moved at once (the link would drop
 *   anyway), a new master starts a new shard session.
 */
import { EventEmitter } from 'node:events';
import { ReplicantError, SourceError } from '../../errors.js';
import { silentLogger, type Logger } from '../../observe/logger.js';
import { ClusterSource, ShardSource, slotRangesText, type ClusterShard } from '../../replication/cluster-source.js';
import { isRetryable } from '../../replication/errors.js';
import { endpointLabel, parseRedisUrl, type SourceEndpoint } from '../../replication/url.js';
import type { UnitWriter } from '../../writer/index.js';
import { REGISTRY_KEY, parseRegistry } from '../../checkpoint/identity.js';
import type { CheckpointSpec } from '../../checkpoint/store.js';
import { reservedKey } from '../../checkpoint/reserved.js';
import { IncompleteCopyError } from '../incomplete.js';
import { MigrationGuard } from './migration-guard.js';
import { Gate } from './shard.js';
import { PartialScope } from '../relay/selection.js';
import { openTargetWriter } from '../apply/target-connections.js';
import { applyExistingPolicy, countForeignKeys } from '../ownership/existing.js';
import type { Phase } from '../phases.js';
import { SYNC_DEFAULTS, type SyncOptions } from '../options.js';
import type { SyncStatus } from '../figures.js';
import { SyncSession, type SyncEvents, type SyncResult } from '../session.js';

export interface ClusterSyncOptions extends SyncOptions {
  /** Replicate each shard from one of its replicas (its master when it has no usable replica). */
  preferReplica?: boolean;
  /** Shards in handshake + snapshot transfer at once. Default 1. */
  parallelSyncs?: number;
  /** How often the source topology is read again (failovers, shards added). Default 5 s. */
  topologyPollMs?: number;
}

export interface ShardStatus extends SyncStatus {
  shard: string;
  /** Slot ranges the shard serves now. */
  slots: string;
  /** `host:port` of the node the shard is read from now (null: none usable, e.g. during a failover). */
  node: string | null;
}

export interface ClusterSyncStatus extends SyncStatus {
  shards: ShardStatus[];
  /**
   * The slot migration guard: keys tracked now, deletions and stale writes it kept from the
   * target, and RESTOREs held until the other shards had applied what they sent before them.
   */
  migrations: { trackedKeys: number; droppedDeletes: number; droppedWrites: number; heldRestores: number };
}

/** The shard list on the target: shard key → node ids, and the first start's --existing outcome. */
const META_FIELD = '~meta';

interface Shard {
  source: ShardSource;
  session: SyncSession;
  done: Promise<void>;
  result: SyncResult | null;
  error: unknown;
}

/** Longest wait for the other shards before a snapshot is applied. */
const SETTLE_MS = 10_000;

/** Guard rounds kept while some shard does not stream. */
const MAX_ROUNDS = 1000;

/** Worst first, for the aggregated phase (/healthz is 200 only when every shard is healthy). */
const PHASE_RANK: Record<Phase, number> = { stopped: 0, stopping: 1, reconnecting: 2, connecting: 3, 'full-sync': 4, streaming: 5 };

export class ClusterSourceSync extends EventEmitter<Pick<SyncEvents, 'phase'>> {
  private readonly log: Logger;
  private readonly cluster: ClusterSource;
  private readonly name: string;
  private readonly shardsKey: string;
  private readonly gate: Gate;
  private readonly shards = new Map<string, Shard>();
  private readonly targetEp: SourceEndpoint;
  private readonly scope: PartialScope;
  private cleanStart = false;
  private stopping = false;
  private failure: unknown = null;
  private wake: (() => void) | null = null;
  private readonly guard: MigrationGuard;
  /** Guard marks with each shard's received offset when taken (see sweepGuard). */
  private rounds: { mark: number; received: Map<string, number> }[] = [];

  constructor(private readonly opts: ClusterSyncOptions) {
    super();
    this.log = opts.logger ?? silentLogger();
    const seed = parseRedisUrl(opts.source, opts.tls?.source);
    delete seed.db;
    this.cluster = new ClusterSource(seed);
    this.targetEp = parseRedisUrl(opts.target, opts.tls?.target);
    this.name = opts.name ?? endpointLabel(seed);
    this.shardsKey = reservedKey(`shards:${this.name}`);
    this.gate = new Gate(Math.max(1, opts.parallelSyncs ?? 1));
    // Bad filters are refused before anything connects.
    this.scope = new PartialScope(opts.partial);
    this.guard = new MigrationGuard({ logger: this.log });
  }

  get selection(): string | null {
    return this.scope.fingerprint === '' ? null : this.scope.fingerprint;
  }

  status(): ClusterSyncStatus {
    const shards: ShardStatus[] = [...this.shards.values()].map((s) => {
      const at = s.source.endpointNow();
      return { shard: s.source.key, slots: slotRangesText(s.source.slots()), node: at === null ? null : endpointLabel(at), ...s.session.status() };
    });
    const sum = (f: (s: SyncStatus) => number | null | undefined): number => shards.reduce((t, s) => t + (f(s) ?? 0), 0);
    const phase = this.stopping ? (shards.every((s) => s.phase === 'stopped') && shards.length > 0 ? 'stopped' : 'stopping') : shards.length === 0 ? 'connecting' : shards.map((s) => s.phase).sort((a, b) => PHASE_RANK[a] - PHASE_RANK[b])[0]!;
    const inRdb = shards.filter((s) => s.rdb !== null);
    return {
      phase,
      replid: null,
      receivedOffset: null,
      appliedOffset: null,
      lagBytes: shards.some((s) => s.lagBytes !== null) ? sum((s) => s.lagBytes) : null,
      lagMs: shards.some((s) => s.lagMs !== null) ? Math.max(...shards.map((s) => s.lagMs ?? 0)) : null,
      rdb:
        inRdb.length === 0
          ? null
          : {
              bytes: inRdb.reduce((t, s) => t + s.rdb!.bytes, 0),
              totalBytes: inRdb.every((s) => s.rdb!.totalBytes !== null) ? inRdb.reduce((t, s) => t + s.rdb!.totalBytes!, 0) : null,
              keys: inRdb.reduce((t, s) => t + s.rdb!.keys, 0),
              keysPerSec: inRdb.reduce((t, s) => t + s.rdb!.keysPerSec, 0),
            },
      opsPerSec: sum((s) => s.opsPerSec),
      commandsApplied: sum((s) => s.commandsApplied),
      errors: sum((s) => s.errors),
      fullSyncs: sum((s) => s.fullSyncs),
      partialSyncs: sum((s) => s.partialSyncs),
      lostKeys: sum((s) => s.lostKeys),
      lostKeysReport: shards.find((s) => s.lostKeysReport !== null)?.lostKeysReport ?? null,
      skippedCommands: sum((s) => s.skippedCommands),
      complete: shards.every((s) => s.complete),
      shards,
      migrations: { trackedKeys: this.guard.size, droppedDeletes: this.guard.droppedDeletes, droppedWrites: this.guard.droppedWrites, heldRestores: this.guard.order.held },
    };
  }

  /** Stops every shard gracefully; run() then resolves (or rejects with the worst shard's error). */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const s of this.shards.values()) s.session.stop();
    this.wake?.();
  }

  /** Runs until stop(), a shard's unrecoverable error, or (--exit-after-full-sync) every shard's snapshot. */
  async run(): Promise<SyncResult> {
    const shards = await this.discover();
    const control = await this.connectTarget();
    try {
      const known = await this.readShardList(control);
      const firstStart = known === null || this.opts.checkpoint?.kind === 'none';
      if (firstStart) {
        this.cleanStart = await this.checkExisting(control);
      } else {
        this.cleanStart = known.cleanStart;
      }
      const entries = known?.shards ?? new Map<string, string[]>();
      // Stopped while discovering: no shard is started.
      if (this.stopping) return this.finish();
      for (const s of shards) this.addShard(this.sourceFor(s, entries));
      await this.saveShardList(control);
      this.log.info({ sync: this.name, shards: [...this.shards.values()].map((s) => ({ shard: s.source.key, slots: slotRangesText(s.source.slots()) })), parallelSyncs: this.opts.parallelSyncs ?? 1, preferReplica: this.opts.preferReplica ?? false }, 'cluster source: one sync per shard');
      await this.follow(control);
    } finally {
      control.destroy();
    }
    return this.finish();
  }

  /** The first topology read, retried until --connect-timeout. */
  private async discover(): Promise<ClusterShard[]> {
    const deadline = Date.now() + (this.opts.connectTimeoutMs ?? 30_000);
    for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
      try {
        const shards = await this.cluster.refresh();
        if (shards.length === 0) throw new SourceError(`the cluster source ${endpointLabel(this.cluster.seed)} has no usable master`);
        return shards;
      } catch (e) {
        if (!isRetryable(e) || Date.now() + delay > deadline || this.stopping) {
          throw e instanceof ReplicantError ? e : new SourceError(`cluster source ${endpointLabel(this.cluster.seed)}: ${(e as Error).message}`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private connectTarget(): Promise<UnitWriter> {
    return openTargetWriter(this.targetEp, { onError: 'fail', logger: this.log });
  }

  private async readShardList(w: UnitWriter): Promise<{ cleanStart: boolean; shards: Map<string, string[]> } | null> {
    const reply = (await w.call(['HGETALL', this.shardsKey])) as unknown[];
    if (!Array.isArray(reply) || reply.length === 0) return null;
    const shards = new Map<string, string[]>();
    let cleanStart = false;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const field = String(reply[i]);
      try {
        const v = JSON.parse(String(reply[i + 1])) as { nodes?: unknown; cleanStart?: unknown };
        if (field === META_FIELD) cleanStart = v.cleanStart === true;
        else if (Array.isArray(v.nodes)) shards.set(field, v.nodes.map(String));
      } catch {
        this.log.warn({ key: this.shardsKey, field }, 'unreadable entry in the shard list on the target: ignored');
      }
    }
    return { cleanStart, shards };
  }

  private async saveShardList(w: UnitWriter): Promise<void> {
    const args: string[] = ['HSET', this.shardsKey, META_FIELD, JSON.stringify({ cleanStart: this.cleanStart })];
    for (const s of this.shards.values()) args.push(s.source.key, JSON.stringify({ nodes: s.source.nodeIds }));
    await w.call(args);
  }

  /** The tracked shard for `s`: the known entry sharing a node with it, or a new one keyed by its master. */
  private sourceFor(s: ClusterShard, known: Map<string, string[]>): ShardSource {
    const ids = [s.master.id, ...s.replicas.map((r) => r.id)];
    let key = s.master.id;
    let nodes: string[] = ids;
    let best = 0;
    for (const [k, list] of known) {
      // A known shard already matched by another current one (nodes moved between shards) is not taken twice.
      if (this.shards.has(k)) continue;
      const score = (list.includes(s.master.id) ? 1000 : 0) + ids.filter((id) => list.includes(id)).length;
      if (score > best) [best, key, nodes] = [score, k, [...new Set([...list, ...ids])]];
    }
    if (this.shards.has(key)) key = `${key}-${Date.now().toString(36)}`;
    return new ShardSource(key, nodes, this.cluster, this.opts.preferReplica ?? false);
  }

  /**
   * At the first start: does the target hold keys that are not Replicant's? Applies --existing
   * once for every shard (the shards' sessions then skip their own check). Returns cleanStart.
   */
  private async checkExisting(w: UnitWriter): Promise<boolean> {
    const { foreign } = await countForeignKeys(w, 0, w.info.cluster);
    const others = foreign > 0 && this.opts.existing === 'flush' ? [...parseRegistry(await w.call(['HGETALL', REGISTRY_KEY])).keys()].filter((id) => !id.startsWith(`${this.name}@`)) : [];
    return applyExistingPolicy({
      policy: this.opts.existing ?? SYNC_DEFAULTS.existing,
      foreign,
      others,
      where: `target ${endpointLabel(this.targetEp)}`,
      log: this.log,
      flush: async () => void (await w.call(['FLUSHALL'])),
    });
  }

  private shardCheckpoint(key: string): CheckpointSpec | undefined {
    const cp = this.opts.checkpoint;
    if (cp === undefined || cp.kind === 'none') return cp;
    if (cp.kind === 'file') return { kind: 'file', path: `${cp.path}.${key}` };
    return cp.key === undefined ? cp : { ...cp, key: `${cp.key}@${key}` };
  }

  private addShard(source: ShardSource): void {
    const key = source.key;
    const prefix = `${this.name}@`;
    const session = new SyncSession({
      ...this.opts,
      name: `${this.name}@${key}`,
      checkpoint: this.shardCheckpoint(key),
      ...(this.opts.report === undefined ? {} : { report: `${this.opts.report}.${key}` }),
      logger: this.log.child({ shard: key }),
      shard: {
        source,
        isSibling: (id) => id.startsWith(prefix),
        cleanStart: this.cleanStart,
        gate: () => this.gate.acquire(),
        guard: this.guard,
        othersSettled: () => this.othersSettled(key),
      },
    });
    session.on('phase', (phase, info) => this.emit('phase', phase, { ...info, shard: key }));
    // The guard holds a migrated key's RESTORE until the other shards applied what they sent before it.
    session.on('applied', (offset) => this.guard.order.applied(key, offset));
    const shard: Shard = { source, session, result: null, error: null, done: Promise.resolve() };
    shard.done = session.run().then(
      (r) => {
        shard.result = r;
      },
      (e: unknown) => {
        shard.error = e;
        // One shard failing stops them all (the first failure is the one reported).
        if (!(e instanceof IncompleteCopyError) && this.failure === null) {
          this.failure = e;
          this.log.error({ shard: key, err: (e as Error).message }, 'a shard failed: stopping every shard');
          this.stop();
        }
      },
    ).finally(() => this.wake?.());
    this.shards.set(key, shard);
  }

  /** Polls the topology until every shard's session has ended. */
  private async follow(control: UnitWriter): Promise<void> {
    const period = this.opts.topologyPollMs ?? 5000;
    for (;;) {
      const running = [...this.shards.values()].map((s) => s.done);
      const ended = Promise.all(running).then(() => true);
      const tick = new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), period);
        this.wake = () => {
          clearTimeout(t);
          resolve(false);
        };
      });
      if (await Promise.race([ended, tick])) {
        // A shard added while the others ended is waited for too.
        if ([...this.shards.values()].every((s) => s.result !== null || s.error !== null)) return;
        continue;
      }
      this.wake = null;
      if (this.stopping) {
        await Promise.all([...this.shards.values()].map((s) => s.done));
        return;
      }
      if (this.opts.exitAfterFullSync) continue;
      this.sweepGuard();
      await this.pollTopology(control).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'cannot read the cluster source topology; trying again later'));
    }
  }

  private async pollTopology(control: UnitWriter): Promise<void> {
    const shards = await this.cluster.refresh();
    let changed = false;
    for (const s of this.shards.values()) {
      if (s.source.track()) changed = true;
      const to = s.source.endpointNow();
      if (to !== null) s.session.sourceMoved(to);
    }
    for (const c of shards) {
      const nodes = [c.master.id, ...c.replicas.map((r) => r.id)];
      const tracked = [...this.shards.values()].some((s) => s.source.nodeIds.some((id) => nodes.includes(id)));
      if (tracked || this.stopping) continue;
      const source = new ShardSource(c.master.id, nodes, this.cluster, this.opts.preferReplica ?? false);
      this.log.warn({ shard: source.key, address: endpointLabel(this.cluster.endpointOf(c.master)), slots: slotRangesText(c.master.slots) }, 'a shard was added to the cluster source: syncing it too');
      this.addShard(source);
      changed = true;
    }
    if (changed) await this.saveShardList(control);
  }

  /**
   * Waits (at most SETTLE_MS) until every other streaming shard has applied what it had received
   * when called: a shard's snapshot is applied after the migration DELs that preceded its fork.
   * Woken by the shards' `applied` and `phase` events, not by polling.
   */
  private async othersSettled(self: string): Promise<void> {
    const want = new Map<string, number>();
    for (const s of this.shards.values()) {
      const p = s.session.progress();
      if (s.source.key !== self && p.streaming && p.received !== null) want.set(s.source.key, p.received);
    }
    const behind = () =>
      [...want].filter(([k, offset]) => {
        const p = this.shards.get(k)!.session.progress();
        return p.streaming && (p.applied ?? 0) < offset;
      });
    if (behind().length === 0) return;
    const sessions = [...want.keys()].map((k) => this.shards.get(k)!.session);
    let timer: NodeJS.Timeout | undefined;
    let check = (): void => undefined;
    const settled = new Promise<boolean>((resolve) => {
      check = () => {
        if (behind().length === 0 || this.stopping) resolve(true);
      };
      timer = setTimeout(() => resolve(false), SETTLE_MS);
    });
    for (const session of sessions) session.on('applied', check).on('phase', check);
    try {
      if (!(await settled)) this.log.warn({ shard: self, behind: behind().map(([k]) => k) }, "other shards are slow to apply their stream: copying this shard's snapshot without waiting longer");
    } finally {
      clearTimeout(timer);
      for (const session of sessions) session.off('applied', check).off('phase', check);
    }
  }

  /**
   * Releases the guard's entries no migration DEL can still pair with. Each round records a mark
   * and every shard's received offset; once every shard has applied what it had received at round
   * k, a DEL issued by the source before round k-1 was marked has been applied, so the entries
   * tracked before that mark are released (a whole round of margin for a DEL still in flight).
   */
  private sweepGuard(): void {
    const shards = [...this.shards.values()];
    const received = new Map<string, number>();
    for (const s of shards) {
      const p = s.session.progress();
      if (p.received !== null) received.set(s.source.key, p.received);
    }
    this.rounds.push({ mark: this.guard.mark(), received });
    // While a shard is down no round completes: keep the latest ones (dropping old marks only delays sweeps).
    if (this.rounds.length > MAX_ROUNDS) this.rounds.shift();
    let done = -1;
    for (const [i, r] of this.rounds.entries()) {
      const applied = shards.every((s) => {
        const p = s.session.progress();
        const want = r.received.get(s.source.key);
        return p.streaming && p.applied !== null && want !== undefined && p.applied >= want;
      });
      if (applied) done = i;
    }
    if (done < 1) return;
    const released = this.guard.sweep(this.rounds[done - 1]!.mark);
    if (released > 0) this.log.debug({ released, tracked: this.guard.size }, 'migration guard: released keys no DEL can still arrive for');
    this.rounds = this.rounds.slice(done);
  }

  /** The outcome once every shard ended: the first failure, else an incomplete copy (exit 9), else the results. */
  private finish(): SyncResult {
    const all = [...this.shards.values()];
    if (this.failure !== null) throw this.failure;
    const incomplete = all.find((s) => s.error instanceof IncompleteCopyError);
    if (incomplete !== undefined) throw incomplete.error;
    return { appliedOffset: null, replid: null, status: this.status() };
  }
}
