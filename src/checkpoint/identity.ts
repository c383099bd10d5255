/**
 * A sync's identity on the target: every sync (one source feeding one target) has its own
 * checkpoint key, lease key and registry entry, so two syncs sharing a target (two sources
 * consolidated into one server) never read each other's position or flush each other's keys.
 *
 * The identity is `--name`, or derived from the source address (`host:port`, or the sentinel
 * master name), so restarting the same command finds its own checkpoint again.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors.js';
import type { SourceSpec } from '../replication/source.js';
import { endpointLabel } from '../replication/url.js';
import { reservedKey } from './reserved.js';

/** A hash on the target: sync id → JSON registration (source, its run_id, upstream run_ids). */
export const REGISTRY_KEY = reservedKey('syncs');
/** The key of the single-sync layout before identities (adopted once when it matches the source). */
export const LEGACY_CHECKPOINT_KEY = reservedKey('checkpoint');

export interface SyncIdentity {
  id: string;
  checkpointKey: string;
  leaseKey: string;
  /** The keys other clients created on the target, as the target counted them (sync/ownership/foreign-writes.ts). */
  ledgerKey: string;
  /** Prefix of the client names this sync's target connections carry (fencing finds them by it). */
  clientPrefix: string;
}

const NAME = /^[A-Za-z0-9._:@[\]-]{1,100}$/;

export function syncIdentity(source: SourceSpec, name?: string): SyncIdentity {
  if (name !== undefined && !NAME.test(name)) {
    throw new UsageError(`--name ${JSON.stringify(name)}: use 1-100 characters among letters, digits and . _ : @ [ ] -`);
  }
  const id = name ?? (source.kind === 'direct' ? endpointLabel(source.endpoint) : source.kind === 'sentinel' ? `sentinel/${source.sentinel.masterName}` : `cluster@${source.shard.key}`);
  const hash = createHash('sha1').update(id).digest('hex').slice(0, 12);
  return {
    id,
    checkpointKey: reservedKey(`checkpoint:${id}`),
    leaseKey: reservedKey(`lease:${id}`),
    ledgerKey: ledgerKeyOf(id),
    clientPrefix: `replicant-${hash}-`,
  };
}

/** The foreign-writes ledger of the sync `id` (a registry entry names its checkpoint and lease, not this). */
export function ledgerKeyOf(id: string): string {
  return reservedKey(`ledger:${id}`);
}

/** What a sync records about itself in the target's registry. */
export interface SyncRegistration {
  source: string;
  /** run_id of the source when the sync (re)started; null when the source refused INFO. */
  sourceRunId: string | null;
  /** run_ids of every server that feeds the source through other syncs (loop detection). */
  upstream: string[];
  checkpointKey: string;
  leaseKey: string;
  since: number;
  /** The partial sync's filters (as in its checkpoint), for operators reading the registry; absent for a full copy. */
  filter?: string;
}

export function parseRegistration(text: unknown): SyncRegistration | null {
  if (typeof text !== 'string' && !Buffer.isBuffer(text)) return null;
  try {
    const o = JSON.parse(text.toString()) as Partial<SyncRegistration>;
    if (typeof o.source !== 'string' || typeof o.checkpointKey !== 'string' || typeof o.leaseKey !== 'string') return null;
    return {
      source: o.source,
      sourceRunId: typeof o.sourceRunId === 'string' ? o.sourceRunId : null,
      upstream: Array.isArray(o.upstream) ? o.upstream.filter((x): x is string => typeof x === 'string') : [],
      checkpointKey: o.checkpointKey,
      leaseKey: o.leaseKey,
      since: typeof o.since === 'number' ? o.since : 0,
      ...(typeof o.filter === 'string' && o.filter !== '' ? { filter: o.filter } : {}),
    };
  } catch {
    return null;
  }
}

/** HGETALL reply (flat [field, value, ...] array) → id → registration. */
export function parseRegistry(reply: unknown): Map<string, SyncRegistration> {
  const out = new Map<string, SyncRegistration>();
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const r = parseRegistration(reply[i + 1]);
    if (r !== null) out.set(String(reply[i]), r);
  }
  return out;
}
