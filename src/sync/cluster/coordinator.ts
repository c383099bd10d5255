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
 * - Several processes started with the same source, target and --name share the shards
 *   (sharing.ts): each runs the sessions of the shards whose lease it claimed, up to its share of
 *   the live processes; one that stops hands its shards over at a checkpoint, one that dies has
 *   them taken over when their leases expire. Alone, a process runs every shard.
 */
import { EventEmitter } from 'node:events';
import { ReplicantError, SourceError, UsageError } from '../../errors.js';
import { silentLogger, type Logger } from '../../observe/logger.js';
import { ClusterSource, ShardSource, slotRangesText, type ClusterShard } from '../../replication/cluster-source.js';
import { isRetryable } from '../../replication/errors.js';
import { endpointLabel, parseRedisUrl, type SourceEndpoint } from '../../replication/url.js';
import type { UnitWriter } from '../../writer/index.js';
import { REGISTRY_KEY, parseRegistry, syncIdentity } from '../../checkpoint/identity.js';
import type { CheckpointSpec } from '../../checkpoint/store.js';
import { LeaseError, type NodeCall, type SyncLease } from '../../checkpoint/lease.js';
import { IncompleteCopyError } from '../incomplete.js';
import { MigrationGuard } from './migration-guard.js';
import { Gate } from './shard.js';
import { ShardList, shardSourceFor } from './shard-list.js';
import { ShardSharing, type SharingStatus } from './sharing.js';
import { RemoteOrder, type RemoteShard } from './remote-order.js';
import { GuardSweep } from './guard-sweep.js';
import { shardFigures, worstPhase, type ClusterSyncStatus, type ShardStatus } from './cluster-status.js';
import { PartialScope } from '../relay/selection.js';
import { openTargetWriter } from '../apply/target-connections.js';
import { applyExistingPolicy, countForeignKeys } from '../ownership/existing.js';
import type { Phase } from '../phases.js';
import { SYNC_DEFAULTS, type SyncOptions } from '../options.js';
import { SyncSession, type SyncEvents, type SyncResult } from '../session.js';

export interface ClusterSyncOptions extends SyncOptions {
  /** Replicate each shard from one of its replicas (its master when it has no usable replica). */
  preferReplica?: boolean;
  /** Shards in handshake + snapshot transfer at once. Default 1. */
  parallelSyncs?: number;
  /** How often the source topology is read again (failovers, shards added). Default 5 s. */
  topologyPollMs?: number;
  /** Most shards this process holds when several processes share the sync (default: no cap). */
  maxShards?: number;
  /** How often this process looks for shards to claim or give back. Default 1 s. */
  claimEveryMs?: number;
}

export type { ClusterSyncStatus, ShardStatus } from './cluster-status.js';

/** A shard whose session runs in this process. */
interface Shard {
  source: ShardSource;
  session: SyncSession;
  done: Promise<void>;
  result: SyncResult | null;
  error: unknown;
  /** Being stopped to hand it to another process: its end is not the sync's. */
  giving: boolean;
}

/** Longest wait for the other shards before a snapshot is applied. */
const SETTLE_MS = 10_000;


export class ClusterSourceSync extends EventEmitter<Pick<SyncEvents, 'phase'>> {
  private readonly log: Logger;
  private readonly cluster: ClusterSource;
  private readonly name: string;
  private readonly list: ShardList;
  private readonly gate: Gate;
  /** Every shard of the source cluster, by key. */
  private readonly known = new Map<string, ShardSource>();
  /** The shards whose session runs in this process. */
  private readonly shards = new Map<string, Shard>();
  private readonly sharing: ShardSharing;
  private readonly targetEp: SourceEndpoint;
  private readonly scope: PartialScope;
  private cleanStart = false;
  private stopping = false;
  /** A sharing round ran: an empty `shards` then means "every shard is held by another process". */
  private shared = false;
  /**
   * Whether the shards may be shared with other processes: only with the checkpoints in the target.
   * A file checkpoint is one machine's: a shard coming back to a process would resume from its
   * stale file and apply writes a second time. Without, this process takes every shard (a second
   * one is refused by the leases, exit 10, as a second instance of any sync).
   */
  private sharable = false;
  private failure: unknown = null;
  private wake: (() => void) | null = null;
  private readonly guard: MigrationGuard;
  private readonly sweep: GuardSweep;

