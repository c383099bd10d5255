/**
 * SyncSession: poses as a replica of the source and keeps the target in step.
 *
 *   ReplicationLink ──► Spool ──► RdbDecoder ──► SnapshotApplier ──────────────┐
 *   (wire speed)                  then StreamParser ─► relay stages ─► batcher ─┴─► TargetWriter
 *        ▲ REPLCONF ACK <applied>                                                   │
 *        └──────────────────────────── applied offset ◄── checkpoint ◄──────────────┘
 *
 * This file is the driver: it wires the collaborators (each owning one concern) and runs one
 * step per state until `stopped` (phases.ts has the diagram; each step returns its successor).
 * Deep failures are thrown as `Reconnect` or `Halted` and turned into states here, once.
 */
import { EventEmitter } from 'node:events';
import { endpointLabel } from '../replication/url.js';
import { watchSentinel } from '../replication/source.js';
import { LeaseError } from '../checkpoint/lease.js';
import type { SyncContext } from './context.js';
import type { SyncStatus } from './figures.js';
import { IncompleteCopyError, describeShortfall, isShort } from './incomplete.js';
import type { SyncOptions } from './options.js';
import type { Halt, Phase, State } from './phases.js';
import { Halted, Reconnect } from './run-control.js';
import { connect } from './steps/connect.js';
import { fullSync } from './steps/full-sync.js';
import { Backoff, closeSource, reconnect } from './steps/reconnect.js';
import { start } from './steps/start.js';
import { stream } from './steps/streaming.js';
import { createSyncContext } from './wiring.js';
import { releaseLease } from './ownership/foreign-writes.js';

export type { SyncOptions, WriteMode, FullResyncPolicy } from './options.js';
export type { SyncStatus } from './figures.js';
export type { Phase } from './phases.js';
export type { ShardRole } from './cluster/shard.js';
import type { ShardProgress } from './cluster/shard.js';

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

export class SyncSession extends EventEmitter<SyncEvents> {
  private readonly ctx: SyncContext;
  private readonly backoff: Backoff;
  /** What run() returns (or carries in IncompleteCopyError), taken when the sync starts stopping. */
  private result: SyncResult | null = null;

  constructor(options: SyncOptions) {
    super();
    this.ctx = createSyncContext(options, {
      phase: (phase, info) => this.emit('phase', phase, info),
      fullSyncDone: (info) => this.emit('fullSyncDone', info),
      applied: (offset) => this.emit('applied', offset),
    });
    const o = this.ctx.opts;
    this.backoff = new Backoff(o.reconnectMinMs, o.reconnectMaxMs, o.connectTimeoutMs, o.maxFullSyncAttempts);
  }

  /** A partial sync's selection as stored with the checkpoint (JSON), or null for a full copy. */
  get selection(): string | null {
    return this.ctx.scope.fingerprint === '' ? null : this.ctx.scope.fingerprint;
  }

  /** Current figures (for progress displays and the library API). */
  status(): SyncStatus {
    const { run, units, tracker, target, source } = this.ctx;
    return this.ctx.figures.status({
      phase: run.phase,
      replid: tracker.replid,
      applied: units.applied,
      received: source?.receivedOffset() ?? units.applied,
      writerErrors: target.writer?.stats.errors ?? 0,
    });
  }

  /** Where the sync stands, for the cluster coordinator (not for display). */
  progress(): ShardProgress {
    const { run, units, source } = this.ctx;
    return { streaming: run.phase === 'streaming', received: source?.receivedOffset() ?? units.applied, applied: units.applied };
  }

  /**
   * Graceful stop: stop reading the source, apply what was received up to a command
   * boundary, store the checkpoint. `run()` then resolves.
   */
  stop(): void {
    const { run, figures, target } = this.ctx;
    if (run.stopping || run.state === 'stopped') return;
    // A snapshot cannot be resumed half-way (the next run copies it again): what is still in
    // flight of it is of no use, so do not wait for it; this also unblocks a full sync waiting on the target.
    if (figures.snapshotUnfinished) target.writer?.destroy();
    run.stop({ why: 'stop' });
    run.enter('stopping', 'stop requested');
  }

  /**
   * The source should now be read from `to` (a sentinel's +switch-master, a cluster shard's new
   * master): a link to another node is dropped, and the next connection resolves the source again.
   */
  sourceMoved(to: { host: string; port: number }): void {
    const s = this.ctx.source;
    if (s !== null && (s.endpoint.host !== to.host || s.endpoint.port !== to.port)) {
      this.ctx.log.info({ from: endpointLabel(s.endpoint), to: endpointLabel(to) }, 'the source moved: reconnecting');
      s.link.close();
    }
  }

