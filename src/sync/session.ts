/**
 * SyncSession: poses as a replica of the source and keeps the target in step.
 *
 *   ReplicationLink ──► Spool ──► RdbDecoder ──► SnapshotApplier ─┐
 *   (wire speed)                  then StreamParser ─► StreamBatcher ─┴─► TargetWriter
 *        ▲ REPLCONF ACK <applied>                                          │
 *        └──────────────────────── applied offset ◄── checkpoint ◄─────────┘
 *
 * The source is read at wire speed into the spool whatever the target's speed; the target
 * is fed from the spool. The offset ACKed to the source and checkpointed is the one the
 * target has applied. Faults (link drops, target outages) are recovered by reconnecting
 * and resuming with PSYNC from the applied offset; see `run()`.
 */
import { EventEmitter } from 'node:events';
import { ExitCode, ReplicantError, SourceError, TargetError, UsageError, printableKey } from '../errors.js';
import { endpointLabel, parseRedisUrl, type SourceEndpoint } from '../replication/url.js';
import type { TlsSettings } from '../net/tls.js';
import { describeSource, parseSourceUrl, resolveSource, watchSentinel, type ShardSourceRef, type SourceSpec } from '../replication/source.js';
import { SLOT_COUNT, keySlot } from '../commands/slot.js';
import { ReplicationLink, type PsyncOutcome } from '../replication/link.js';
import { EOF_MARK_LENGTH, RdbTrailer } from '../replication/rdb-trailer.js';
import { isRetryable } from '../replication/errors.js';
import { readSourceInfoWithin, type ServerInfo } from '../replication/server-info.js';
import { preflightTarget } from '../writer/preflight.js';
import { RdbDecoder } from '../rdb/decoder.js';
import { ReplicationStreamParser, type StreamCommand } from '../resp/stream-parser.js';
import { encodeCommand, encodeCommands, type Arg } from '../resp/encode.js';
import { Spool } from '../spool/spool.js';
import { TargetCommandError, TargetExecAbortError, TargetWriter } from '../writer/index.js';
import { arityText, fetchCommandTable, type CommandTable } from '../commands/table.js';
import { ClusterTargetWriter, type AnyTargetWriter } from '../writer/index.js';
import { ClusterMarkers } from '../checkpoint/cluster-markers.js';
import { keyspaceTotal, parseInfo } from '../commands/info.js';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../observe/logger.js';
import { RateMeter } from '../observe/progress.js';
import type { Checkpoint } from '../checkpoint/checkpoint.js';
import { FileCheckpointStore, NoCheckpointStore, TargetCheckpointStore, isReservedKey, type CheckpointSpec, type CheckpointStore } from '../checkpoint/store.js';
import { parseCheckpoint } from '../checkpoint/checkpoint.js';
import { LEGACY_CHECKPOINT_KEY, REGISTRY_KEY, parseRegistry, syncIdentity, type SyncIdentity, type SyncRegistration } from '../checkpoint/identity.js';
import { LeaseError, SyncLease } from '../checkpoint/lease.js';
import { fullResyncReason, type ServerIdentity } from '../replication/identity.js';
import type { BeforePsync } from '../replication/link.js';
import { SnapshotApplier } from './apply/snapshot-writer.js';
import { IncompleteCopyError, describeShortfall, isShort, type Shortfall } from './incomplete.js';
import { LostKeys } from './lost-keys.js';
import { describeCommands, withoutCommands } from './apply/unit-recovery.js';
import { StreamBatcher, type StreamUnit } from './relay/batcher.js';
import { PartialScope, SnapshotScope, type PartialSyncSpec } from './relay/selection.js';
import { StreamFilter } from './relay/by-name.js';
import type { MigrationGuard } from './cluster/migration-guard.js';

export type WriteMode = 'auto' | 'restore' | 'commands';
export type FullResyncPolicy = 'flush' | 'flush-all' | 'replace' | 'fail';
export type Phase = 'connecting' | 'full-sync' | 'streaming' | 'reconnecting' | 'stopping' | 'stopped';