  constructor(private readonly opts: ClusterSyncOptions) {
    super();
    this.log = opts.logger ?? silentLogger();
    const seed = parseRedisUrl(opts.source, opts.tls?.source);
    delete seed.db;
    this.cluster = new ClusterSource(seed);
    this.targetEp = parseRedisUrl(opts.target, opts.tls?.target);
    this.name = opts.name ?? endpointLabel(seed);
    this.list = new ShardList(this.name, this.log);
    this.gate = new Gate(Math.max(1, opts.parallelSyncs ?? 1));
    // Bad filters are refused before anything connects.
    this.scope = new PartialScope(opts.partial);
    this.guard = new MigrationGuard({ logger: this.log });
    this.sweep = new GuardSweep(this.guard, this.log);
    this.sharing = new ShardSharing({
      name: this.name,
      ttlMs: opts.leaseTtlMs ?? SYNC_DEFAULTS.leaseTtlMs,
      maxShards: opts.maxShards ?? null,
      log: this.log,
      identity: (key) => syncIdentity({ kind: 'cluster-shard', shard: this.known.get(key)! }, this.shardName(key)),
    });
  }

  get selection(): string | null {
    return this.scope.fingerprint === '' ? null : this.scope.fingerprint;
  }

  status(): ClusterSyncStatus {
    const shards: ShardStatus[] = [...this.shards.values()].map((s) => {
      const at = s.source.endpointNow();
      return { shard: s.source.key, slots: slotRangesText(s.source.slots()), node: at === null ? null : endpointLabel(at), ...s.session.status() };
    });
    const sharing = this.sharing.status();
    return {
      phase: this.phase(shards, sharing),
      ...shardFigures(shards),
      shards,
      migrations: { trackedKeys: this.guard.size, droppedDeletes: this.guard.droppedDeletes, droppedWrites: this.guard.droppedWrites, heldRestores: this.guard.order.held },
      sharing,
    };
  }

  /**
   * The worst phase of the shards held here. A process holding none is a healthy standby
   * (`streaming`) once every shard is held by another live process, else still `connecting`.
   */
  private phase(shards: ShardStatus[], sharing: SharingStatus): Phase {
    if (this.stopping) return shards.every((s) => s.phase === 'stopped') ? 'stopped' : 'stopping';
    if (shards.length === 0) return this.shared && this.known.size > 0 && sharing.waiting.length === 0 ? 'streaming' : 'connecting';
    return worstPhase(shards);
  }

