/**
 * A full resync: the source cannot resume (+FULLRESYNC), an earlier snapshot was interrupted,
 * or the target lost the copy. What it may do to the target is decided here: `flush` empties
 * it only when it holds nothing but this sync's data (it was empty or flushed when the sync
 * began, no other sync writes to it, and the target's counters show no key created by another
 * client since the last full sync: foreign-writes.ts); otherwise exit 7, unless the user chose
 * `replace` or `flush-all`. A cluster shard clears only the keys of its own slots.
 */
import { ExitCode, ReplicantError } from '../../errors.js';
import { REGISTRY_KEY } from '../../checkpoint/identity.js';
import { isReservedKey } from '../../checkpoint/reserved.js';
import { SLOT_COUNT, keySlot } from '../../commands/slot.js';
import type { SyncContext } from '../context.js';
import { foreignWritesSeen } from './foreign-writes.js';

export async function fullResyncPlan(ctx: SyncContext, reason: string, cleanStart: boolean): Promise<'flush' | 'replace'> {
  const policy = ctx.opts.onFullResync;
  if (policy === 'fail') throw new ReplicantError('RESYNC', `a full resync is needed (${reason}) and --on-full-resync is fail`, ExitCode.RESYNC_REFUSED);
  if (policy === 'replace') return 'replace';
  if (policy === 'flush-all') return 'flush';
  const others = ctx.owner.otherSyncs;
  const foreign: string[] = [];
  if (others.size > 0) foreign.push(`other syncs write to it: ${ctx.owner.othersText}`);
  if (!cleanStart) foreign.push('it held keys when this sync started (--existing replace)');
  if (foreign.length === 0) {
    const seen = await foreignWritesSeen(ctx);
    if (seen === null) return 'flush';
    foreign.push(seen);
  }
  throw new ReplicantError(
    'RESYNC',
    `a full resync is needed (${reason}), but the target holds keys this sync did not write (${foreign.join('; ')}): flushing it would destroy them; the target is left untouched. ` +
      'Use --on-full-resync replace to copy again over them without flushing (keys deleted on the source meanwhile stay on the target), --on-full-resync flush-all to empty the target anyway, ' +
      'or --on-full-resync fail to stop at every full resync' +
      (others.size > 0 ? `. A sync that is finished and whose keys may go can be forgotten with HDEL ${REGISTRY_KEY} <name> on the target` : ''),
    ExitCode.RESYNC_REFUSED,
  );
}

export async function fullResync(ctx: SyncContext, reason: string, cleanStart: boolean): Promise<void> {
  const plan = await fullResyncPlan(ctx, reason, cleanStart);
  const policy = ctx.opts.onFullResync;
  if (plan === 'flush') {
    ctx.log.warn({ reason, policy }, `full resync: ${reason}; ${ctx.shard !== null ? "deleting the keys of this shard's slots from the target" : 'flushing the target'} and copying again`);
    await clearOwnKeys(ctx);
    ctx.tracker.cleanStart = true;
  } else {
    ctx.log.warn({ reason, policy }, `full resync: ${reason}; copying again over the target's keys (REPLACE, no flush)`);
    ctx.tracker.cleanStart = false;
  }
}

/** An earlier full sync was interrupted: its partial copy goes first when the target holds only this sync's keys. */
export async function clearInterruptedCopy(ctx: SyncContext, cleanStart: boolean): Promise<void> {
  if (cleanStart && ctx.owner.otherSyncs.size === 0) {
    ctx.log.warn(ctx.shard !== null ? "an earlier full sync was interrupted: deleting its partial copy (the keys of this shard's slots) from the target" : 'an earlier full sync was interrupted: flushing its partial copy from the target');
    await clearOwnKeys(ctx);
    ctx.tracker.cleanStart = true;
  } else {
    ctx.tracker.cleanStart = false;
    ctx.log.warn({ otherSyncs: [...ctx.owner.otherSyncs.keys()] }, 'an earlier full sync was interrupted on a target that holds other keys: copying again over them (REPLACE)');
  }
}

/** What a full resync clears: the whole target, or for a cluster shard the keys of its slots. */
export async function clearOwnKeys(ctx: SyncContext): Promise<void> {
  if (ctx.shard === null) return flushTarget(ctx);
  const w = ctx.target.data;
  const cluster = ctx.target.cluster;
  const ranges = ctx.shard.source.slots();
  const ours = new Uint8Array(SLOT_COUNT);
  for (const [lo, hi] of ranges) ours.fill(1, lo, hi + 1);
  // A standalone target holds the shard's keys in the db source db 0 maps to.
  if (!cluster) await w.call(['SELECT', ctx.scope.targetDb(0)]);
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
          const src = ctx.scope.sourceName(k);
          return src !== null && ours[keySlot(src)] === 1;
        });
      // A cluster node refuses a multi-key UNLINK across slots: one key per command there.
      if (cluster) deleted += (await Promise.all(doomed.map((k) => call(['UNLINK', k])))).reduce((t: number, n) => t + Number(n), 0);
      else if (doomed.length > 0) deleted += Number(await call(['UNLINK', ...doomed]));
    } while (cursor !== '0');
  }
  if (!cluster) await w.call(['SELECT', ctx.scope.connectionDb(ctx.units.db)]);
  ctx.log.warn({ deleted, slots: ranges.map(([lo, hi]) => `${lo}-${hi}`).join(',') }, "deleted the keys of this shard's slots from the target");
}

/**
 * FLUSHALL, keeping what makes this sync safe (its lease and registration) in the same script:
 * flushed and written again as one step, so no second instance can take the lease in between.
 * The checkpoint is not kept: it describes data the flush removes (the copy writes its own).
 */
export async function flushTarget(ctx: SyncContext): Promise<void> {
  const r = ctx.owner.registration;
  const keep = r === null ? [] : [[REGISTRY_KEY, ctx.identity.id, JSON.stringify(r)] as const];
  if (!ctx.target.cluster) return ctx.lease.flushAll((a) => ctx.target.data.call(a), ctx.store.homeDb, keep);
  // A cluster target: Replicant's keys live on other masters than the ones flushed; one script cannot span them.
  await ctx.target.data.call(['FLUSHALL']);
  await ctx.lease.renew((a) => ctx.target.controlCall(a));
  for (const [key, field, value] of keep) await ctx.target.controlCall(['HSET', key, field, value]);
}