  /** Runs until stop() or an unrecoverable error (rejects with a ReplicantError). */
  async run(): Promise<SyncResult> {
    const ctx = this.ctx;
    const sampler = setInterval(() => ctx.figures.sample(ctx.source?.receivedOffset() ?? ctx.units.applied, ctx.units.applied), 100);
    sampler.unref();
    let unwatch: (() => void) | null = null;
    let s: State = { at: 'starting' };
    try {
      if (ctx.sourceSpec.kind === 'sentinel') {
        unwatch = await watchSentinel(ctx.sourceSpec.sentinel, ctx.log, (to) => this.sourceMoved(to)).catch((e: Error) => {
          ctx.log.warn({ err: e.message }, 'cannot watch the sentinels for failovers; relying on the link dropping');
          return null;
        });
      }
      while (s.at !== 'stopped') s = await this.step(s).catch((e: unknown) => this.afterFailure(s, e));
    } finally {
      // The one teardown, whatever ended the run.
      ctx.lease.stop();
      clearInterval(sampler);
      unwatch?.();
      await closeSource(ctx);
      ctx.target.destroy();
      ctx.run.enter('stopped', s.at === 'stopped' ? s.halt.why : 'ended', { appliedOffset: ctx.units.applied });
    }
    return this.outcome(s.halt);
  }

  private step(s: State): Promise<State> {
    const ctx = this.ctx;
    switch (s.at) {
      case 'starting':
        return start(ctx, (e) => this.onLeaseLost(e));
      case 'connecting':
        return connect(ctx, s.resume, this.backoff);
      case 'full-sync':
        return fullSync(ctx, s.source, s.outcome);
      case 'streaming':
        return stream(ctx, s.source, s.first, this.backoff);
      case 'reconnecting':
        return reconnect(ctx, s, this.backoff);
      case 'stopping':
        return this.stopping(s.halt);
      case 'stopped':
        return Promise.resolve(s);
    }
  }

  /** What a failure thrown by a step means: the one place where exceptions become states. */
  private afterFailure(from: State, e: unknown): State {
    const run = this.ctx.run;
    // The end cannot fail its way back into the loop.
    if (from.at === 'stopping') return { at: 'stopped', halt: run.leaseLost !== null ? { why: 'lease-lost', error: run.leaseLost } : from.halt };
    if (e instanceof LeaseError && from.at !== 'starting') this.onLeaseLost(e);
    if (run.halt !== null && run.halt.why !== 'failed') return { at: 'stopping', halt: run.halt };
    if (e instanceof Halted) return { at: 'stopping', halt: { why: 'stop' } };
    if (e instanceof Reconnect) return { at: 'reconnecting', side: e.side, cause: e.message, error: e.cause };
    return { at: 'stopping', halt: { why: 'failed', error: e } };
  }

  /** stopping: a graceful stop applies and checkpoints what it can; a failure releases the lease; a lost lease touches nothing. */
  private async stopping(halt: Halt): Promise<State> {
    const ctx = this.ctx;
    const why = halt.why === 'failed' || halt.why === 'lease-lost' ? (halt.error as Error).message : halt.why === 'done' ? (halt.what ?? 'the snapshot is applied (--exit-after-full-sync)') : 'stop requested';
    // A failure goes to `stopped` without showing `stopping` (what the phase events have always said).
    if (halt.why === 'stop') ctx.run.enter('stopping', why);
    else ctx.run.note('stopping', why);
    if (halt.why === 'stop' || halt.why === 'done') await this.finishGracefully();
    // Not when the target never answered: no lease was taken, and a new connection would only wait --connect-timeout again.
    else if (halt.why === 'failed' && !(halt.error instanceof LeaseError) && ctx.target.writer !== null) await releaseLease(ctx).catch(() => undefined);
    this.result = { appliedOffset: ctx.units.applied, replid: ctx.tracker.replid, status: this.status() };
    return { at: 'stopped', halt };
  }

  private async finishGracefully(): Promise<void> {
    const { target, store, log, units, tracker, figures } = this.ctx;
    const w = target.writer;
    if (w !== null && target.failure === null && !figures.snapshotUnfinished) {
      try {
        await w.flush();
        await store.flush();
        await releaseLease(this.ctx);
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'could not flush the target on stop');
      }
    }
    log.info({ replid: tracker.replid, appliedOffset: units.applied, db: units.db }, 'stopped');
  }

  /** The end of run(): the failure, an incomplete copy (exit 9), or the result. */
  private outcome(halt: Halt): SyncResult {
    if (halt.why === 'failed' || halt.why === 'lease-lost') throw halt.error;
    const result = this.result ?? { appliedOffset: null, replid: null, status: this.status() };
    const short = this.ctx.figures.shortfall();
    if (isShort(short)) {
      this.ctx.lost.flush();
      this.ctx.log.warn({ ...short }, describeShortfall(short));
      throw new IncompleteCopyError(short, result);
    }
    return result;
  }

  private onLeaseLost(e: Error): void {
    const ctx = this.ctx;
    if (!ctx.run.stop({ why: 'lease-lost', error: e })) return;
    ctx.log.error({ err: e.message }, 'lost ownership of this sync: stopping at once');
    // Nothing more may reach the target: drop the connection with whatever is queued on it.
    ctx.target.dropWriter();
  }
}