  /** Stops every shard gracefully (handing them to the other processes, if any); run() then resolves (or rejects with the worst shard's error). */
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
    const call: NodeCall = (a) => control.call(a);
    try {
      let known = new Map<string, string[]>();
      if (this.opts.checkpoint?.kind === 'none') {
        this.cleanStart = await this.checkExisting(control);
      } else {
        const r = await this.list.readOrDecide(call, this.sharing.members.id, () => this.checkExisting(control), () => this.stopping);
        this.cleanStart = r.known.cleanStart;
        known = r.known.shards;
      }
      // Stopped while discovering: no shard is started.
      if (this.stopping) return this.finish();
      refuseOtherCluster(shards, known, this.list.key);
      for (const s of shards) {
        const source = shardSourceFor(s, known, (k) => this.known.has(k), this.cluster, this.opts.preferReplica ?? false);
        this.known.set(source.key, source);
      }
      const cp = this.opts.checkpoint;
      this.sharable = cp === undefined ? !control.info.cluster : cp.kind === 'target';
      // Shards held by other processes: a migrated key's RESTORE is ordered after them through the target.
      if (this.sharable) this.guard.order.remote = new RemoteOrder({ remotes: () => this.remoteShards(), target: call, log: this.log });
      await this.list.save(call, this.cleanStart, this.known.values());
      this.log.info({ sync: this.name, shards: [...this.known.values()].map((s) => ({ shard: s.key, slots: slotRangesText(s.slots()) })), parallelSyncs: this.opts.parallelSyncs ?? 1, preferReplica: this.opts.preferReplica ?? false }, 'cluster source: one sync per shard');
      await this.share(call);
      await this.follow(control, call);
    } finally {
      if (this.stopping || this.failure !== null) await this.sharing.leave(call).catch(() => undefined);
      this.guard.order.remote?.close();
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

  private shardName(key: string): string {
    return `${this.name}@${key}`;
  }

  /** The shards this process does not sync now (another process does, or none yet), with their masters and checkpoint keys. */
  private remoteShards(): RemoteShard[] {
    const out: RemoteShard[] = [];
    for (const [key, source] of this.known) {
      const s = this.shards.get(key);
      if (s !== undefined && !s.giving) continue;
      const master = source.current()?.master;
      const cp = this.shardCheckpoint(key);
      const checkpointKey = cp?.kind === 'target' && cp.key !== undefined ? cp.key : syncIdentity({ kind: 'cluster-shard', shard: source }, this.shardName(key)).checkpointKey;
      out.push({ key, master: master === undefined ? null : this.cluster.endpointOf(master), checkpointKey });
    }
    return out;
  }

  private shardCheckpoint(key: string): CheckpointSpec | undefined {
    const cp = this.opts.checkpoint;
    if (cp === undefined || cp.kind === 'none') return cp;
    if (cp.kind === 'file') return { kind: 'file', path: `${cp.path}.${key}` };
    return cp.key === undefined ? cp : { ...cp, key: `${cp.key}@${key}` };
  }

  /**
   * One sharing round: claim free shards up to this process's share and start their sessions;
   * give back (stop at a checkpoint, lease released) the shards over it. Alone, a process
   * claims every shard at its first round.
   */
  private async share(call: NodeCall): Promise<void> {
    if (!this.sharable) {
      // Not shared: every shard (new ones too), each session taking its own lease (refused while another instance holds it).
      for (const source of this.known.values()) if (!this.shards.has(source.key) && !this.stopping) this.startShard(source, null, call);
      this.shared = true;
      return;
    }
    const states = [...this.known.values()].map((source) => {
      const s = this.shards.get(source.key);
      return { key: source.key, mine: s !== undefined && !s.giving, streaming: s !== undefined && s.session.progress().streaming };
    });
    const { claimed, give } = await this.sharing.round(call, states);
    this.shared = true;
    for (const key of give) {
      const s = this.shards.get(key)!;
      s.giving = true;
      this.log.info({ shard: key, quota: this.sharing.status().quota }, 'handing this shard to another process of this sync: stopping it at a checkpoint');
      s.session.stop();
    }
    for (const [key, lease] of claimed) {
      if (this.stopping) break;
      this.startShard(this.known.get(key)!, lease, call);
    }
  }

  private startShard(source: ShardSource, lease: SyncLease | null, call: NodeCall): void {
    const key = source.key;
    const prefix = `${this.name}@`;
    // Renewed from here until the session takes it over (its start renews it on its own connection).
    lease?.startRenewing(() => call, () => shard.session.stop());
    const session = new SyncSession({
      ...this.opts,
      name: this.shardName(key),
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
        ...(lease === null ? {} : { lease }),
      },
    });
    session.on('phase', (phase, info) => this.emit('phase', phase, { ...info, shard: key }));
    // The guard holds a migrated key's RESTORE until the other shards applied what they sent before it.
    session.on('applied', (offset) => this.guard.order.applied(key, offset));
    const shard: Shard = { source, session, result: null, error: null, giving: false, done: Promise.resolve() };
    if (lease !== null) this.log.info({ shard: key, slots: slotRangesText(source.slots()) }, 'shard claimed: this process syncs it');
    shard.done = session
      .run()
      .then(
        (r) => {
          shard.result = r;
        },
        (e: unknown) => this.shardFailed(shard, e),
      )
      .finally(() => {
        // Whatever ended the session, a claimed lease is not left to expire (released only if still ours).
        lease?.stop();
        void lease?.release(call).catch(() => undefined);
        if (shard.giving || (shard.error instanceof LeaseError && this.sharable && !this.stopping)) this.dropShard(shard);
        this.wake?.();
      });
    this.shards.set(key, shard);
  }

