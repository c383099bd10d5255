/**
 * connecting: one connection to the source. A cluster shard that needs a snapshot first waits
 * for its turn (at most N shards fork and send one at once); then the source is resolved, the
 * spool and link opened, and PSYNC answered: +FULLRESYNC leads to full-sync (after the resync
 * policy), +CONTINUE straight to streaming.
 */
import { Spool } from '../../spool/spool.js';
import { ReplicationLink } from '../../replication/link.js';
import { isRetryable } from '../../replication/errors.js';
import { readServerInfo } from '../../replication/server-info.js';
import { describeSource, resolveSource } from '../../replication/source.js';
import { endpointLabel } from '../../replication/url.js';
import { encodeCommand } from '../../resp/encode.js';
import type { Checkpoint } from '../../checkpoint/checkpoint.js';
import type { SyncContext } from '../context.js';
import type { State } from '../phases.js';
import { Halted, Reconnect } from '../run-control.js';
import { beforePsync } from '../ownership/registry.js';
import { clearInterruptedCopy, fullResync } from '../ownership/resync.js';
import type { Backoff } from './reconnect.js';
import { SourceConnection } from './source-connection.js';

export async function connect(ctx: SyncContext, cp: Checkpoint | null, backoff: Backoff): Promise<State> {
  ctx.run.enter('connecting', cp === null ? 'no checkpoint to resume from: a full sync' : cp.state === 'streaming' ? `resuming from offset ${cp.offset}` : 'an earlier snapshot was not finished: a full sync', { source: describeSource(ctx.sourceSpec) });
  backoff.linkEstablished = false;
  const resumable = cp !== null && cp.state === 'streaming';
  // A resume never waits for a snapshot turn; a PSYNC answered with a full resync takes its turn
  // before the snapshot is applied (the spool holds it meanwhile).
  let turn = resumable ? null : await takeTurn(ctx);
  try {
    let endpoint;
    try {
      endpoint = await resolveSource(ctx.sourceSpec, ctx.log);
    } catch (e) {
      throw new Reconnect('source', (e as Error).message, { cause: e });
    }
    const o = ctx.opts;
    const spool = await Spool.open({ dir: o.spoolDir, memoryBudget: o.spoolMemoryBytes, diskBudget: o.spoolDiskBytes, logger: ctx.log });
    const link = new ReplicationLink({
      endpoint,
      listeningPort: o.listeningPort,
      psync: resumable ? { replid: cp.replid, offset: cp.offset } : null,
      readTimeoutMs: o.readTimeoutMs,
      logger: ctx.log,
      spool,
      beforePsync: (hs) => beforePsync(ctx, hs, resumable ? cp : null),
      // A cluster shard whose siblings run in other processes: a migrated key's arrival is noted at wire time (remote-order.ts).
      ...(ctx.shard?.guard.order.remote ? { onArrival: (chunk: Buffer, bytes: number) => noteArrival(ctx, chunk, bytes) } : {}),
    });
    const source = (ctx.source = new SourceConnection(link, spool, endpoint));
    if (turn !== null) source.holdTurn(turn);
    turn = null;
    let outcome;
    try {
      outcome = await link.start();
    } catch (e) {
      if (ctx.run.stopping) throw new Halted();
      // Wrong credentials or a source that refuses replication will not fix themselves.
      if (!isRetryable(e)) throw e;
      throw new Reconnect('source', `source ${endpointLabel(endpoint)}: ${(e as Error).message}`, { cause: e });
    }
    ctx.tracker.replid = outcome.replid;
    backoff.sourceAnswered = true;
    if (outcome.mode === 'full') {
      ctx.figures.fullSyncs++;
      backoff.fullSyncServed();
      const o = ctx.owner;
      if (resumable || (cp === null && o.wroteTarget)) {
        const reason = o.resyncReason ?? (resumable ? `the source refused to resume PSYNC ${cp.replid} ${cp.offset + 1}` : 'the target lost its checkpoint');
        await fullResync(ctx, reason, resumable ? cp.cleanStart : ctx.tracker.cleanStart);
      } else if (cp !== null && cp.state === 'full-sync') {
        await clearInterruptedCopy(ctx, cp.cleanStart);
      }
      ctx.run.copyLost = null;
      o.resyncReason = null;
      ctx.markers.reset();
      if (!source.holdsTurn) {
        const t = await takeTurn(ctx);
        if (t !== null) source.holdTurn(t);
      }
      return { at: 'full-sync', source, outcome };
    }
    source.endTurn();
    return await resumed(ctx, source, cp!, outcome.replid, outcome.offset);
  } finally {
    (turn as (() => void) | null)?.();
  }
}

