/**
 * reconnecting: one side failed. The source link is closed (its spool with it), the backoff
 * waited, the target reopened when it was the side that failed; then `connecting` again, with
 * PSYNC from what the target holds. Until the source has answered a PSYNC once, source failures
 * are bounded by --connect-timeout (the address may be wrong); after that, retried forever, except
 * full syncs: each one forks the source, so after --max-full-sync-attempts in a row that never
 * reached streaming, the sync stops (exit 4) with the reason the full sync gave.
 */
import { SourceError } from '../../errors.js';
import { LeaseError } from '../../checkpoint/lease.js';
import type { Checkpoint } from '../../checkpoint/checkpoint.js';
import type { SyncContext } from '../context.js';
import type { State } from '../phases.js';
import { renewalCall } from '../ownership/lease-renewal.js';
import { TargetAuthError } from '../../writer/index.js';

export class Backoff {
  delay: number;
  /** The source answered a PSYNC once: from then on, source failures are retried forever. */
  sourceAnswered = false;
  /** The current connection reached streaming (a failure after that starts the backoff over). */
  linkEstablished = false;
  /** Full syncs the source served since the sync last reached streaming (each one forked it). */
  fullSyncsInARow = 0;
  private readonly firstConnectBy: number;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    connectTimeoutMs: number,
    readonly maxFullSyncs = Infinity,
  ) {
    this.delay = minMs;
    this.firstConnectBy = Date.now() + connectTimeoutMs;
  }

  /** The source answered +FULLRESYNC: it forked (or will) for this connection. */
  fullSyncServed(): void {
    this.fullSyncsInARow++;
  }

  /** The connection streams: its full sync, if any, completed. */
  streaming(): void {
    this.linkEstablished = true;
    this.fullSyncsInARow = 0;
  }

  /** The source cut every one of the last --max-full-sync-attempts full syncs: do not ask for another. */
  fullSyncsExhausted(side: 'source' | 'target'): boolean {
    return side === 'source' && this.fullSyncsInARow >= this.maxFullSyncs;
  }

  /** The source failed before ever answering, past --connect-timeout. */
  gaveUp(side: 'source' | 'target'): boolean {
    return side === 'source' && !this.sourceAnswered && Date.now() >= this.firstConnectBy;
  }

  /** The delay to wait now; the next one doubles (up to max). */
  next(): number {
    if (this.linkEstablished) this.delay = this.minMs;
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, this.maxMs);
    return d;
  }

  reset(): void {
    this.delay = this.minMs;
  }
}

export async function reconnect(ctx: SyncContext, s: Extract<State, { at: 'reconnecting' }>, backoff: Backoff): Promise<State> {
  if (backoff.gaveUp(s.side)) {
    throw new SourceError(`${s.cause}; gave up after --connect-timeout ${ctx.opts.connectTimeoutMs / 1000} s without a first replication link`, { cause: s.error });
  }
  if (backoff.fullSyncsExhausted(s.side)) {
    const n = backoff.fullSyncsInARow;
    throw new SourceError(`${s.cause}; the source served ${n} full sync${n === 1 ? '' : 's'} in a row and none reached streaming (--max-full-sync-attempts ${backoff.maxFullSyncs}): not asking for another, each one forks the source; fix the cause, then run the sync again`, { cause: s.error });
  }
  const delay = backoff.next();
  ctx.log.warn({ side: s.side, err: s.error instanceof Error ? s.error.message : undefined, retryInMs: delay }, `${s.cause}; reconnecting`);
  ctx.run.enter('reconnecting', s.cause, { side: s.side });
  await closeSource(ctx);
  await ctx.run.sleep(delay);
  if (s.side === 'target') {
    await reconnectTarget(ctx);
    // What the target holds is the truth: a unit may have been applied without its reply reaching us.
    if (ctx.store.atomicWithData) ctx.units.applied = null;
  }
  if (ctx.run.stopping) return { at: 'stopping', halt: ctx.run.halt! };
  return { at: 'connecting', resume: await resumePoint(ctx) };
}

/** Where the next connection resumes from: nowhere when the copy was lost, else what was applied (or the stored checkpoint). */
async function resumePoint(ctx: SyncContext): Promise<Checkpoint | null> {
  if (ctx.run.copyLost !== null) return null;
  const { applied } = ctx.units;
  const replid = ctx.tracker.replid;
  return applied !== null && replid !== null ? ctx.tracker.current('streaming', applied, ctx.units.db) : ctx.store.load();
}

export async function closeSource(ctx: SyncContext): Promise<void> {
  const s = ctx.source;
  ctx.source = null;
  await s?.close();
}

/** Reopens the target (retried with backoff until it answers or the sync stops); nothing is applied before the lease is confirmed ours. */
export async function reconnectTarget(ctx: SyncContext): Promise<void> {
  const t = ctx.target;
  t.dropWriter();
  t.failure = null;
  const { reconnectMinMs, reconnectMaxMs } = ctx.opts;
  for (let delay = reconnectMinMs; !ctx.run.stopping; delay = Math.min(delay * 2, reconnectMaxMs)) {
    try {
      await t.open();
    } catch (e) {
      // Refused credentials stay refused: say so and stop rather than retry them for ever.
      if (e instanceof TargetAuthError) throw new TargetAuthError(`${e.message}; the sync stops (it resumes from its checkpoint when run again with the right credentials)`, { cause: e });
      ctx.log.warn({ err: (e as Error).message, retryInMs: delay }, 'target unreachable; retrying');
      await ctx.run.sleep(delay);
      continue;
    }
    try {
      await ctx.lease.renew(renewalCall((a) => t.controlCall(a), ctx.identity.id));
      return;
    } catch (e) {
      // Another instance holds the sync now: nothing more may be applied (the lease's own handler stops the sync).
      if (e instanceof LeaseError) throw e;
      ctx.log.warn({ err: (e as Error).message, retryInMs: delay }, 'target failed right after reconnecting; retrying');
      t.dropWriter();
      await ctx.run.sleep(delay);
    }
  }
}
