/**
 * Whether what this sync finds is its own: a checkpoint written by this sync, for this target,
 * with these filters; and, while streaming, whether the target still holds the copy when no
 * batch can tell (a checkpoint in a file, or none).
 */
import { UsageError } from '../../errors.js';
import { REGISTRY_KEY } from '../../checkpoint/identity.js';
import type { Checkpoint } from '../../checkpoint/checkpoint.js';
import type { SyncContext } from '../context.js';

/**
 * A checkpoint written by another sync (a shared --checkpoint file or key), or a checkpoint file
 * written for another target, describes nothing this sync wrote: resuming from it would skip the
 * copy, and a full resync "of a clean start" would flush a target it never wrote. Refused.
 */
export function checkOwner(ctx: SyncContext, cp: Checkpoint): void {
  const where = ctx.store.where;
  if (cp.sync !== undefined && cp.sync !== ctx.identity.id) {
    throw new UsageError(`the checkpoint in ${where} belongs to sync "${cp.sync}", not to this one ("${ctx.identity.id}"): give each sync its own --checkpoint (and --name)`);
  }
  const here = ctx.target.label;
  // A checkpoint on the target is there by construction; one kept elsewhere may describe another target.
  if (!ctx.store.atomicWithData && cp.target !== undefined && cp.target !== here) {
    throw new UsageError(`the checkpoint in ${where} was written for the target ${cp.target}, not ${here}: give this sync its own --checkpoint file (or delete that one to copy again)`);
  }
}

/**
 * A checkpoint made with other filters: resuming would leave keys the new filters exclude (or
 * lack keys they include). Refused, unless --accept-filter-change asks for a new full sync.
 */
export function checkFilterChange(ctx: SyncContext, cp: Checkpoint): Checkpoint {
  const before = cp.filter ?? '';
  const now = ctx.scope.fingerprint;
  if (before === now) return cp;
  const describe = (f: string) => (f === '' ? 'none (a full copy)' : f);
  const what = `the checkpoint of sync "${ctx.identity.id}" was made with other filters (then: ${describe(before)}; now: ${describe(now)})`;
  if (!ctx.opts.acceptFilterChange) {
    throw new UsageError(`${what}: resuming would leave the target with keys of the old selection or without keys of the new one. Run with the old filters, or give --accept-filter-change to copy again (a full sync; the target is flushed when it holds only this sync's keys); for a second sync of other keys of this source, give it its own --name`);
  }
  ctx.log.warn({ before: describe(before), now: describe(now) }, `${what}: copying again (--accept-filter-change)`);
  // As an interrupted full sync: flushed first when the target holds only this sync's keys.
  return { ...cp, state: 'full-sync' };
}

/**
 * A checkpoint kept outside the target that says something was applied, while the target no
 * longer knows this sync: the target lost its data while the sync was stopped.
 */
export function checkpointOutlivedTarget(ctx: SyncContext, cp: Checkpoint): boolean {
  if (cp.sync === undefined || ctx.store.atomicWithData || ctx.target.cluster || ctx.owner.registeredAs !== null) return false;
  ctx.log.warn({ offset: cp.offset, checkpoint: ctx.store.where }, `the checkpoint says offset ${cp.offset} was applied, but the target no longer holds this sync's registry entry: it lost its data while the sync was stopped (flushed, restarted without persistence); copying again`);
  return true;
}

/**
 * With the checkpoint in a file (or none), no batch tells whether the target still holds the copy. On a
 * cluster, a marker key per master does (ClusterMarkers), checked at every lease renewal. On a
 * standalone target, the sync's lease and registry entry do (a relayed FLUSHALL puts them back in
 * the same transaction, so only a flush, an empty restart or failover removes them): checked when
 * the lease was found gone, since its expiry alone (a long target outage) leaves the entry.
 */
export async function checkTargetKept(ctx: SyncContext, leaseRetaken: boolean): Promise<void> {
  if (ctx.run.phase !== 'streaming' || ctx.run.copyLost !== null) return;
  const w = ctx.target.writer;
  if (w === null) return;
  if (ctx.target.cluster) {
    const lost = await ctx.markers.check(w.masterSlots(), ctx.units.applied);
    if (lost !== null) loseCopy(ctx, lost);
    return;
  }
  if (!leaseRetaken || ctx.store.atomicWithData) return;
  if (Number(await ctx.target.controlCall(['HEXISTS', REGISTRY_KEY, ctx.identity.id])) === 1) return;
  loseCopy(ctx, "Replicant's lease and registry entry on it are gone");
}

/** Stop streaming and copy again (by --on-full-resync): the target no longer holds what was applied. */
export function loseCopy(ctx: SyncContext, evidence: string, fields: Record<string, unknown> = {}): void {
  const why = `the target lost what it had applied: ${evidence} (flushed, restarted without persistence, or failed over to an empty or older node)`;
  if (!ctx.run.loseCopy(why)) return;
  ctx.log.error({ ...fields, onFullResync: ctx.opts.onFullResync }, `${why}; copying again per --on-full-resync ${ctx.opts.onFullResync}`);
  ctx.owner.resyncReason = why;
}