export interface SyncOptions {
  /** `redis://[user:pass@]host:port` of the source. */
  source: string;
  /** `redis://[user:pass@]host:port` of the target. */
  target: string;
  /** TLS settings of a `rediss://` (or `sentinels://`) source and a `rediss://` target; default: system CAs. */
  tls?: { source?: TlsSettings; target?: TlsSettings };
  /** How the snapshot is written. `auto`: plain commands for strings, RESTORE for the rest when the target's RDB version allows. */
  writeMode?: WriteMode;
  /** Keys whose serialized value is larger go as chunked commands. Default 16 MiB. */
  bigKeyBytes?: number;
  /** What to do when the target already holds keys at the first full sync. Default 'fail'. */
  existing?: 'fail' | 'replace' | 'flush';
  /** A command the target rejects: stop ('fail', default) or count and go on ('skip'). */
  onError?: 'fail' | 'skip';
  /**
   * When the source (or a target that lost its data) requires a full resync: `flush` (default:
   * empty the target and copy again, but only when it holds nothing this sync did not write;
   * otherwise stop with exit 7), `flush-all` (flush whatever it holds), `replace` (copy again
   * over the target without flushing) or `fail` (exit 7).
   */
  onFullResync?: FullResyncPolicy;
  /** This sync's identity on the target (checkpoint, lease, registry). Default: the source address. */
  name?: string;
  /** Time to live of the lease that keeps a second instance of this sync out. Default 10 s. */
  leaseTtlMs?: number;
  checkpoint?: CheckpointSpec;
  spoolDir?: string;
  spoolMemoryBytes?: number;
  spoolDiskBytes?: number;
  /** REPLCONF listening-port value. */
  listeningPort?: number;
  readTimeoutMs?: number;
  /** How long the first connection to the source is retried before failing with exit 4. Default 30 s. */
  connectTimeoutMs?: number;
  maxInflightBytes?: number;
  verifyChecksum?: boolean;
  /** Stop (resolve run()) once the snapshot is applied. */
  exitAfterFullSync?: boolean;
  /** File listing the snapshot keys not written (default: a new file under spoolDir or the temp dir, created at the first one). */
  report?: string;
  /** Copy only part of the source, possibly renamed / into other dbs (README "Partial sync"). */
  partial?: PartialSyncSpec;
  /**
   * The checkpoint was made with other filters: copy again (full sync; the target is flushed
   * when it holds only this sync's keys) instead of refusing to start.
   */
  acceptFilterChange?: boolean;
  /** Set by ClusterSourceSync: this session copies one shard of a cluster source (`source` is then only shown). */
  shard?: ShardRole;
  /** Reconnect delays: starts at `min`, doubles to `max`. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  logger?: Logger;
}

/**
 * What makes a session one shard of a cluster source sync (README "Cluster source"). Its siblings
 * (the other shards' sessions) are not "other syncs": their keys live in other slots, so a full
 * resync of this shard deletes the keys of its own slots instead of flushing the target.
 */
export interface ShardRole {
  source: ShardSourceRef & { slots(): [number, number][]; importingSlots(): Promise<number[]> };
  /** Whether a registry id is a sibling shard's session. */
  isSibling(id: string): boolean;
  /** The --existing decision taken once for the whole target: whether it held no keys but ours. */
  cleanStart: boolean;
  /** Taken before each PSYNC and released once the snapshot is applied (or none came): staggers the source's forks. */
  gate(): Promise<() => void>;
  /** Shared by every shard: keeps a slot migration's DEL from deleting the keys it moved. */
  guard: MigrationGuard;
  /** Resolves once the other shards have applied what they had received when called (bounded wait). */
  othersSettled(): Promise<void>;
}

export interface SyncStatus {
  phase: Phase;
  replid: string | null;
  /** Offset of the last byte of the stream received from the source. */
  receivedOffset: number | null;
  /** Offset applied on the target (what is ACKed and checkpointed). */
  appliedOffset: number | null;
  lagBytes: number | null;
  lagMs: number | null;
  rdb: { bytes: number; totalBytes: number | null; keys: number; keysPerSec: number } | null;
  opsPerSec: number;
  commandsApplied: number;
  errors: number;
  fullSyncs: number;
  partialSyncs: number;
  /** Snapshot keys not written to the target (rejected, corrupt, untranslatable), and the file listing them. */
  lostKeys: number;
  lostKeysReport: string | null;
  /** Stream commands the target rejected and that were skipped (--on-error skip). */
  skippedCommands: number;
  /** false while the target's copy is known to be short: snapshot not fully applied, keys lost or commands skipped. */
  complete: boolean;
}

export interface SyncResult {
  appliedOffset: number | null;
  replid: string | null;
  status: SyncStatus;
}

export interface SyncEvents {
  phase: [phase: Phase, info: Record<string, unknown>];
  /** Emitted once the snapshot is fully applied on the target. */
  fullSyncDone: [info: { replid: string; offset: number; keys: number; ms: number }];
  /** Emitted after each unit of the stream is applied. */
  applied: [offset: number];
}

class StopRequested extends Error {}

/** A failure the session recovers from by reconnecting (not fatal). */
class Recoverable extends Error {
  constructor(readonly side: 'source' | 'target', message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

interface PendingUnit {
  offset: number;
  db: number;
  payload: Buffer[];
  count: number;
  atomic: boolean;
  /** Trailing commands of our own (the checkpoint write), not the source's. */
  inline: number;
}

/** Skipped stream commands logged one by one at warn level (then at debug level). */
const SKIP_WARN_LIMIT = 100;
/** Commands named in the log when a whole aborted unit is given up. */
const GIVEN_UP_LOGGED = 20;
/**
 * Stream units sent one at a time (each applied before the next goes out) after a unit was
 * aborted under --on-error skip: a second abort among them is then recovered exactly.
 */
const SERIAL_AFTER_ABORT = 256;

export class SyncSession extends EventEmitter<SyncEvents> {
  private readonly opts: Required<Omit<SyncOptions, 'spoolDir' | 'listeningPort' | 'checkpoint' | 'logger' | 'name' | 'report' | 'tls' | 'partial' | 'acceptFilterChange' | 'shard'>> & Pick<SyncOptions, 'spoolDir' | 'listeningPort'>;
  private readonly identity: SyncIdentity;
  private readonly lease: SyncLease;
  /** Proof that a cluster target's masters still hold the copy (its checkpoint is a file). */
  private readonly markers: ClusterMarkers;
  /** Set when another instance took this sync over: nothing more may be applied. */
  private leaseLost: Error | null = null;
  /** Other syncs registered on the target when this one started (their keys are not ours). */
  private otherSyncs = new Map<string, SyncRegistration>();
  private registration: SyncRegistration | null = null;
  /** This sync's entry found in the target's registry (written by an earlier run of it). */
  private registeredAs: SyncRegistration | null = null;
  private sameSourceWarned = false;
  /** The source as seen before the last PSYNC. */
  private sourceIdentity: ServerIdentity | null = null;
  /** Why the next full resync happens (logged with it). */
  private resyncReason: string | null = null;
  /** The target lost what it had applied (flushed, restarted empty): resync from scratch. */
  private targetLost: string | null = null;
  /** Offset of the checkpoint the next inline GETSET should find on the target (submission order). */
  private cpExpected: number | null = null;
  /** Offsets of aborted units given up under --on-error skip (their checkpoint never reached the target). */
  private readonly checkpointsGivenUp = new Set<number>();
  private reservedWarned = 0;
  /** The source answered a PSYNC once: from then on, source failures are retried forever. */
  private sourceAnswered = false;
  /** First start without a checkpoint: --existing is applied once the source is known not to be the target. */
  private existingCheckPending = false;
  private readonly log: Logger;
  private readonly sourceSpec: SourceSpec;
  private readonly shard: ShardRole | null;
  /** The source endpoint of the current connection. */
  private sourceEp: SourceEndpoint | null = null;
  /** Set once anything was written to the target by this process. */
  private wroteTarget = false;
  /** The current cycle reached streaming (resets the reconnect backoff when it fails). */
  private linkEstablished = false;
  private readonly targetEp: SourceEndpoint;
  private checkpointSpec: CheckpointSpec | undefined;
  private store!: CheckpointStore;
  private writer: AnyTargetWriter | null = null;
  /** The target is a Redis Cluster: db 0 only, no cross-slot transactions, checkpoint in a file. */
  private cluster = false;
  private link: ReplicationLink | null = null;
  private spool: Spool | null = null;
  private phase: Phase = 'connecting';
  private stopping = false;
  private stopResolve: (() => void) | null = null;
  private readonly stopped: Promise<void>;

  // Replication position.
  private replid: string | null = null;
  private applied: number | null = null;
  private streamBase = 0;
  private streamBytesBefore = 0;
  private db = 0;
  private cleanStart = false;
  private pending: PendingUnit[] = [];
  /** The db selected after the last applied unit. */
  private appliedDb = 0;
  private getAckPending = false;

  // Figures.
  private rdbTotal: number | null = null;
  private rdbBytes = 0;
  private rdbKeys = 0;
  private readonly keyRate = new RateMeter();
  private readonly opRate = new RateMeter();
  private commandsApplied = 0;
  private errors = 0;
  private fullSyncs = 0;
  private partialSyncs = 0;
  /** Snapshot keys that did not reach the target. */
  private readonly lost: LostKeys;
  /** The db of a snapshot unit (while a snapshot is being applied): places a rejected key in its db. */
  private snapshotDbOf: ((payload: Buffer | readonly Buffer[] | undefined) => number | undefined) | null = null;
  /** A snapshot was started (here or by an earlier run: checkpoint state full-sync) and not finished. */
  private snapshotUnfinished = false;
  private skippedCommands = 0;
  /** The target's commands (per writer connection): stream commands it would refuse are caught before MULTI. */
  private commandTable: CommandTable | null = null;
  /** Stream units still to send one at a time (see SERIAL_AFTER_ABORT). */
  private serialUnits = 0;
  /** Why an aborted unit could not be skipped (the writer then failed with the abort). */
  private fatalAbort: TargetError | null = null;
  private receivedSamples: { offset: number; t: number }[] = [];
  private readonly scope: PartialScope;
  private readonly acceptFilterChange: boolean;
  /** Stream commands dropped by --exclude-command, by name (each name logged once). */
  private readonly excluded = new Map<string, number>();

  constructor(options: SyncOptions) {
    super();
    this.log = options.logger ?? silentLogger();
    this.shard = options.shard ?? null;
    this.sourceSpec = this.shard !== null ? { kind: 'cluster-shard', shard: this.shard.source } : parseSourceUrl(options.source, options.tls?.source);
    this.targetEp = parseRedisUrl(options.target, options.tls?.target);
    this.checkpointSpec = options.checkpoint;
    this.identity = syncIdentity(this.sourceSpec, options.name);
    this.lost = new LostKeys(this.log, options.report, options.spoolDir);
    this.scope = new PartialScope(options.partial);
    this.acceptFilterChange = options.acceptFilterChange ?? false;
    this.opts = {
      source: options.source,
      target: options.target,
      writeMode: options.writeMode ?? 'auto',
      bigKeyBytes: options.bigKeyBytes ?? 16 * 1024 * 1024,
      existing: options.existing ?? 'fail',
      onError: options.onError ?? 'fail',
      onFullResync: options.onFullResync ?? 'flush',
      spoolDir: options.spoolDir,
      spoolMemoryBytes: options.spoolMemoryBytes ?? 64 * 1024 * 1024,
      spoolDiskBytes: options.spoolDiskBytes ?? 4 * 1024 * 1024 * 1024,
      listeningPort: options.listeningPort,
      readTimeoutMs: options.readTimeoutMs ?? 60_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 30_000,
      maxInflightBytes: options.maxInflightBytes ?? 32 * 1024 * 1024,
      verifyChecksum: options.verifyChecksum ?? true,
      exitAfterFullSync: options.exitAfterFullSync ?? false,
      reconnectMinMs: options.reconnectMinMs ?? 200,
      reconnectMaxMs: options.reconnectMaxMs ?? 10_000,
      leaseTtlMs: options.leaseTtlMs ?? 10_000,
    };
    this.markers = new ClusterMarkers(this.identity.id);
    this.lease = new SyncLease({ key: this.identity.leaseKey, id: this.identity.id, clientPrefix: this.identity.clientPrefix, ttlMs: this.opts.leaseTtlMs, logger: this.log });
    this.stopped = new Promise((resolve) => {
      this.stopResolve = resolve;
    });
  }

  /** A partial sync's selection as stored with the checkpoint (JSON), or null for a full copy. */
  get selection(): string | null {
    return this.scope.fingerprint === '' ? null : this.scope.fingerprint;
  }

  /** Current figures (for progress displays and the library API). */
  status(): SyncStatus {
    const received = this.receivedOffset();
    const now = Date.now();
    let lagMs: number | null = null;
    if (this.applied !== null && received !== null) {
      if (this.applied >= received) lagMs = 0;
      else {
        // The oldest sample past the applied offset tells when the unapplied bytes arrived;
        // without one, they arrived since the last sample.
        const s = this.receivedSamples.find((x) => x.offset > this.applied!);
        const last = this.receivedSamples[this.receivedSamples.length - 1];
        lagMs = s ? now - s.t : last ? Math.min(now - last.t, 100) : null;
      }
    }
    return {
      phase: this.phase,
      replid: this.replid,
      receivedOffset: received,
      appliedOffset: this.applied,
      lagBytes: this.applied !== null && received !== null ? Math.max(0, received - this.applied) : null,
      lagMs,
      rdb: this.phase === 'full-sync' || this.rdbTotal !== null ? { bytes: this.rdbBytes, totalBytes: this.rdbTotal, keys: this.rdbKeys, keysPerSec: this.keyRate.rate() } : null,
      opsPerSec: this.opRate.rate(),
      commandsApplied: this.commandsApplied,
      errors: this.errors + (this.writer?.stats.errors ?? 0),
      fullSyncs: this.fullSyncs,
      partialSyncs: this.partialSyncs,
      lostKeys: this.lost.count,
      lostKeysReport: this.lost.path,
      skippedCommands: this.skippedCommands,
      complete: !isShort(this.shortfall()),
    };
  }

  private shortfall(): Shortfall {
    return {
      snapshotUnfinished: this.snapshotUnfinished,
      keysRead: this.rdbKeys,
      rdbBytes: this.rdbBytes,
      rdbTotalBytes: this.rdbTotal,
      lostKeys: this.lost.count,
      report: this.lost.path,
      skippedCommands: this.skippedCommands,
    };
  }

  /**
   * Graceful stop: stop reading the source, apply what was received up to a command
   * boundary, store the checkpoint. `run()` then resolves.
   */
  stop(): void {
    // (A run that already ended stays 'stopped'.)
    if (this.stopping || this.phase === 'stopped') return;
    this.stopping = true;
    this.setPhase('stopping', {});
    // A snapshot cannot be resumed half-way (the next run copies it again): what is still in
    // flight of it is of no use, so do not wait for it; this also unblocks a full sync waiting on the target.
    if (this.snapshotUnfinished) this.writer?.destroy();
    this.link?.close();
    this.spool?.end();
    this.stopResolve?.();
  }

  /**
   * The source should now be read from `to` (a sentinel's +switch-master, a cluster shard's new
   * master): a link to another node is dropped, and the next connection resolves the source again.
   */
  sourceMoved(to: { host: string; port: number }): void {
    const ep = this.sourceEp;
    if (ep !== null && this.link !== null && (ep.host !== to.host || ep.port !== to.port)) {
      this.log.info({ from: endpointLabel(ep), to: endpointLabel(to) }, 'the source moved: reconnecting');
      this.link.close();
    }
  }

  /** Runs until stop() or an unrecoverable error (rejects with a ReplicantError). */
  async run(): Promise<SyncResult> {
    const sampler = setInterval(() => this.sample(), 100);
    sampler.unref();
    let unwatch: (() => void) | null = null;
    try {
      if (this.sourceSpec.kind === 'sentinel') {
        unwatch = await watchSentinel(this.sourceSpec.sentinel, this.log, (to) => this.sourceMoved(to)).catch((e: Error) => {
          this.log.warn({ err: e.message }, 'cannot watch the sentinels for failovers; relying on the link dropping');
          return null;
        });
      }
      await this.connectTarget();
      // Read-only checks first: a target that cannot take the writes gets no lease either.
      await this.preflight();
      // Ownership next: the checkpoint read below must not be moved by an older instance.
      const control = await this.controlWriter();
      if (!(await this.lease.acquire((a) => control.call(a), control.nodeCalls(), (ms) => this.sleep(ms), () => this.stopping))) {
        this.log.info('stopped while waiting for the lease');
        return { appliedOffset: null, replid: null, status: this.status() };
      }
      this.lease.startRenewing(
        () => (a) => this.controlCall(a),
        (e) => this.onLeaseLost(e),
        (retaken) => {
          void this.checkTargetKept(retaken).catch(() => undefined);
          void this.readRegistry().catch(() => undefined);
        },
      );
      await this.readRegistry();
      this.store = this.createStore();
      let cp = await this.store.load();
      this.log.info({ sync: this.identity.id, checkpoint: this.store.where, otherSyncs: [...this.otherSyncs.keys()] }, 'checkpoint store');
      if (cp) this.checkOwner(cp);
      if (cp) cp = this.checkFilterChange(cp);
      // A checkpoint file of this sync, but the target no longer knows the sync: it lost the copy while we were stopped.
      if (cp && cp.sync !== undefined && this.store.kind === 'file' && !this.cluster && this.registeredAs === null) {
        this.log.warn({ offset: cp.offset, checkpoint: this.store.where }, `the checkpoint says offset ${cp.offset} was applied, but the target no longer holds this sync's registry entry: it lost its data while the sync was stopped (flushed, restarted without persistence); copying again`);
        cp = null;
      }
      if (cp) {
        this.log.info({ replid: cp.replid, offset: cp.offset, db: cp.db, state: cp.state, checkpoint: this.store.where }, 'checkpoint found');
        this.cleanStart = cp.cleanStart;
        if (cp.state === 'streaming') {
          // What the target holds until the resume says otherwise (status, a stop before resuming).
          this.applied = cp.offset;
          this.replid = cp.replid;
        }
      } else if (this.shard !== null) {
        // The coordinator checked the target once for every shard.
        this.cleanStart = this.shard.cleanStart;
      } else this.existingCheckPending = true;
      // An earlier run stopped in the middle of a snapshot: the target is short until one completes.
      if (cp?.state === 'full-sync') this.snapshotUnfinished = true;
      let delay = this.opts.reconnectMinMs;
      // Until the source first answers a PSYNC, a source failure is bounded by --connect-timeout.
      const firstConnectBy = Date.now() + this.opts.connectTimeoutMs;
      while (!this.stopping) {
        this.linkEstablished = false;
        try {
          await this.cycle(cp);
          if (this.stopping || this.opts.exitAfterFullSync) break;
          delay = this.opts.reconnectMinMs;
        } catch (e) {
          if (this.leaseLost !== null) throw this.leaseLost;
          if (e instanceof StopRequested || this.stopping) break;
          if (!(e instanceof Recoverable)) throw e;
          if (e.side === 'source' && !this.sourceAnswered && Date.now() >= firstConnectBy) {
            throw new SourceError(`${e.message}; gave up after --connect-timeout ${this.opts.connectTimeoutMs / 1000} s without a first replication link`, { cause: e });
          }
          // A link that worked before it failed starts the backoff over.
          if (this.linkEstablished) delay = this.opts.reconnectMinMs;
          this.log.warn({ side: e.side, err: e.cause instanceof Error ? e.cause.message : undefined, retryInMs: delay }, `${e.message}; reconnecting`);
          this.setPhase('reconnecting', { side: e.side });
          await this.teardownLink();
          await this.sleep(delay);
          delay = Math.min(delay * 2, this.opts.reconnectMaxMs);
          if (e.side === 'target') {
            await this.reconnectTarget();
            // What the target holds is the truth: a unit may have been applied without its reply reaching us.
            if (this.store.kind === 'target') this.applied = null;
          }
        }
        if (this.stopping) break;
        if (this.targetLost !== null) cp = null;
        else cp = this.applied !== null && this.replid !== null ? this.currentCheckpoint('streaming', this.applied, this.db) : await this.store.load();
      }
      if (this.leaseLost !== null) throw this.leaseLost;
      await this.finishGracefully();
      const result: SyncResult = { appliedOffset: this.applied, replid: this.replid, status: this.status() };
      const short = this.shortfall();
      if (isShort(short)) {
        this.lost.flush();
        this.log.warn({ ...short }, describeShortfall(short));
        throw new IncompleteCopyError(short, result);
      }
      return result;
    } catch (e) {
      if (!(e instanceof LeaseError)) await this.lease.release((a) => this.controlCall(a)).catch(() => undefined);
      throw e;
    } finally {
      this.lease.stop();
      this.control?.destroy();
      this.control = null;
      clearInterval(sampler);
      unwatch?.();
      await this.teardownLink();
      if (this.writer) {
        this.writer.destroy();
        this.writer = null;
      }
      this.setPhase('stopped', { appliedOffset: this.applied });
    }
  }

  /** The source's INFO read before the first PSYNC (run_id, replids, memory...). */
  private sourceInfo: ServerInfo | null = null;

  /**
   * Before the first PSYNC: the source must answer within --connect-timeout (else exit 4), and
   * the target must be able to take the copy (else exit 5 with what is missing).
   */
  private async preflight(): Promise<void> {
    try {
      this.sourceInfo = await readSourceInfoWithin(this.sourceSpec, this.opts.connectTimeoutMs, this.log, () => this.stopping);
    } catch (e) {
      if (this.stopping) return;
      throw e;
    }
    const cp = this.checkpointSpec;
    await preflightTarget({
      target: this.targetEp,
      cluster: this.cluster,
      writeMode: this.opts.writeMode,
      checkpointInTarget: cp === undefined ? !this.cluster : cp.kind === 'target',
      source: this.sourceInfo,
      logger: this.log,
    });
  }

  // ---------------------------------------------------------------- cycle

  /** One connection to the source: PSYNC, then full sync and/or streaming until the link ends. */
  private async cycle(cp: Checkpoint | null): Promise<void> {
    this.setPhase('connecting', { source: describeSource(this.sourceSpec) });
    // A shard of a cluster source that needs a snapshot waits for its turn: at most N shards fork
    // and send one at once. Taken before resolving when no resume is possible (the node is then
    // the one of the moment the turn comes); a resume never waits, and a PSYNC the source answers
    // with a full resync takes its turn before the snapshot is applied (the spool holds it).
    let release: (() => void) | null = null;
    const takeTurn = async (): Promise<void> => {
      if (this.shard === null || release !== null) return;
      const turn = this.shard.gate();
      const got = await Promise.race([turn, this.stopped.then(() => null)]);
      if (got === null) {
        void turn.then((r) => r());
        throw new StopRequested();
      }
      release = got;
    };
    if (cp === null || cp.state !== 'streaming') await takeTurn();
    try {
      await this.cycleFrom(cp, takeTurn, () => release?.());
    } finally {
      (release as (() => void) | null)?.();
    }
  }

  private async cycleFrom(cp: Checkpoint | null, takeTurn: () => Promise<void>, snapshotDone: () => void): Promise<void> {
    let endpoint: SourceEndpoint;
    try {
      endpoint = await resolveSource(this.sourceSpec, this.log);
    } catch (e) {
      throw new Recoverable('source', (e as Error).message, { cause: e });
    }
    this.sourceEp = endpoint;
    const resumable = cp !== null && cp.state === 'streaming';
    const spool = await Spool.open({ dir: this.opts.spoolDir, memoryBudget: this.opts.spoolMemoryBytes, diskBudget: this.opts.spoolDiskBytes, logger: this.log });
    this.spool = spool;
    const link = new ReplicationLink({
      endpoint,
      listeningPort: this.opts.listeningPort,
      psync: resumable ? { replid: cp.replid, offset: cp.offset } : null,
      readTimeoutMs: this.opts.readTimeoutMs,
      logger: this.log,
      spool,
      beforePsync: (ctx) => this.beforePsync(ctx, resumable ? cp : null),
    });
    this.link = link;
    let linkError: Error | null = null;
    link.on('error', (e: Error) => {
      linkError = e;
      spool.end();
    });
    link.on('close', () => spool.end());
    let outcome: PsyncOutcome;
    try {
      outcome = await link.start();
    } catch (e) {
      if (this.stopping) throw new StopRequested();
      // Wrong credentials or a source that refuses replication will not fix themselves.
      if (!isRetryable(e)) throw e;
      throw new Recoverable('source', `source ${endpointLabel(endpoint)}: ${(e as Error).message}`, { cause: e });
    }
    this.replid = outcome.replid;
    this.sourceAnswered = true;
    let parser: ReplicationStreamParser;
    let firstStream: Buffer | null = null;
    if (outcome.mode === 'full') {
      this.fullSyncs++;
      if (resumable || (cp === null && this.wroteTarget)) {
        const reason = this.resyncReason ?? (resumable ? `the source refused to resume PSYNC ${cp.replid} ${cp.offset + 1}` : 'the target lost its checkpoint');
        await this.fullResync(reason, resumable ? cp.cleanStart : this.cleanStart);
      } else if (cp !== null && cp.state === 'full-sync') {
        if (cp.cleanStart && this.otherSyncs.size === 0) {
          this.log.warn(this.shard !== null ? "an earlier full sync was interrupted: deleting its partial copy (the keys of this shard's slots) from the target" : 'an earlier full sync was interrupted: flushing its partial copy from the target');
          await this.clearOwnKeys();
          this.cleanStart = true;
        } else {
          this.cleanStart = false;
          this.log.warn({ otherSyncs: [...this.otherSyncs.keys()] }, 'an earlier full sync was interrupted on a target that holds other keys: copying again over them (REPLACE)');
        }
      }
      this.targetLost = null;
      this.resyncReason = null;
      this.markers.reset();
      await takeTurn();
      const rest = await this.fullSync(link, spool, outcome);
      snapshotDone();
      parser = new ReplicationStreamParser(outcome.offset);
      firstStream = rest;
      if (this.opts.exitAfterFullSync) return;
    } else {
      snapshotDone();
      this.partialSyncs++;
      this.db = cp!.db;
      this.applied = outcome.offset;
      this.streamBase = outcome.offset;
      this.streamBytesBefore = 0;
      link.setAppliedOffset(outcome.offset);
      this.cpExpected = outcome.offset;
      this.log.info({ replid: outcome.replid, offset: outcome.offset, db: this.db }, 'resumed with a partial resync (+CONTINUE): nothing is copied again');
      if (outcome.replid !== cp!.replid) {
        const runId = this.sourceIdentity?.runId;
        const restarted = runId !== undefined && cp!.sourceRunId !== undefined && runId !== cp!.sourceRunId && this.sourceSpec.kind === 'direct';
        this.log.info(
          { from: cp!.replid, to: outcome.replid, runId },
          restarted
            ? 'the source restarted (new run_id) and kept its replication history under a new id; continuing with it'
            : 'source replication id changed (failover to a promoted replica); continuing with the new id',
        );
      }
      parser = new ReplicationStreamParser(outcome.offset);
      // Re-select the stream's db on the (possibly new) target connection.
      if (!this.cluster) await this.submitRaw([encodeCommand(['SELECT', this.scope.connectionDb(this.db)])], 1, false, undefined);
    }
    await this.streamLoop(spool, parser, firstStream);
    if (this.writerFailure !== null) this.throwWriterFailure(this.writerFailure);
    if (this.targetLost !== null) throw new Recoverable('target', this.targetLost);
    if (this.stopping) return;
    const err = linkError as Error | null;
    throw new Recoverable('source', err ? `source link failed: ${err.message}` : 'source closed the replication link', { cause: err ?? undefined });
  }

  // ------------------------------------------------------------ full sync

  private async fullSync(link: ReplicationLink, spool: Spool, outcome: Extract<PsyncOutcome, { mode: 'full' }>): Promise<Buffer> {
    const started = Date.now();
    this.rdbTotal = outcome.framing.kind === 'length' ? outcome.framing.length : null;
    this.rdbBytes = 0;
    this.rdbKeys = 0;
    this.applied = null;
    this.pending = [];
    this.setPhase('full-sync', { replid: outcome.replid, offset: outcome.offset, rdbBytes: this.rdbTotal, framing: outcome.framing.kind });
    this.wroteTarget = true;
    this.snapshotUnfinished = true;
    this.lost.reset();
    await this.store.write(this.currentCheckpoint('full-sync', outcome.offset, 0), 0);
    const writer = this.writer!;
    const info = writer.info;
    const decoder = new RdbDecoder({
      verifyChecksum: this.opts.verifyChecksum,
      captureRaw: this.opts.writeMode !== 'commands',
      rawLimit: this.opts.bigKeyBytes,
      onCorruptValue: this.opts.onError === 'skip' ? 'skip' : 'fail',
    });
    // While one long string streams, the spool and the in-flight budget would both fill with its
    // pieces, and V8 frees them late: smaller buffers keep the peak of a 512 MB string under
    // 150 MB at no measurable cost in speed (bench/README.md, "One 512 MB string").
    const longString = (streaming: boolean): void => {
      spool.setMemoryBudget(streaming ? Math.min(this.opts.spoolMemoryBytes, LONG_STRING_SPOOL_MEMORY) : this.opts.spoolMemoryBytes);
      writer.setMaxInflight(streaming ? Math.min(this.opts.maxInflightBytes, LONG_STRING_INFLIGHT) : this.opts.maxInflightBytes);
    };
    const shard = this.shard;
    let superseded: ((key: Buffer) => boolean) | undefined;
    if (shard !== null) {
      // Migrations around this snapshot (see migration-guard): a key that migrated here before the
      // fork may still have its DEL in another shard's stream. The other shards first apply what
      // they have received (migrations done before the fork), and keys of slots still importing
      // are tracked as this shard's, so a later DEL from elsewhere is dropped. A key that another
      // shard has restored since is left out: this snapshot's copy is older.
      const importing = new Set(await shard.source.importingSlots());
      await shard.othersSettled();
      const me = shard.source.key;
      superseded = (key) => {
        const owner = shard.guard.ownerOf(key);
        if (owner !== undefined) return owner !== me;
        if (importing.size > 0 && importing.has(keySlot(key))) shard.guard.noteSnapshotKey(key, me);
        return false;
      };
      if (importing.size > 0) this.log.info({ importing: [...importing] }, 'snapshot taken while slots migrate into this shard: their keys are tracked by the migration guard');
    }
    const snapScope = new SnapshotScope(this.scope, (db, key) => this.renameCollision(db, key), superseded);
    let applier: SnapshotApplier | null = null;
    const makeApplier = (sourceRdbVersion: number): SnapshotApplier => {
      const restoreOk = info.rdbVersion >= sourceRdbVersion;
      const mode = this.opts.writeMode === 'commands' || !restoreOk ? 'commands' : this.opts.writeMode === 'restore' ? 'restore' : 'auto';
      if (this.opts.writeMode === 'restore' && !restoreOk) {
        this.log.warn({ sourceRdb: sourceRdbVersion, targetRdb: info.rdbVersion }, 'the target cannot RESTORE payloads of the source RDB version: writing commands instead');
      }
      this.log.info({ mode, sourceRdbVersion, targetRdbVersion: info.rdbVersion }, 'snapshot write mode');
      return new SnapshotApplier({
        writer,
        logger: this.log,
        coalesceSets: !this.cluster,
        onLongString: longString,
        onForeignDb: this.cluster ? (db, key) => this.foreignDb(db, key) : undefined,
        translate: {
          mode,
          // A shard's keys may already be there: an interrupted copy of its slots, or keys that migrated.
          replace: !this.cleanStart || this.shard !== null,
          restoreBufferBytes: this.opts.bigKeyBytes,
          targetVersion: `${info.major}.${info.minor}`,
          emitSelect: !this.cluster,
          onUntranslatable: this.opts.onError,
          onIssue: (issue) => {
            if (issue.lost && issue.key !== null) this.lost.add(issue.db ?? 0, issue.key, issue.message);
            else this.log.warn({ db: issue.db, key: issue.key ? printableKey(issue.key) : undefined }, issue.message);
          },
        },
      });
    };
    let trailer: RdbTrailer | null = null;
    let afterRdb: Buffer | null = null;
    try {
      while (afterRdb === null) {
        // A snapshot cannot be resumed half-way: on stop, leave at once (the checkpoint still says full-sync).
        if (this.stopping) throw new StopRequested();
        const chunk = await spool.read();
        if (chunk === null) {
          if (this.stopping) throw new StopRequested();
          throw new Recoverable('source', `source link ended during the RDB transfer after ${this.rdbBytes} bytes`);
        }
        if (trailer === null) {
          const before = decoder.bytesConsumed;
          // At most 64 KiB per push: fewer records alive at once keeps the GC cheap.
          let sliceEnd = 0;
          while (sliceEnd < chunk.length && !decoder.done) {
            const records = decoder.push(chunk.subarray(sliceEnd, sliceEnd + DECODE_SLICE));
            sliceEnd = Math.min(chunk.length, sliceEnd + DECODE_SLICE);
            if (applier === null && decoder.version > 0) {
              const a = (applier = makeApplier(decoder.version));
              this.snapshotDbOf = (payload) => a.dbOf(payload);
            }
            if (applier !== null && records.length > 0) await applier.apply(snapScope.apply(records));
          }
          if (applier !== null) {
            this.rdbKeys = applier.stats.keys;
            this.keyRate.mark(this.rdbKeys);
          }
          this.rdbBytes += decoder.bytesConsumed - before;
          if (!decoder.done) continue;
          trailer = new RdbTrailer(outcome.framing, decoder.bytesConsumed);
          const rest = sliceEnd < chunk.length ? Buffer.concat([decoder.remainder(), chunk.subarray(sliceEnd)]) : decoder.remainder();
          afterRdb = trailer.push(rest);
        } else {
          afterRdb = trailer.push(chunk);
        }
      }
    } finally {
      // The buffers get their configured sizes back even if the transfer failed mid-value.
      longString(false);
    }
    if (applier === null) throw new ReplicantError('RDB', 'RDB ended before its header', ExitCode.DATA);
    await applier.finish();
    await this.flushWriter();
    this.snapshotDbOf = null;
    this.db = applier.replStreamDb;
    this.applied = outcome.offset;
    this.streamBase = outcome.offset;
    this.streamBytesBefore = decoder.bytesConsumed + (outcome.framing.kind === 'eof' ? EOF_MARK_LENGTH : 0);
    const replaced = await this.store.write(this.currentCheckpoint('streaming', outcome.offset, this.db), applier.currentDb);
    this.cpExpected = outcome.offset;
    // The snapshot's own 'full-sync' checkpoint must still be there: else the target lost (part of) the copy meanwhile.
    const before = this.store.kind === 'target' && (typeof replaced === 'string' || Buffer.isBuffer(replaced)) ? parseCheckpoint(replaced) : null;
    if (this.store.kind === 'target' && (before === null || before.state !== 'full-sync' || before.offset !== outcome.offset)) {
      this.markTargetLost(`the snapshot's checkpoint was ${before === null ? 'gone' : `replaced (offset ${before.offset}, ${before.state})`} when the copy ended`);
    } else this.snapshotUnfinished = false;
    if (!this.cluster) await this.submitRaw([encodeCommand(['SELECT', this.scope.connectionDb(this.db)])], 1, false, undefined);
    link.setAppliedOffset(outcome.offset);
    link.ackNow();
    const ms = Date.now() - started;
    this.summarizeFullSync(applier, decoder.emptyKeysSkipped, ms, snapScope);
    this.emit('fullSyncDone', { replid: outcome.replid, offset: outcome.offset, keys: applier.stats.keys, ms });
    this.rdbTotal = null;
    return afterRdb;
  }

  /**
   * The 'full sync applied' line. `keys` counts the keys read from the RDB; `lostKeys` those of
   * them that are not on the target (rejected, corrupt, untranslatable, in a db the target lacks):
   * with any, a warning says the copy is incomplete and where the full list is.
   */
  private summarizeFullSync(applier: SnapshotApplier, emptyKeysSkipped: number, ms: number, scope: SnapshotScope): void {
    this.lost.flush();
    const s = applier.stats;
    const lost = this.lost.count;
    this.log.info(
      {
        keys: s.keys,
        commands: s.commands,
        expiredSkipped: applier.translatorStats.expiredSkipped,
        skipped: s.skipped,
        lostKeys: lost,
        complete: lost === 0,
        ...(lost > 0 ? { report: this.lost.path } : {}),
        functions: s.functions,
        rdbBytes: this.rdbBytes,
        ms,
        emptyKeysSkipped,
        ...(this.scope.identity ? {} : { filteredKeys: scope.filtered }),
        ...(scope.reserved > 0 ? { reservedKeysSkipped: scope.reserved } : {}),
        ...(scope.superseded > 0 ? { migratedKeys: scope.superseded } : {}),
      },
      'full sync applied',
    );
    if (scope.reserved > 0) {
      this.log.warn({ reservedKeysSkipped: scope.reserved }, 'the source\'s snapshot holds __replicant keys (it is itself the target of another Replicant sync?): they were not copied');
    }
    if (lost > 0) {
      this.log.warn(
        { lostKeys: lost, report: this.lost.path, first: this.lost.sample },
        `the copy is incomplete: ${lost} keys of the snapshot were not written to the target; ${this.lost.path === null ? 'the report could not be written (see above)' : `the full list is in ${this.lost.path}`}`,
      );
    }
  }

  // ------------------------------------------------------------ streaming

  private async streamLoop(spool: Spool, parser: ReplicationStreamParser, first: Buffer | null): Promise<void> {
    this.linkEstablished = true;
    this.setPhase('streaming', { replid: this.replid, offset: this.applied, db: this.db });
    const atomic = this.store.kind === 'target';
    const batcher = new StreamBatcher({
      db: this.db,
      atomicUnits: atomic,
      onGetAck: () => {
        this.getAckPending = true;
      },
      reservedDb: this.store.kind === 'target' ? this.store.db : 0,
      onReserved: (cmd: StreamCommand) => {
        // A chained source (itself the target of another sync) writes its checkpoint with every batch.
        if (this.reservedWarned++ === 0) this.log.warn({ command: cmd.name, key: printableKey(cmd.args[1]!) }, 'the source writes __replicant keys (it is itself the target of another Replicant sync?): such commands are never copied (logged once)');
      },
      onForeignDb: this.cluster ? (cmd: StreamCommand, db: number) => this.foreignDb(db, cmd.args[1], cmd.name) : undefined,
      dropFlush: (cmd: StreamCommand, db: number) => this.sharedTargetFlush(cmd, db),
      admit: (cmd: StreamCommand) => this.admitStreamCommand(cmd),
      ...(this.shard === null ? {} : { rewrite: (cmd: StreamCommand) => this.shardStreamCommand(cmd, this.shard!) }),
      ...(this.scope.identity
        ? {}
        : {
            filter: new StreamFilter(this.scope, {
              onConflict: (cmd, db, reason) => this.filterConflict(cmd, db, reason),
              onExcluded: (cmd) => this.excludedCommand(cmd),
              keyPositions: (name) => this.commandTable?.keyPositions(name),
            }),
          }),
    });
    const units: StreamUnit[] = [];
    let chunk: Buffer | null = first;
    let read: Promise<Buffer | null> | null = null;
    for (;;) {
      if (chunk === null) {
        read ??= spool.read();
        const next = await this.untilWriterDown(read);
        if (next === undefined) {
          // The target writer failed while the source is quiet: recover now (bridge, or stop
          // on a fatal error), not at the next write, which may be a ping period away.
          await this.flushWriter();
          continue;
        }
        read = null;
        chunk = next;
      }
      if (chunk === null) break;
      const cmds = parser.push(chunk);
      chunk = null;
      for (const c of cmds) {
        if (this.shard !== null && isFlush(c) && !batcher.inTransaction && !this.scope.excludedCommands.has(c.name)) {
          // Everything before it is applied first, then the shard's own keys are deleted.
          const before = batcher.cut();
          if (before !== null) units.push(before);
          for (const u of units) await this.submitStreamUnit(u);
          units.length = 0;
          await this.flushWriter();
          await this.clearShardOnFlush(c);
        }
        batcher.push(c, units);
      }
      if (spool.bufferedBytes === 0) {
        const u = batcher.cut();
        if (u !== null) units.push(u);
      }
      for (const u of units) await this.submitStreamUnit(u);
      units.length = 0;
    }
    // The link ended: apply what was received up to the last complete command.
    const u = batcher.cut();
    if (u !== null) await this.submitStreamUnit(u);
    await this.flushWriter();
  }

  /**
   * A source FLUSHALL/FLUSHDB while other syncs write to the same target: relaying it would
   * delete their keys too. Stop (--on-error fail) or drop it, counted and logged (skip); the
   * keys of this source it should have deleted then stay on the target.
   */
  private sharedTargetFlush(cmd: StreamCommand, db: number): boolean {
    if (this.shard !== null) return this.shardFlush(cmd, db);
    if (this.otherSyncs.size === 0) return false;
    const what = `source ${cmd.name.toUpperCase()}${cmd.name === 'flushdb' ? ` in db ${db}` : ''} at offset ${cmd.offset}`;
    const others = [...this.otherSyncs.keys()].join(', ');
    if (this.opts.onError === 'fail') {
      throw new TargetError(`${what}: the target is shared with other syncs (${others}); relaying it would delete their keys (use --on-error skip to drop it and keep them)`);
    }
    this.errors++;
    this.log.error({ command: cmd.name, db, offset: cmd.offset, otherSyncs: others }, `${what} not relayed: the target is shared with other syncs; this source's keys it deleted stay on the target (--on-error skip)`);
    return true;
  }

  /**
   * A shard's stream command before the filters: a flush already done as the deletion of the
   * shard's keys is dropped; the rest goes through the migration guard: itself, rewritten (parsed
   * again for the filters), or null.
   */
  private shardStreamCommand(cmd: StreamCommand, shard: ShardRole): StreamCommand | null {
    if (cmd.offset === this.flushCleared) return null;
    const out = shard.guard.apply(cmd, shard.source.key);
    if (out === null || out === cmd.raw) return out === null ? null : cmd;
    // A parser ending at the command's offset gives the rewritten command the same offset.
    return new ReplicationStreamParser(Math.max(0, cmd.offset - out.length)).push(out)[0] ?? null;
  }

  /**
   * A FLUSHALL/FLUSHDB in one shard's stream (a cluster source flushes master by master): on
   * the target it means "delete this shard's keys", which is done here (the command itself is
   * then dropped). A crash before the next checkpoint replays it: deleting again is harmless.
   */
  private async clearShardOnFlush(cmd: StreamCommand): Promise<void> {
    this.flushCleared = cmd.offset;
    this.log.info({ command: cmd.name.toUpperCase(), offset: cmd.offset }, "source flush in this shard's stream: deleting this shard's keys from the target (not the other shards')");
    try {
      await this.clearOwnKeys();
    } catch (e) {
      if (e instanceof ReplicantError || e instanceof TargetCommandError) throw e;
      throw new Recoverable('target', `deleting the shard's keys for the source ${cmd.name.toUpperCase()} at offset ${cmd.offset} failed`, { cause: e });
    }
  }

  /** Offset of the last source flush done as clearShardOnFlush (its command is then dropped). */
  private flushCleared = -1;

  /**
   * A FLUSHALL/FLUSHDB of a shard inside a source transaction cannot be split from it: relayed,
   * it would delete the other shards' keys too. Stop (--on-error fail), or drop it (skip): the
   * keys this shard had stay on the target.
   */
  private shardFlush(cmd: StreamCommand, db: number): boolean {
    const what = `source ${cmd.name.toUpperCase()} at offset ${cmd.offset} of ${describeSource(this.sourceSpec)}`;
    if (this.opts.onError === 'fail') {
      throw new TargetError(`${what}: inside a transaction, relaying it would delete the keys of the other shards on the target (use --on-error skip to drop it, then delete the keys on the target yourself)`);
    }
    this.errors++;
    this.log.error({ command: cmd.name, db, offset: cmd.offset }, `${what} not relayed: it would delete the other shards' keys; this shard's keys it deleted stay on the target (--on-error skip)`);
    return true;
  }

  /** A key or command in a db other than 0, which a cluster target does not have. */
  private foreignDb(db: number, key: Buffer | undefined, command?: string): void {
    const what = `${command ? `${command.toUpperCase()} ` : ''}${key ? `key "${printableKey(key)}" ` : ''}in db ${db}`;
    if (this.opts.onError === 'fail') {
      throw new TargetError(`source ${what}: a cluster target has only db 0 (use --on-error skip to leave other dbs out)`);
    }
    this.errors++;
    if (this.snapshotDbOf !== null && key !== undefined && command === undefined) {
      this.lost.add(db, key, `db ${db} does not exist on a cluster target`);
      return;
    }
    this.skippedCommands++;
    if (this.errors <= 10 || this.errors % 10_000 === 0) this.log.warn({ db, count: this.errors }, `skipped source ${what}: a cluster target has only db 0`);
  }

  private async submitStreamUnit(u: StreamUnit): Promise<void> {
    const cp = this.currentCheckpoint('streaming', u.offset, u.dbAfter);
    // (A cluster has no SWAPDB, and its keys live on several nodes: the lease renewal re-takes it there.)
    // The target connection is in the mapped db after the unit.
    const targetDbAfter = this.scope.connectionDb(u.dbAfter);
    const fixup = u.reservedReset !== undefined && !this.cluster ? this.reservedFixup(u.reservedReset, targetDbAfter) : null;
    if (u.reservedReset !== undefined && this.cluster) this.markers.suspendUntil(u.offset);
    const ckpt = this.store.inlineCommands(cp, targetDbAfter);
    const inline = fixup !== null ? [...fixup, ...(ckpt ?? [])] : ckpt;
    let onExecReply: ((replies: unknown[]) => void) | undefined;
    if (ckpt !== null) {
      // The GETSET returns the checkpoint this unit replaces: it must be the one of the unit before.
      const expected = u.reservedReset?.kind === 'flush' ? null : this.cpExpected;
      this.cpExpected = u.offset;
      const fromEnd = ckpt.length - ckpt.findIndex((c) => c[0] === 'GETSET');
      if (expected !== null) onExecReply = (replies) => this.checkPreviousCheckpoint(replies[replies.length - fromEnd], expected, u.offset);
    }
    // One Buffer per unit: the writer holds units until the target replies, and a view per
    // command would keep hundreds of thousands of small objects (and the spool chunks) alive.
    let payload = u.commands.length > 1 ? [Buffer.concat(u.commands, u.bytes)] : u.commands;
    let count = u.commands.length;
    if (inline !== null) {
      payload = [...payload, encodeCommands(inline)];
      count += inline.length;
    } else if (count === 0) {
      // Only PINGs/REPLCONFs: still move the applied offset forward, in order.
      payload = [PING];
      count = 1;
    }
    this.db = u.dbAfter;
    const atomic = u.atomic || inline !== null;
    if (atomic && this.cluster && (this.writer as ClusterTargetWriter).atomicSlot({ payload, count }) === null) {
      // A source transaction over several slots cannot be applied atomically on a cluster.
      const what = `source transaction of ${count} commands completing offset ${u.offset} spans several cluster slots`;
      if (this.opts.onError === 'fail') throw new TargetError(`${what}: it cannot be applied atomically on a cluster target (use --on-error skip to skip such transactions)`);
      this.errors++;
      this.skippedCommands += count;
      this.log.error({ offset: u.offset, commands: count }, `${what}: skipped (--on-error skip)`);
      await this.submitRaw([PING], 1, false, u.offset, u.dbAfter);
      return;
    }
    await this.submitRaw(payload, count, atomic, u.offset, u.dbAfter, inline?.length ?? 0, onExecReply);
    if (this.serialUnits > 0) {
      this.serialUnits--;
      // (An aborted unit sent again is pending after the flush: wait for it too.)
      do await this.flushWriter();
      while (this.writer instanceof TargetWriter && this.writer.pendingUnits > 0);
    }
  }

  /**
   * Commands that put Replicant's keys back after a source FLUSHALL/FLUSHDB/SWAPDB relayed in
   * the same unit (they live in the target's dbs too): the lease and registration are written
   * again, and after a SWAPDB the keys that moved to the other db are moved back.
   */
  private reservedFixup(reset: NonNullable<StreamUnit['reservedReset']>, dbAfter: number): Arg[][] {
    const home = this.store.kind === 'target' ? this.store.db! : 0;
    const out: Arg[][] = [];
    if (reset.kind === 'swap') {
      const other = reset.a === home ? reset.b : reset.a;
      const keys = this.reservedKeys();
      // After the swap our keys are in `other`, and `home` holds whatever `other` had.
      out.push(['SELECT', home], ['DEL', ...keys], ['SELECT', other]);
      for (const k of keys) out.push(['MOVE', k, home]);
    }
    out.push(['SELECT', home], ['SET', this.identity.leaseKey, this.lease.currentValue(), 'PX', this.lease.ttlMs]);
    if (this.registration !== null) out.push(['HSET', REGISTRY_KEY, this.identity.id, JSON.stringify(this.registration)]);
    out.push(['SELECT', dbAfter]);
    return out;
  }

  /** Every key of every sync known to write to this target (ours, the registry, the others'). */
  private reservedKeys(): string[] {
    const keys = new Set([REGISTRY_KEY, LEGACY_CHECKPOINT_KEY, this.identity.leaseKey]);
    if (this.store.kind === 'target') keys.add(this.store.key!);
    for (const r of this.otherSyncs.values()) keys.add(r.checkpointKey).add(r.leaseKey);
    return [...keys];
  }

  /**
   * The previous checkpoint the target returned for the unit completing `offset`. Anything but
   * the one we wrote before means the target lost what it had applied (FLUSHALL, a restart
   * without persistence, a failover to an empty or older node): stop streaming and copy again.
   */
  private checkPreviousCheckpoint(prev: unknown, expected: number, offset: number): void {
    if (this.targetLost !== null) return;
    const cp = typeof prev === 'string' || Buffer.isBuffer(prev) ? parseCheckpoint(prev) : null;
    // Offsets only: they continue across a failover, where the replid changes under us.
    if (cp !== null && cp.offset === expected) return;
    // The unit before was given up after an abort (--on-error skip): its checkpoint was never written.
    if (cp !== null && cp.offset < expected && this.checkpointsGivenUp.delete(expected)) return;
    const found = cp === null ? 'no checkpoint' : `the checkpoint of offset ${cp.offset}`;
    this.markTargetLost(`applying offset ${offset} found ${found} where offset ${expected} was`, { expectedOffset: expected, found: cp?.offset ?? null });
  }

  /** Stop streaming and copy again (by --on-full-resync): the target no longer holds what was applied. */
  private markTargetLost(evidence: string, fields: Record<string, unknown> = {}): void {
    if (this.targetLost !== null) return;
    this.targetLost = `the target lost what it had applied: ${evidence} (flushed, restarted without persistence, or failed over to an empty or older node)`;
    this.log.error({ ...fields, onFullResync: this.opts.onFullResync }, `${this.targetLost}; copying again per --on-full-resync ${this.opts.onFullResync}`);
    this.resyncReason = this.targetLost;
    this.link?.close();
    this.spool?.end();
  }

  /**
   * With the checkpoint in a file (or none), no batch tells whether the target still holds the copy. On a
   * cluster, a marker key per master does (ClusterMarkers), checked at every lease renewal. On a
   * standalone target, the sync's lease and registry entry do (a relayed FLUSHALL puts them back in
   * the same transaction, so only a flush, an empty restart or failover removes them): checked when
   * the lease was found gone, since its expiry alone (a long target outage) leaves the entry.
   */
  private async checkTargetKept(leaseRetaken: boolean): Promise<void> {
    if (this.phase !== 'streaming' || this.targetLost !== null) return;
    if (this.cluster) {
      const w = this.writer;
      if (!(w instanceof ClusterTargetWriter)) return;
      const lost = await this.markers.check(w.masterSlots(), this.applied);
      if (lost !== null) this.markTargetLost(lost);
      return;
    }
    if (!leaseRetaken || this.store.kind === 'target') return;
    if (Number(await this.controlCall(['HEXISTS', REGISTRY_KEY, this.identity.id])) === 1) return;
    this.markTargetLost("Replicant's lease and registry entry on it are gone");
  }

  /**
   * Another sync (another --name) of the same source into this target would apply every write
   * a second time: refused when either copies the whole source; two partial syncs may split a
   * source between them (their selections must not overlap: warned).
   */
  private checkSameSourceTwice(source: string, runId: string | null): void {
    for (const [name, r] of this.otherSyncs) {
      if (r.source !== source && (runId === null || r.sourceRunId !== runId)) continue;
      const mine = this.scope.fingerprint;
      if (r.filter === undefined || mine === '') {
        throw new UsageError(
          `sync "${name}" already copies the source ${r.source} into this target${r.filter === undefined ? '' : ' (a partial sync)'}: a second sync of it would apply every write twice. ` +
            `Use that sync's --name to resume it, or, if it is finished, forget it with HDEL ${REGISTRY_KEY} ${name}`,
        );
      }
      if (!this.sameSourceWarned) {
        this.sameSourceWarned = true;
        this.log.warn({ other: name, otherFilter: r.filter, filter: mine }, `sync "${name}" copies other keys of the same source into this target: make sure the two selections do not overlap (a key in both would get every write twice)`);
      }
    }
  }

  /**
   * Before PSYNC (on the replication connection): refuse a source that is the target itself or
   * that the target feeds (a loop), register this sync on the target, and when the checkpoint
   * cannot be resumed, say why and apply the full-resync policy before the source forks.
   */
  private async beforePsync(ctx: BeforePsync, cp: Checkpoint | null): Promise<void> {
    const id = ctx.identity;
    this.sourceIdentity = id;
    const target = this.writer!.info;
    const before = this.registeredAs;
    const source = describeSource(this.sourceSpec);
    // The same name for another source would adopt that source's checkpoint (and flush its copy).
    if (before !== null && before.source !== source && (id === null || before.sourceRunId !== id.runId)) {
      throw new UsageError(`sync "${this.identity.id}" on the target belongs to the source ${before.source}, not ${source}: give this sync another --name (or, if it is the same data at a new address, forget the old entry with HDEL ${REGISTRY_KEY} ${this.identity.id})`);
    }
    this.checkSameSourceTwice(source, id?.runId ?? null);
    if (id !== null && target.runId !== '') {
      if (id.runId === target.runId) {
        throw new UsageError(`the source ${describeSource(this.sourceSpec)} and the target ${endpointLabel(this.targetEp)} are the same server (run_id ${id.runId}): refusing to sync a server into itself; check --source and --target`);
      }
      // One replication history: the source is a (native) replica of the target, directly or through others.
      if (target.replid !== '' && id.replid === target.replid) {
        throw new UsageError(`replication loop: the source ${describeSource(this.sourceSpec)} replicates the target ${endpointLabel(this.targetEp)} (same replication id ${id.replid}): what Replicant writes would come back to it; check --source and --target`);
      }
      const upstream = new Set([id.runId]);
      const reg = await ctx.call(['HGETALL', REGISTRY_KEY]);
      if (!(reg instanceof Error)) {
        for (const r of parseRegistry(reg).values()) {
          if (r.sourceRunId !== null) upstream.add(r.sourceRunId);
          for (const u of r.upstream) upstream.add(u);
        }
      }
      if (upstream.has(target.runId)) {
        throw new UsageError(`replication loop: the source ${describeSource(this.sourceSpec)} is itself fed from the target ${endpointLabel(this.targetEp)} (run_id ${target.runId}) by another Replicant sync; refusing to copy it back`);
      }
      upstream.delete(id.runId);
      if (this.existingCheckPending) {
        this.existingCheckPending = false;
        await this.checkExistingKeys();
      }
      this.registration = { source: describeSource(this.sourceSpec), sourceRunId: id.runId, upstream: [...upstream], checkpointKey: this.store.kind === 'target' ? this.store.key! : '', leaseKey: this.identity.leaseKey, since: Date.now(), ...this.filterField() };
    } else {
      if (this.existingCheckPending) {
        this.existingCheckPending = false;
        await this.checkExistingKeys();
      }
      this.registration ??= { source: describeSource(this.sourceSpec), sourceRunId: null, upstream: [], checkpointKey: this.store.kind === 'target' ? this.store.key! : '', leaseKey: this.identity.leaseKey, since: Date.now(), ...this.filterField() };
    }
    await this.controlCall(['HSET', REGISTRY_KEY, this.identity.id, JSON.stringify(this.registration)]);
    if (cp !== null && id !== null) {
      const why = fullResyncReason(id, cp.replid, cp.offset);
      if (why !== null) {
        this.resyncReason = why;
        // Refuse now rather than after the source has forked and sent its snapshot.
        await this.fullResyncPlan(why, cp.cleanStart);
      }
    }
  }

  /**
   * What a full resync may do to the target. `flush` empties it only when it holds nothing but
   * this sync's data (it was empty or flushed when the sync began, and no other sync writes to
   * it); otherwise the resync is refused (exit 7) unless the user chose `replace` or `flush-all`.
   */
  private async fullResyncPlan(reason: string, cleanStart: boolean): Promise<'flush' | 'replace'> {
    const policy = this.opts.onFullResync;
    if (policy === 'fail') throw new ReplicantError('RESYNC', `a full resync is needed (${reason}) and --on-full-resync is fail`, ExitCode.RESYNC_REFUSED);
    if (policy === 'replace') return 'replace';
    if (policy === 'flush-all') return 'flush';
    const foreign: string[] = [];
    if (this.otherSyncs.size > 0) foreign.push(`other syncs write to it: ${[...this.otherSyncs.keys()].join(', ')}`);
    if (!cleanStart) foreign.push('it held keys when this sync started (--existing replace)');
    if (foreign.length === 0) return 'flush';
    throw new ReplicantError(
      'RESYNC',
      `a full resync is needed (${reason}), but the target holds keys this sync did not write (${foreign.join('; ')}): flushing it would destroy them. ` +
        'Use --on-full-resync replace to copy again over them without flushing (keys deleted on the source meanwhile stay on the target), or --on-full-resync flush-all to empty the target anyway' +
        (this.otherSyncs.size > 0 ? `. A sync that is finished and whose keys may go can be forgotten with HDEL ${REGISTRY_KEY} <name> on the target` : ''),
      ExitCode.RESYNC_REFUSED,
    );
  }

  private async fullResync(reason: string, cleanStart: boolean): Promise<void> {
    const plan = await this.fullResyncPlan(reason, cleanStart);
    if (plan === 'flush') {
      this.log.warn({ reason, policy: this.opts.onFullResync }, `full resync: ${reason}; ${this.shard !== null ? "deleting the keys of this shard's slots from the target" : 'flushing the target'} and copying again`);
      await this.clearOwnKeys();
      this.cleanStart = true;
    } else {
      this.log.warn({ reason, policy: this.opts.onFullResync }, `full resync: ${reason}; copying again over the target's keys (REPLACE, no flush)`);
      this.cleanStart = false;
    }
  }

  /** The other syncs writing to this target (a sync added later is seen within a lease period). */
  private async readRegistry(): Promise<void> {
    const all = parseRegistry(await this.controlCall(['HGETALL', REGISTRY_KEY]));
    this.registeredAs = all.get(this.identity.id) ?? null;
    all.delete(this.identity.id);
    if (this.shard !== null) for (const id of [...all.keys()]) if (this.shard.isSibling(id)) all.delete(id);
    const added = [...all.keys()].filter((k) => !this.otherSyncs.has(k));
    if (added.length > 0 && this.phase !== 'connecting') this.log.info({ otherSyncs: added }, 'another sync now writes to this target too: its keys are protected from flushes');
    this.otherSyncs = all;
  }

  private onLeaseLost(e: Error): void {
    if (this.leaseLost !== null) return;
    this.leaseLost = e;
    this.log.error({ err: e.message }, 'lost ownership of this sync: stopping at once');
    // Nothing more may reach the target: drop the connection with whatever is queued on it.
    this.writer?.destroy();
    this.link?.close();
    this.spool?.end();
    this.stopResolve?.();
  }

  /**
   * A checkpoint made with other filters: resuming would leave keys the new filters exclude (or
   * lack keys they include). Refused, unless --accept-filter-change asks for a new full sync.
   */
  private checkFilterChange(cp: Checkpoint): Checkpoint {
    const before = cp.filter ?? '';
    const now = this.scope.fingerprint;
    if (before === now) return cp;
    const describe = (f: string) => (f === '' ? 'none (a full copy)' : f);
    const what = `the checkpoint of sync "${this.identity.id}" was made with other filters (then: ${describe(before)}; now: ${describe(now)})`;
    if (!this.acceptFilterChange) {
      throw new UsageError(`${what}: resuming would leave the target with keys of the old selection or without keys of the new one. Run with the old filters, or give --accept-filter-change to copy again (a full sync; the target is flushed when it holds only this sync's keys); for a second sync of other keys of this source, give it its own --name`);
    }
    this.log.warn({ before: describe(before), now: describe(now) }, `${what}: copying again (--accept-filter-change)`);
    // As an interrupted full sync: flushed first when the target holds only this sync's keys.
    return { ...cp, state: 'full-sync' };
  }

  private filterField(): { filter?: string } {
    return this.scope.fingerprint === '' ? {} : { filter: this.scope.fingerprint };
  }

  /** A stream command the filters cannot reduce exactly (see stream-filter): stop, or skip it counted. */
  private filterConflict(cmd: StreamCommand, db: number, reason: string): void {
    const name = cmd.name.toUpperCase();
    const what = `source command ${name} in db ${db} at offset ${cmd.offset}`;
    if (this.opts.onError === 'fail') {
      throw new ReplicantError('FILTER', `${what} cannot be applied exactly to the partial sync's keys: ${reason}; use --on-error skip to skip such commands (counted), or widen the filters`, ExitCode.DATA);
    }
    this.errors++;
    this.skipped({ command: name, db, offset: cmd.offset, reason }, 'source command that the partial sync cannot apply exactly: skipped (--on-error skip)');
  }

  /** A snapshot key whose --rename-prefix name would collide with a renamed key. */
  private renameCollision(db: number, key: Buffer): void {
    const why = 'the key already has the new prefix of --rename-prefix: it would collide with a renamed key';
    if (this.opts.onError === 'fail') throw new ReplicantError('FILTER', `source key "${printableKey(key)}" in db ${db}: ${why}; use --on-error skip to leave such keys out (listed in the report)`, ExitCode.DATA);
    this.errors++;
    this.lost.add(db, key, why);
  }

  private excludedCommand(cmd: StreamCommand): void {
    const n = (this.excluded.get(cmd.name) ?? 0) + 1;
    this.excluded.set(cmd.name, n);
    if (n === 1) this.log.info({ command: cmd.name.toUpperCase(), offset: cmd.offset }, 'source command not relayed (--exclude-command; further ones not logged)');
  }

  /**
   * Whether the target can run a stream command, by its command table: a command it does not
   * know (renamed, disabled, from a module it lacks) or with a wrong number of arguments would be
   * refused while queuing and abort the whole unit. Under skip it is left out here (counted and
   * logged); under fail the sync stops naming it.
   */
  private admitStreamCommand(cmd: StreamCommand): boolean {
    const table = this.commandTable;
    if (table === null) return true;
    const refusal = table.check(cmd.name, cmd.argCount, cmd);
    if (refusal === null) return true;
    const name = cmd.name.toUpperCase();
    const k = cmd.argCount > 1 ? cmd.arg(1) : undefined;
    const key = k === undefined ? undefined : printableKey(k);
    const why =
      refusal.kind === 'unknown'
        ? `the target does not know ${name} (renamed or disabled there, or from a module it lacks)`
        : `the target's ${refusal.name.toUpperCase()} takes ${arityText(refusal.arity)} arguments, the source sent ${cmd.argCount}`;
    const what = `source command ${name}${key === undefined ? '' : ` (key ${JSON.stringify(key)})`} at offset ${cmd.offset}`;
    if (this.opts.onError === 'fail') {
      throw new TargetError(`target ${endpointLabel(this.targetEp)} cannot run ${what}: ${why}; make the command available on the target, or use --on-error skip to leave such commands out`);
    }
    this.errors++;
    this.skipped({ command: name, key, offset: cmd.offset, reason: why }, 'source command the target cannot run: skipped (--on-error skip)');
    return false;
  }

  /** One stream command left out under --on-error skip: counted, and logged (bounded). */
  private skipped(fields: Record<string, unknown>, msg: string): void {
    this.skippedCommands++;
    if (this.skippedCommands <= SKIP_WARN_LIMIT) this.log.warn({ ...fields, skippedCommands: this.skippedCommands }, this.skippedCommands === SKIP_WARN_LIMIT ? `${msg} (further ones logged at debug level)` : msg);
    else this.log.debug(fields, msg);
  }

  /**
   * Hand a unit to the writer. Stream units (those with an offset) stay in `pending` until
   * applied, so a lost target connection is bridged by resending them (see bridgeTargetOutage).
   */
  private async submitRaw(payload: Buffer[], count: number, atomic: boolean, offset: number | undefined, db = this.db, inline = 0, onExecReply?: (replies: unknown[]) => void): Promise<void> {
    if (this.leaseLost !== null) throw this.leaseLost;
    if (offset !== undefined) this.pending.push({ offset, db, payload, count, atomic, inline });
    try {
      const writer = this.writer!;
      if (!writer.submit({ payload, count, atomic, offset, onExecReply })) await writer.waitDrain();
    } catch (e) {
      if (offset === undefined || !this.canBridge(e)) this.throwWriterFailure(e);
      // The unit is in `pending`: the bridge resends it if the target does not have it.
      await this.bridgeTargetOutage();
    }
  }

  private onApplied(offset: number): void {
    let db = this.db;
    let n = 0;
    while (this.pending.length > 0 && this.pending[0]!.offset <= offset) {
      const p = this.pending.shift()!;
      db = p.db;
      n += p.count;
    }
    this.commandsApplied += n;
    this.opRate.mark(this.commandsApplied);
    this.applied = offset;
    this.appliedDb = db;
    this.link?.setAppliedOffset(offset);
    if (this.getAckPending) {
      this.getAckPending = false;
      this.link?.ackNow();
    }
    this.store.applied(this.currentCheckpoint('streaming', offset, db));
    this.emit('applied', offset);
  }

  // ------------------------------------------------------------ target

  private async connectTarget(): Promise<void> {
    this.writer = await this.openWriter();
    const i = this.writer.info;
    this.log.info({ target: endpointLabel(this.targetEp), version: i.version, rdbVersion: i.rdbVersion, keys: i.dbsize, cluster: i.cluster }, 'target connected');
    if (this.cluster) this.log.info({ masters: (this.writer as ClusterTargetWriter).masters }, 'target is a cluster: commands are routed by slot');
  }

  private async openWriter(): Promise<AnyTargetWriter> {
    const ep = { host: this.targetEp.host, port: this.targetEp.port, username: this.targetEp.username, password: this.targetEp.password, tls: this.targetEp.tls };
    const opts = { maxInflightBytes: this.opts.maxInflightBytes, onError: this.opts.onError, logger: this.log, clientName: this.lease.clientName };
    let writer: AnyTargetWriter;
    try {
      if (this.cluster) {
        writer = await ClusterTargetWriter.connect(ep, opts);
      } else {
        // Under skip, an aborted stream unit is taken back and applied without its rejected commands.
        const hooks = this.opts.onError === 'skip' ? { onExecAbort: (e: TargetExecAbortError) => this.onUnitAborted(e) } : {};
        writer = await TargetWriter.connect(ep, opts, hooks);
        if (writer.info.cluster) {
          writer.destroy();
          this.cluster = true;
          writer = await ClusterTargetWriter.connect(ep, opts);
        }
      }
    } catch (e) {
      if (e instanceof ReplicantError) throw e;
      throw new TargetError(`target ${endpointLabel(this.targetEp)}: ${(e as Error).message}`, { cause: e });
    }
    writer.on('applied', (offset: number) => this.onApplied(offset));
    writer.on('commandError', (e: TargetCommandError) => this.onCommandError(e));
    writer.on('error', (e: Error) => this.onWriterError(e));
    this.commandTable = await fetchCommandTable((args) => writer.call(args));
    if (this.commandTable === null) this.log.info('COMMAND is not available on the target: stream commands are not checked against its command table');
    return writer;
  }

  private writerFailure: Error | null = null;
  /**
   * A second connection for the lease and the registry: it stays in db 0 and never waits
   * behind the data pipeline. It carries the sync's client name too, so fencing kills it.
   */
  private control: AnyTargetWriter | null = null;

  private async controlWriter(): Promise<AnyTargetWriter> {
    if (this.control !== null) return this.control;
    const ep = { host: this.targetEp.host, port: this.targetEp.port, username: this.targetEp.username, password: this.targetEp.password, tls: this.targetEp.tls };
    const opts = { onError: 'fail' as const, logger: this.log, clientName: this.lease.clientName };
    let w: AnyTargetWriter;
    try {
      w = this.cluster ? await ClusterTargetWriter.connect(ep, opts) : await TargetWriter.connect(ep, opts);
    } catch (e) {
      if (e instanceof ReplicantError) throw e;
      throw new TargetError(`target ${endpointLabel(this.targetEp)}: ${(e as Error).message}`, { cause: e });
    }
    w.on('error', () => {
      if (this.control === w) this.control = null;
      w.destroy();
    });
    this.control = w;
    return w;
  }

  private async controlCall(args: readonly Arg[]): Promise<unknown> {
    const w = await this.controlWriter();
    try {
      return await w.call(args);
    } catch (e) {
      // A lost connection is opened again by the next call.
      if (!(e instanceof TargetCommandError) && this.control === w) {
        this.control = null;
        w.destroy();
      }
      throw e;
    }
  }

  /** Set while streamLoop waits for the source: wakes it up when the writer fails. */
  private wakeOnWriterDown: (() => void) | null = null;

  /** `read`'s chunk, or undefined as soon as the writer has failed (`read` is then still pending). */
  private async untilWriterDown(read: Promise<Buffer | null>): Promise<Buffer | null | undefined> {
    if (this.writerFailure !== null) return undefined;
    try {
      return await Promise.race([read, new Promise<undefined>((resolve) => (this.wakeOnWriterDown = () => resolve(undefined)))]);
    } finally {
      this.wakeOnWriterDown = null;
    }
  }

  /** A command the target rejected under --on-error skip (the writer logged it). */
  private onCommandError(e: TargetCommandError): void {
    if (this.snapshotDbOf !== null) this.lost.rejected(e, this.snapshotDbOf(e.payload) ?? 0);
    else this.skippedCommands++;
  }

  private onWriterError(e: Error): void {
    this.writerFailure = e;
    this.wakeOnWriterDown?.();
    if (e instanceof TargetCommandError) {
      // A rejected write under --on-error fail (or an abort skip cannot recover): stop reading; run() reports it.
      this.log.error({ err: (this.fatalAbort ?? e).message }, 'target rejected a write: stopping');
      this.link?.close();
      this.spool?.end();
    } else {
      this.log.warn({ err: e.message }, 'target connection failed');
    }
  }

  /** A lost target connection while streaming is bridged in place; anything else is not. */
  private canBridge(e: unknown): boolean {
    const err = this.writerFailure ?? e;
    return this.leaseLost === null && this.phase === 'streaming' && !(err instanceof TargetCommandError) && !this.stopping;
  }

  /**
   * The target connection dropped while streaming. The source link stays up (its bytes keep
   * going to the spool); reconnect to the target with backoff, ask it where it stands (the
   * checkpoint it holds is exact: it was written in the same transaction as the data), and
   * resend the units it does not have, in order.
   */
  private async bridgeTargetOutage(): Promise<void> {
    const cause = this.writerFailure;
    this.log.warn(
      { err: cause?.message, appliedOffset: this.applied, pendingUnits: this.pending.length },
      'target lost while streaming: still reading the source into the spool; reconnecting to the target, then resending from its checkpoint',
    );
    this.setPhase('reconnecting', { side: 'target' });
    await this.reconnectTarget();
    if (this.writer === null) throw new StopRequested();
    let from = this.applied ?? 0;
    let db = this.appliedDb;
    if (this.store.kind === 'target') {
      const cp = await this.store.load();
      // `pending` holds exactly the units after `from`: a checkpoint behind it means lost writes.
      if (cp === null || cp.state !== 'streaming' || cp.offset < from) {
        // The target went back in time (restarted without its latest writes): the spool no
        // longer has those bytes, so resume from the source's backlog instead.
        this.applied = null;
        this.pending = [];
        throw new Recoverable('target', `target came back at ${cp ? `offset ${cp.offset}` : 'no checkpoint'}, behind the last applied offset ${from}`);
      }
      from = cp.offset;
      db = cp.db;
      this.cpExpected = cp.offset;
    }
    const resend = this.pending.filter((u) => u.offset > from);
    this.pending = [];
    if (resend.length > 0) this.cpExpected = resend[resend.length - 1]!.offset;
    this.log.info({ from, db, units: resend.length }, 'target reconnected: resending what it does not have');
    this.setPhase('streaming', { resumedFrom: from });
    const writer = this.writer;
    if (!this.cluster) writer.submit({ payload: [encodeCommand(['SELECT', this.scope.connectionDb(db)])], count: 1 });
    for (const u of resend) {
      this.pending.push(u);
      if (!writer.submit({ payload: u.payload, count: u.count, atomic: u.atomic, offset: u.offset })) {
        await writer.waitDrain().catch((e: unknown) => {
          if (!this.canBridge(e)) this.throwWriterFailure(e);
        });
      }
    }
  }

  /**
   * A stream unit came back -EXECABORT under --on-error skip (TargetWriter hook; `rejected`: the
   * commands the target refused while queuing; nothing of the unit was applied). The connection
   * stays up, so the outcome of every later unit is known too. Units are pipelined:
   *  - no later unit was sent yet: the unit is sent again at once without the rejected commands,
   *    ahead of anything else. Exact: only the rejected commands are lost.
   *  - later units are on the wire (and are applied): the unit's other commands can no longer be
   *    applied in order (later writes to the same keys are on the target already), so they are
   *    skipped too, counted and logged. One unit at a time is sent for a while after an abort
   *    (SERIAL_AFTER_ABORT), so that the next abort is the exact case.
   * Returns false (the abort is then fatal) when the checkpoint write itself was rejected (e.g.
   * OOM refuses every write): skipping it would lose track of what is applied.
   */
  private onUnitAborted(abort: TargetExecAbortError): boolean {
    const writer = this.writer;
    if (!(writer instanceof TargetWriter)) return false;
    const at = this.pending.findIndex((u) => u.offset === abort.offset);
    const u = at < 0 ? undefined : this.pending[at]!;
    const where = `the unit completing offset ${abort.offset}`;
    // The rejected commands' indexes are positions in the payload they were read back from.
    if (u === undefined || abort.rejected.some((r) => r.payload !== u.payload)) return false;
    const own = abort.rejected.find((r) => r.index >= u.count - u.inline);
    if (own !== undefined) {
      this.fatalAbort = new TargetError(
        `target ${endpointLabel(this.targetEp)} rejected the checkpoint write of ${where} (${own.command}: ${own.reply}); it cannot be skipped, ` +
          'so nothing from this offset on can be applied: fix the target (e.g. raise maxmemory or free memory for OOM, grant the ACL) and run again',
        { cause: abort },
      );
      return false;
    }
    const rebuilt = withoutCommands(u.payload, new Set(abort.rejected.map((r) => r.index)));
    if (rebuilt === null) return false;
    for (const r of abort.rejected) {
      this.skipped({ command: r.command, key: r.key, offset: u.offset, reply: r.reply }, 'target rejected a stream command while queuing it: skipped (--on-error skip)');
    }
    this.serialUnits = SERIAL_AFTER_ABORT;
    if (writer.pendingUnits === 0) {
      // A unit left with no command still carries its offset forward.
      const again: PendingUnit = rebuilt.count === 0 ? { ...u, payload: [PING], count: 1 } : { ...u, payload: rebuilt.payload, count: rebuilt.count };
      this.pending[at] = again;
      writer.submit({ payload: again.payload, count: again.count, atomic: again.atomic, offset: again.offset });
      return true;
    }
    if (u.db !== this.appliedDb) {
      // Its SELECT did not run, so the units after it ran in the wrong db: that cannot be skipped.
      this.fatalAbort = new TargetError(
        `${abort.message}; the unit switched the db (to ${u.db}) and later units were applied after it in the wrong db: stopping ` +
          '(fix what the target rejects and run again: the sync resumes from its checkpoint)',
        { cause: abort },
      );
      return false;
    }
    // Commands of the source that are lost with it (its SELECTs and our checkpoint write are not).
    const lost = describeCommands(rebuilt.payload, Infinity, u.inline).filter((c) => c.command !== 'SELECT');
    const others = lost.length;
    if (others > 0) {
      const first = lost.slice(0, GIVEN_UP_LOGGED);
      this.skippedCommands += others;
      this.log.warn(
        { offset: u.offset, commands: others, first, unitsInFlight: writer.pendingUnits, skippedCommands: this.skippedCommands },
        `the target aborted ${where} after later units were sent: its ${others} other commands can no longer be applied in order and are skipped too (--on-error skip)`,
      );
    }
    // Its offset is covered by the next unit applied, whose GETSET then finds the checkpoint before it.
    this.checkpointsGivenUp.add(u.offset);
    return true;
  }

  private async reconnectTarget(): Promise<void> {
    this.writer?.destroy();
    this.writer = null;
    this.writerFailure = null;
    for (let delay = this.opts.reconnectMinMs; !this.stopping; delay = Math.min(delay * 2, this.opts.reconnectMaxMs)) {
      try {
        this.writer = await this.openWriter();
      } catch (e) {
        this.log.warn({ err: (e as Error).message, retryInMs: delay }, 'target unreachable; retrying');
        await this.sleep(delay);
        continue;
      }
      // A new connection applies nothing before the lease is confirmed ours (LeaseError otherwise).
      try {
        await this.lease.renew((a) => this.controlCall(a));
        return;
      } catch (e) {
        if (e instanceof LeaseError) {
          this.onLeaseLost(e);
          throw e;
        }
        this.log.warn({ err: (e as Error).message, retryInMs: delay }, 'target failed right after reconnecting; retrying');
        this.writer?.destroy();
        this.writer = null;
        await this.sleep(delay);
      }
    }
  }

  private async flushWriter(): Promise<void> {
    for (;;) {
      try {
        await this.writer!.flush();
        return;
      } catch (e) {
        if (this.pending.length === 0 || !this.canBridge(e)) this.throwWriterFailure(e);
        await this.bridgeTargetOutage();
      }
    }
  }

  /**
   * A writer failure is either a command the target rejected under --on-error fail (fatal:
   * retrying would fail again) or a lost connection (recoverable: reconnect and resume from
   * the checkpoint the target holds).
   */
  private throwWriterFailure(e: unknown): never {
    if (this.leaseLost !== null) throw this.leaseLost;
    if (this.fatalAbort !== null) throw this.fatalAbort;
    const err = this.writerFailure ?? (e as Error);
    if (err instanceof TargetCommandError && this.opts.onError === 'fail') {
      throw new TargetError(`${err.message}; stopping (--on-error fail): fix the target (memory, ACL, renamed commands) and run again, or use --on-error skip to leave rejected commands out`, { cause: err });
    }
    if (err instanceof TargetCommandError) throw err;
    throw new Recoverable('target', `target ${this.targetEp.host}:${this.targetEp.port} failed: ${err.message}`, { cause: err });
  }

  /** What a full resync clears: the whole target, or for a cluster shard the keys of its slots. */
  private async clearOwnKeys(): Promise<void> {
    if (this.shard === null) return this.flushTarget();
    const w = this.writer!;
    const ranges = this.shard.source.slots();
    const ours = new Uint8Array(SLOT_COUNT);
    for (const [lo, hi] of ranges) ours.fill(1, lo, hi + 1);
    // A standalone target holds the shard's keys in the db source db 0 maps to.
    if (!this.cluster) await w.call(['SELECT', this.scope.targetDb(0)]);
    let deleted = 0;
    for (const call of w.nodeCalls()) {
      let cursor = '0';
      do {
        const [next, batch] = (await call(['SCAN', cursor, 'COUNT', 1000])) as [Buffer | string, (Buffer | string)[]];
        cursor = String(next);
        const doomed = batch
          .map((k) => (Buffer.isBuffer(k) ? k : Buffer.from(k, 'latin1')))
          .filter((k) => {
            if (isReservedKey(k)) return false;
            // The slot of its source name: a renamed key lives elsewhere than its source slot.
            const src = this.scope.sourceName(k);
            return src !== null && ours[keySlot(src)] === 1;
          });
        // A cluster node refuses a multi-key UNLINK across slots: one key per command there.
        if (this.cluster) deleted += (await Promise.all(doomed.map((k) => call(['UNLINK', k])))).reduce((t: number, n) => t + Number(n), 0);
        else if (doomed.length > 0) deleted += Number(await call(['UNLINK', ...doomed]));
      } while (cursor !== '0');
    }
    if (!this.cluster) await w.call(['SELECT', this.scope.connectionDb(this.db)]);
    this.log.warn({ deleted, slots: ranges.map(([lo, hi]) => `${lo}-${hi}`).join(',') }, "deleted the keys of this shard's slots from the target");
  }

  /** FLUSHALL, then put back what makes this sync safe (its lease and registration). */
  private async flushTarget(): Promise<void> {
    const w = this.writer!;
    await w.call(['FLUSHALL']);
    await this.lease.renew((a) => this.controlCall(a));
    if (this.registration !== null) await this.controlCall(['HSET', REGISTRY_KEY, this.identity.id, JSON.stringify(this.registration)]);
  }

  /** Refuse to overwrite a target that holds data, unless told to (--existing). */
  private async checkExistingKeys(): Promise<void> {
    const w = this.writer!;
    // Counted now, not at connect: the lease key was written since.
    let keys = 0;
    for (const call of w.nodeCalls()) keys += keyspaceTotal(parseInfo(String(await call(['INFO', 'keyspace']))));
    let legacy = false;
    if (keys > 0) {
      // Replicant's own keys (lease, registry, checkpoints of any sync) do not count.
      const home = this.store.kind === 'target' ? this.store.db! : 0;
      if (!this.cluster) await w.call(['SELECT', home]);
      for (const k of this.reservedKeys()) {
        const n = Number(await w.call(['EXISTS', k]));
        keys -= n;
        if (k === LEGACY_CHECKPOINT_KEY && n > 0) legacy = true;
      }
      if (!this.cluster) await w.call(['SELECT', 0]);
    }
    if (legacy) {
      this.log.warn(`the target holds a checkpoint of an earlier Replicant version ("${LEGACY_CHECKPOINT_KEY}"): to resume that sync, run with --checkpoint target:${LEGACY_CHECKPOINT_KEY}`);
    }
    if (keys <= 0) {
      this.cleanStart = true;
      return;
    }
    switch (this.opts.existing) {
      case 'fail':
        throw new TargetError(`target ${this.targetEp.host}:${this.targetEp.port} already holds ${keys} keys; refusing to write over them (use --existing replace to overwrite keys the source has, or --existing flush to empty the target first)`);
      case 'flush':
        if (this.otherSyncs.size > 0) {
          throw new TargetError(`--existing flush: other syncs write to the target ${endpointLabel(this.targetEp)} (${[...this.otherSyncs.keys()].join(', ')}); flushing would delete their keys. Use --existing replace`);
        }
        this.log.warn({ keys }, 'target holds keys: flushing it first (--existing flush)');
        await this.flushTarget();
        this.cleanStart = true;
        return;
      case 'replace':
        this.log.warn({ keys }, 'target holds keys: keys the source has will be replaced, others kept (--existing replace)');
        this.cleanStart = false;
        return;
    }
  }

  private createStore(): CheckpointStore {
    if (this.checkpointSpec === undefined) {
      // One transaction cannot cover a batch spread over cluster nodes: keep the checkpoint in a file there.
      this.checkpointSpec = this.cluster
        ? { kind: 'file', path: join(this.opts.spoolDir ?? homedir(), `.replicant-checkpoint-${this.targetEp.host}-${this.targetEp.port}-${this.identity.id.replace(/[^A-Za-z0-9._-]/g, '_')}.json`) }
        : { kind: 'target', db: 0 };
    }
    const spec = this.checkpointSpec;
    if (spec.kind === 'target' && this.cluster) {
      throw new UsageError(`--checkpoint target: the target ${endpointLabel(this.targetEp)} is a cluster, where one transaction cannot cover a batch; use --checkpoint file:PATH`);
    }
    if (spec.kind === 'none') return new NoCheckpointStore();
    if (spec.kind === 'file') return new FileCheckpointStore(spec.path);
    const key = spec.key ?? this.identity.checkpointKey;
    return new TargetCheckpointStore(
      {
        runAtomic: async (commands: Arg[][]) => {
          let replies: unknown[] = [];
          await this.submitRaw([encodeCommands(commands)], commands.length, true, undefined, this.db, 0, (r) => (replies = r));
          await this.flushWriter();
          return replies;
        },
        get: async (db: number, key: string) => {
          const w = this.writer!;
          await w.call(['SELECT', db]);
          const v = (await w.call(['GET', key])) as Buffer | string | null;
          await w.call(['SELECT', this.scope.connectionDb(this.db)]);
          return v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v);
        },
      },
      key,
      spec.db,
    );
  }

  // ------------------------------------------------------------ helpers

  private currentCheckpoint(state: Checkpoint['state'], offset: number, db: number): Checkpoint {
    const cp: Checkpoint = { replid: this.replid ?? '?', offset, db, state, cleanStart: this.cleanStart, at: Date.now() };
    if (this.sourceIdentity !== null) cp.sourceRunId = this.sourceIdentity.runId;
    if (this.scope.fingerprint !== '') cp.filter = this.scope.fingerprint;
    cp.sync = this.identity.id;
    cp.target = endpointLabel(this.targetEp);
    return cp;
  }

  /**
   * A checkpoint written by another sync (a shared --checkpoint file or key), or a checkpoint file
   * written for another target, describes nothing this sync wrote: resuming from it would skip the
   * copy, and a full resync "of a clean start" would flush a target it never wrote. Refused.
   */
  private checkOwner(cp: Checkpoint): void {
    if (cp.sync !== undefined && cp.sync !== this.identity.id) {
      throw new UsageError(`the checkpoint in ${this.store.where} belongs to sync "${cp.sync}", not to this one ("${this.identity.id}"): give each sync its own --checkpoint (and --name)`);
    }
    const here = endpointLabel(this.targetEp);
    if (this.store.kind === 'file' && cp.target !== undefined && cp.target !== here) {
      throw new UsageError(`the checkpoint in ${this.store.where} was written for the target ${cp.target}, not ${here}: give this sync its own --checkpoint file (or delete that one to copy again)`);
    }
  }

  private receivedOffset(): number | null {
    if (this.link === null || this.phase === 'full-sync' || this.phase === 'connecting') return this.applied;
    return this.streamBase + Math.max(0, this.link.bytesReceived - this.streamBytesBefore);
  }

  private sample(): void {
    const r = this.receivedOffset();
    if (r === null) return;
    const last = this.receivedSamples[this.receivedSamples.length - 1];
    if (last === undefined || last.offset !== r) this.receivedSamples.push({ offset: r, t: Date.now() });
    const applied = this.applied ?? 0;
    while (this.receivedSamples.length > 1 && this.receivedSamples[1]!.offset <= applied) this.receivedSamples.shift();
    if (this.receivedSamples.length > 10_000) this.receivedSamples.splice(0, 5_000);
  }

  private setPhase(phase: Phase, info: Record<string, unknown>): void {
    if (this.phase === phase && phase !== 'reconnecting') return;
    // Once stopping, only the final phase is reported.
    if (this.stopping && phase !== 'stopping' && phase !== 'stopped') return;
    this.phase = phase;
    this.log.info({ phase, ...info }, `phase: ${phase}`);
    this.emit('phase', phase, info);
  }

  private async teardownLink(): Promise<void> {
    this.link?.close();
    this.link = null;
    if (this.spool) {
      this.spool.end();
      await this.spool.close();
      this.spool = null;
    }
  }

  private async finishGracefully(): Promise<void> {
    if (this.writer && this.writerFailure === null && !this.snapshotUnfinished) {
      try {
        await this.writer.flush();
        await this.store.flush();
        await this.lease.release((a) => this.controlCall(a));
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'could not flush the target on stop');
      }
    }
    this.log.info({ replid: this.replid, appliedOffset: this.applied, db: this.db }, 'stopped');
  }

  /** Sleep, cut short by stop(). */
  private sleep(ms: number): Promise<void> {
    // A referenced timer: while the session waits to reconnect, nothing else may keep the
    // process alive (an unreferenced one let Node exit mid-run with code 0).
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      void this.stopped.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

const PING = encodeCommand(['PING']);

function isFlush(cmd: StreamCommand): boolean {
  return cmd.name === 'flushall' || cmd.name === 'flushdb';
}
/** Bytes handed to the RDB decoder per push. */
const DECODE_SLICE = 64 * 1024;
/** Spool memory budget and target in-flight budget while a long string streams (at most the configured ones). */
const LONG_STRING_SPOOL_MEMORY = 4 * 1024 * 1024;
const LONG_STRING_INFLIGHT = 8 * 1024 * 1024;