  /** A shard's session failed: another process took its lease (it goes on there), or the sync stops. */
  private shardFailed(shard: Shard, e: unknown): void {
    shard.error = e;
    const key = shard.source.key;
    if (e instanceof LeaseError && this.sharable && !this.stopping) {
      this.log.warn({ shard: key, err: e.message }, 'another process of this sync holds this shard now: no longer synced here');
      return;
    }
    // One shard failing stops them all (the first failure is the one reported).
    if (!(e instanceof IncompleteCopyError) && this.failure === null) {
      this.failure = e;
      this.log.error({ shard: key, err: (e as Error).message }, 'a shard failed: stopping every shard');
      this.stop();
    }
  }

  private dropShard(shard: Shard): void {
    if (this.shards.get(shard.source.key) === shard) this.shards.delete(shard.source.key);
  }

  /** Polls the topology and shares the shards until every shard's session held here has ended (or forever, sharing). */
  private async follow(control: UnitWriter, call: NodeCall): Promise<void> {
    const pollEvery = this.opts.topologyPollMs ?? 5000;
    const claimEvery = Math.min(this.opts.claimEveryMs ?? 1000, pollEvery);
    let nextPoll = Date.now() + pollEvery;
    for (;;) {
      const running = [...this.shards.values()].map((s) => s.done);
      const ended = running.length === 0 ? new Promise<boolean>(() => undefined) : Promise.all(running).then(() => true);
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), claimEvery);
        this.wake = () => resolve(false);
      });
      const allEnded = await Promise.race([ended, tick]);
      clearTimeout(timer);
      this.wake = null;
      if (this.stopping) {
        await Promise.all([...this.shards.values()].map((s) => s.done));
        return;
      }
      // --exit-after-full-sync: the shards claimed at the start, each until its snapshot is applied.
      if (this.opts.exitAfterFullSync) {
        if (allEnded || [...this.shards.values()].every((s) => s.result !== null || s.error !== null)) return;
        continue;
      }
      await this.share(call).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'cannot share the shards with the other processes of this sync now; trying again'));
      if (Date.now() < nextPoll) continue;
      nextPoll = Date.now() + pollEvery;
      this.sweep.round(new Map([...this.shards].map(([key, s]) => [key, () => s.session.progress()])));
      await this.pollTopology(control).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'cannot read the cluster source topology; trying again later'));
    }
  }

  private async pollTopology(control: UnitWriter): Promise<void> {
    const shards = await this.cluster.refresh();
    let changed = false;
    for (const s of this.known.values()) if (s.track()) changed = true;
    for (const s of this.shards.values()) {
      const to = s.source.endpointNow();
      if (to !== null) s.session.sourceMoved(to);
    }
    for (const c of shards) {
      const nodes = [c.master.id, ...c.replicas.map((r) => r.id)];
      const tracked = [...this.known.values()].some((s) => s.nodeIds.some((id) => nodes.includes(id)));
      if (tracked || this.stopping) continue;
      const source = new ShardSource(c.master.id, nodes, this.cluster, this.opts.preferReplica ?? false);
      this.log.warn({ shard: source.key, address: endpointLabel(this.cluster.endpointOf(c.master)), slots: slotRangesText(c.master.slots) }, 'a shard was added to the cluster source: syncing it too');
      this.known.set(source.key, source);
      changed = true;
    }
    if (changed) await this.list.save((a) => control.call(a), this.cleanStart, this.known.values());
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

  /** The outcome once every shard ended: the first failure, else an incomplete copy (exit 9), else the results. */
  private finish(): SyncResult {
    const all = [...this.shards.values()];
    if (this.failure !== null) throw this.failure;
    const incomplete = all.find((s) => s.error instanceof IncompleteCopyError);
    if (incomplete !== undefined) throw incomplete.error;
    return { appliedOffset: null, replid: null, status: this.status() };
  }
}

/**
 * The shard list on the target names another cluster's nodes only: the same --name is used for
 * another source (its shards would be counted with these, and its checkpoints read as theirs).
 */
function refuseOtherCluster(shards: ClusterShard[], known: Map<string, string[]>, listKey: string): void {
  if (known.size === 0) return;
  const seen = new Set([...known.values()].flat());
  if (shards.some((s) => [s.master, ...s.replicas].some((n) => seen.has(n.id)))) return;
  throw new UsageError(
    `the shard list ${listKey} on the target names only nodes of another cluster: this --name is used by a sync of another source. Give this sync another --name, or, if that other sync is gone for good, delete ${listKey} and its checkpoints`,
  );
}
