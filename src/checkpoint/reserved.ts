/**
 * Replicant's own keys on a target: the registry of syncs, each sync's checkpoint and lease,
 * a cluster source's shard list, a cluster target's marker keys. They all live under one
 * prefix, the one answer to "is this key Replicant's?" for the sync, verify, cutover and plan.
 */

/** Every key under this prefix belongs to Replicant. */
export const RESERVED_PREFIX = '__replicant';
/** RESERVED_PREFIX as bytes, for checks on binary keys and stream arguments. */
export const RESERVED_PREFIX_BYTES = Buffer.from(RESERVED_PREFIX);

/** Whether a key (binary) is in Replicant's namespace. */
export function isReservedKey(key: Buffer): boolean {
  return key.length >= RESERVED_PREFIX_BYTES.length && key.compare(RESERVED_PREFIX_BYTES, 0, RESERVED_PREFIX_BYTES.length, 0, RESERVED_PREFIX_BYTES.length) === 0;
}