/** +CONTINUE: the target keeps what it has, the stream continues from the checkpoint. */
async function resumed(ctx: SyncContext, source: SourceConnection, cp: Checkpoint, replid: string, offset: number): Promise<State> {
  ctx.figures.partialSyncs++;
  ctx.units.db = cp.db;
  ctx.units.applied = offset;
  source.startStream(offset, 0);
  source.link.setAppliedOffset(offset);
  ctx.tracker.expect(offset);
  ctx.log.info({ replid, offset, db: cp.db }, 'resumed with a partial resync (+CONTINUE): nothing is copied again');
  if (replid !== cp.replid) {
    const runId = ctx.tracker.sourceRunId ?? undefined;
    const restarted = runId !== undefined && cp.sourceRunId !== undefined && runId !== cp.sourceRunId && ctx.sourceSpec.kind === 'direct';
    ctx.log.info(
      { from: cp.replid, to: replid, runId },
      restarted
        ? 'the source restarted (new run_id) and kept its replication history under a new id; continuing with it'
        : 'source replication id changed (failover to a promoted replica); continuing with the new id',
    );
  }
  // Re-select the stream's db on the (possibly new) target connection.
  if (!ctx.target.cluster) await ctx.units.submit([encodeCommand(['SELECT', ctx.scope.connectionDb(cp.db)])], 1, false, undefined);
  if (ctx.opts.exitAfterFullSync) return exitOnceCaughtUp(ctx, source, offset);
  return { at: 'streaming', source, first: null };
}

/**
 * --exit-after-full-sync when there was no full sync to do: bring the target up to the source's
 * offset of now, then exit (what a scheduled "refresh the copy" run wants), rather than stream forever.
 */
async function exitOnceCaughtUp(ctx: SyncContext, source: SourceConnection, offset: number): Promise<State> {
  const info = await readServerInfo(source.endpoint).catch(() => null);
  if (info === null) {
    const what = 'resumed (+CONTINUE), and the source does not tell its offset (INFO refused or failed): exiting at once (--exit-after-full-sync)';
    ctx.log.warn({ offset }, what);
    return { at: 'stopping', halt: { why: 'done', what } };
  }
  if (info.masterReplOffset <= offset) {
    const what = `resumed (+CONTINUE) and already caught up with the source at offset ${offset}: nothing to copy (--exit-after-full-sync)`;
    ctx.log.info({ offset }, what);
    return { at: 'stopping', halt: { why: 'done', what } };
  }
  ctx.run.exitAtOffset = info.masterReplOffset;
  ctx.log.info({ from: offset, to: info.masterReplOffset }, 'resumed (+CONTINUE): no full sync to do; applying the stream up to the source\'s current offset, then exiting (--exit-after-full-sync)');
  return { at: 'streaming', source, first: null };
}

/** A cluster shard's snapshot turn (null when this is not a shard); Halted when stopped while waiting. */
async function takeTurn(ctx: SyncContext): Promise<(() => void) | null> {
  if (ctx.shard === null) return null;
  const turn = ctx.shard.gate();
  const got = await Promise.race([turn, ctx.run.halted.then(() => null)]);
  if (got === null) {
    void turn.then((r) => r());
    throw new Halted();
  }
  return got;
}

/** A stream chunk arrived: the shard's order of migrated keys notes it (offset of its last byte). */
function noteArrival(ctx: SyncContext, chunk: Buffer, bytesReceived: number): void {
  const offset = ctx.source?.offsetOfLinkBytes(bytesReceived) ?? null;
  if (offset !== null && ctx.shard !== null) ctx.shard.guard.order.remote?.noteArrival(ctx.shard.source.key, chunk, offset);
}
