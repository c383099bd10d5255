/**
 * Replicant's own keys on a target: the registry of syncs, each sync's checkpoint, lease and ledger,
 * a cluster source's shard list (with the processes sharing it, and the lock of its first start),
 * a cluster target's marker keys. They all live under exactly
 * `__replicant:` (a key named `__replicantish` is user data), the one answer to "is this key
 * Replicant's?" for the sync, verify, cutover and plan.
 *
 * A source can hold keys under the prefix too: its own bookkeeping when it is itself the target
 * of another sync (never copied: it describes that other sync), or user data that happens to use
 * the prefix (never copied either: it would collide with ours; counted as lost, so verify and
 * the exit code both say the copy is short).
 */

/** Every key under this prefix belongs to Replicant's namespace. */
export const RESERVED_PREFIX = '__replicant:';
/** RESERVED_PREFIX as bytes, for checks on binary keys and stream arguments. */
export const RESERVED_PREFIX_BYTES = Buffer.from(RESERVED_PREFIX);

/** The names Replicant itself writes under the prefix (exact names, or prefixes ending with ':'). */
const OWN_NAMES = ['syncs', 'checkpoint', 'checkpoint:', 'lease:', 'shards:', 'members:', 'first-start:', 'marker:', 'ledger:', 'preflight'].map((n) => Buffer.from(RESERVED_PREFIX + n));

/** A key in Replicant's namespace: `name` under the prefix. */
export function reservedKey(name: string): string {
  return RESERVED_PREFIX + name;
}

/** Whether a key (binary) is in Replicant's namespace. */
export function isReservedKey(key: Buffer): boolean {
  return startsWith(key, RESERVED_PREFIX_BYTES);
}

/** isReservedKey() of the key src[at, at + len), without a view of it. */
export function isReservedKeyAt(src: Uint8Array, at: number, len: number): boolean {
  const prefix = RESERVED_PREFIX_BYTES;
  if (len < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (src[at + i] !== prefix[i]) return false;
  return true;
}

/** Whether a key is one Replicant writes itself (registry, checkpoint, lease, shard list, marker, ledger), not user data under the prefix. */
export function isOwnKey(key: Buffer): boolean {
  if (!isReservedKey(key)) return false;
  for (const n of OWN_NAMES) {
    const exact = n[n.length - 1] !== 0x3a;
    if (exact ? key.equals(n) : startsWith(key, n)) return true;
  }
  return false;
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
