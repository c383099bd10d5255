/**
 * The options of a sync, their defaults and their validation: declared once, used by the CLI
 * (`replicant sync`, whose defaults come from SYNC_DEFAULTS), the library API (`new SyncSession`)
 * and the cluster source (each shard's session gets the same resolved options).
 */
import { UsageError } from '../errors.js';
import type { CheckpointSpec } from '../checkpoint/store.js';
import { reservedKey } from '../checkpoint/reserved.js';
import type { TlsSettings } from '../net/tls.js';
import type { Logger } from '../observe/logger.js';
import type { PartialSyncSpec } from './relay/selection.js';
import type { ShardRole } from './cluster/shard.js';

export type WriteMode = 'auto' | 'restore' | 'commands';
export type FullResyncPolicy = 'flush' | 'flush-all' | 'replace' | 'fail';
export type ExistingPolicy = 'fail' | 'replace' | 'flush';
export type OnErrorPolicy = 'fail' | 'skip';

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
  existing?: ExistingPolicy;
  /** A command the target rejects: stop ('fail', default) or count and go on ('skip'). */
  onError?: OnErrorPolicy;
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
  /**
   * Full syncs in a row the source may serve without one reaching streaming (each forks the
   * source) before the sync stops with exit 4 instead of asking for another. Default 3.
   */
  maxFullSyncAttempts?: number;
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
  /**
   * Another partial sync of the same source into this target may copy some of the same keys (its
   * selection is not provably disjoint from this one's): run anyway, with a warning, instead of
   * refusing (exit 2). Only when no key can really be in both.
   */
  allowOverlap?: boolean;
  /** Set by ClusterSourceSync: this session copies one shard of a cluster source (`source` is then only shown). */
  shard?: ShardRole;
  /** Reconnect delays: starts at `min`, doubles to `max`. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  logger?: Logger;
}

/** Every default of a sync, in one place (the CLI shows and uses these). */
export const SYNC_DEFAULTS = {
  writeMode: 'auto',
  bigKeyBytes: 16 * 1024 * 1024,
  existing: 'fail',
  onError: 'fail',
  onFullResync: 'flush',
  spoolMemoryBytes: 64 * 1024 * 1024,
  spoolDiskBytes: 4 * 1024 * 1024 * 1024,
  readTimeoutMs: 60_000,
  connectTimeoutMs: 30_000,
  maxFullSyncAttempts: 3,
  maxInflightBytes: 32 * 1024 * 1024,
  verifyChecksum: true,
  exitAfterFullSync: false,
  reconnectMinMs: 200,
  reconnectMaxMs: 10_000,
  leaseTtlMs: 10_000,
  acceptFilterChange: false,
  allowOverlap: false,
} as const satisfies Partial<SyncOptions>;

type Defaulted = keyof typeof SYNC_DEFAULTS;
type Widen<T> = T extends string ? T : T extends number ? number : T extends boolean ? boolean : T;

/** The options with every default filled in. */
export type ResolvedSyncOptions = Omit<SyncOptions, Defaulted> & { [K in Defaulted]-?: Widen<NonNullable<SyncOptions[K]>> };

const POSITIVE: readonly (keyof ResolvedSyncOptions)[] = ['bigKeyBytes', 'spoolMemoryBytes', 'spoolDiskBytes', 'readTimeoutMs', 'connectTimeoutMs', 'maxInflightBytes', 'reconnectMinMs', 'reconnectMaxMs', 'leaseTtlMs', 'maxFullSyncAttempts'];

/** The shortest lease a sync accepts (see resolveSyncOptions). */
const MIN_LEASE_TTL_MS = 1000;

/** Fills in the defaults and refuses values no sync can run with (UsageError, exit 2). */
export function resolveSyncOptions(options: SyncOptions): ResolvedSyncOptions {
  const out = { ...SYNC_DEFAULTS } as ResolvedSyncOptions;
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  for (const k of POSITIVE) {
    const v = out[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new UsageError(`sync option ${k}: expected a number above zero, got ${String(v)}`);
  }
  if (out.leaseTtlMs < MIN_LEASE_TTL_MS) {
    throw new UsageError(`--lease-ttl (leaseTtlMs) ${out.leaseTtlMs} ms is below 1 s: the lease is renewed every third of it, so a shorter one lapses at the first GC pause or slow reply (and another instance may take over) while the target gets a renewal every few milliseconds`);
  }
  if (!Number.isInteger(out.maxFullSyncAttempts)) throw new UsageError(`sync option maxFullSyncAttempts: expected a whole number, got ${out.maxFullSyncAttempts}`);
  if (out.reconnectMaxMs < out.reconnectMinMs) throw new UsageError(`sync option reconnectMaxMs (${out.reconnectMaxMs}) is below reconnectMinMs (${out.reconnectMinMs})`);
  if (out.listeningPort !== undefined && !(Number.isInteger(out.listeningPort) && out.listeningPort >= 0 && out.listeningPort <= 65535)) {
    throw new UsageError(`sync option listeningPort: expected a port 0-65535, got ${out.listeningPort}`);
  }
  return out;
}

const CHECKPOINT_KEY = reservedKey('checkpoint');

/**
 * `--checkpoint target[:KEY]|file:PATH|none`. Plain `target` gives no key: the sync uses its own
 * (`__replicant:checkpoint:<name>`, see checkpoint/identity.ts); a KEY must be in that family, so
 * that it is never copied or verified as data.
 */
export function parseCheckpointSpec(text: string, db = 0): CheckpointSpec {
  if (text === 'none') return { kind: 'none' };
  if (text === 'target') return { kind: 'target', db };
  if (text.startsWith('target:')) {
    const k = text.slice(7);
    if (k !== CHECKPOINT_KEY && !k.startsWith(`${CHECKPOINT_KEY}:`)) throw new UsageError(`--checkpoint ${text}: the key must be ${CHECKPOINT_KEY} or start with "${CHECKPOINT_KEY}:" (Replicant's namespace: never copied or verified)`);
    return { kind: 'target', key: k, db };
  }
  if (text.startsWith('file:') && text.length > 5) return { kind: 'file', path: text.slice(5) };
  throw new UsageError(`--checkpoint ${text}: expected target, target:KEY, file:PATH or none`);
}
