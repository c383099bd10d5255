/**
 * Replicant's keys on this target by name (ours, the registry, the other syncs'), and the
 * commands that put ours back after a source FLUSHALL/FLUSHDB/SWAPDB relayed in a batch: they
 * live in the target's dbs too, so the batch itself restores them, atomically.
 */
import { LEGACY_CHECKPOINT_KEY, REGISTRY_KEY, ledgerKeyOf } from '../../checkpoint/identity.js';
import type { Arg } from '../../resp/encode.js';
import type { ReservedReset } from '../relay/batcher.js';
import type { SyncContext } from '../context.js';

/** Every key of every sync known to write to this target. */
export function knownReservedKeys(ctx: SyncContext): string[] {
  const keys = new Set([REGISTRY_KEY, LEGACY_CHECKPOINT_KEY, ctx.identity.leaseKey]);
  if (ctx.store.key !== null) keys.add(ctx.store.key).add(ctx.identity.ledgerKey);
  for (const [id, r] of ctx.owner.otherSyncs) keys.add(r.checkpointKey).add(r.leaseKey).add(ledgerKeyOf(id));
  return [...keys];
}

/**
 * After the unit's flush or swap: the lease and registration are written again, and after a
 * SWAPDB the keys that moved to the other db are moved back. Leaves the connection in `dbAfter`.
 */
export function reservedFixup(ctx: SyncContext, reset: ReservedReset, dbAfter: number): Arg[][] {
  const home = ctx.store.homeDb;
  const out: Arg[][] = [];
  if (reset.kind === 'swap') {
    const other = reset.a === home ? reset.b : reset.a;
    const keys = knownReservedKeys(ctx);
    // After the swap our keys are in `other`, and `home` holds whatever `other` had.
    out.push(['SELECT', home], ['DEL', ...keys], ['SELECT', other]);
    for (const k of keys) out.push(['MOVE', k, home]);
  }
  out.push(['SELECT', home], ['SET', ctx.identity.leaseKey, ctx.lease.currentValue(), 'PX', ctx.lease.ttlMs]);
  const r = ctx.owner.registration;
  if (r !== null) out.push(['HSET', REGISTRY_KEY, ctx.identity.id, JSON.stringify(r)]);
  out.push(['SELECT', dbAfter]);
  return out;
}
