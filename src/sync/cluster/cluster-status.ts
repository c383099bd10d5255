/**
 * What a cluster source sync says about itself (/status, metrics, progress): each shard held by
 * this process, and the figures summed over them.
 */
import type { Phase } from '../phases.js';
import type { SyncStatus } from '../figures.js';
import type { SharingStatus } from './sharing.js';

export interface ShardStatus extends SyncStatus {
  shard: string;
  /** Slot ranges the shard serves now. */
  slots: string;
  /** `host:port` of the node the shard is read from now (null: none usable, e.g. during a failover). */
  node: string | null;
}

export interface ClusterSyncStatus extends SyncStatus {
  shards: ShardStatus[];
  /**
   * The slot migration guard: keys tracked now, deletions and stale writes it kept from the
   * target, and RESTOREs held until the other shards had applied what they sent before them.
   */
  migrations: { trackedKeys: number; droppedDeletes: number; droppedWrites: number; heldRestores: number };
  /** The processes sharing this sync's shards, and this one's part (`shards` lists only the shards it holds). */
  sharing: SharingStatus;
}

/** Worst first, for the aggregated phase (/healthz is 200 only when every shard is healthy). */
const PHASE_RANK: Record<Phase, number> = { stopped: 0, stopping: 1, reconnecting: 2, connecting: 3, 'full-sync': 4, streaming: 5 };

/** The least advanced phase of `shards` (not empty). */
export function worstPhase(shards: readonly ShardStatus[]): Phase {
  return shards.map((s) => s.phase).sort((a, b) => PHASE_RANK[a] - PHASE_RANK[b])[0]!;
}

/** The sync's figures over its shards: sums, the largest lag, the snapshots in progress together. */
export function shardFigures(shards: readonly ShardStatus[]): Omit<SyncStatus, 'phase'> {
  const sum = (f: (s: SyncStatus) => number | null | undefined): number => shards.reduce((t, s) => t + (f(s) ?? 0), 0);
  const inRdb = shards.filter((s) => s.rdb !== null);
  return {
    replid: null,
    receivedOffset: null,
    appliedOffset: null,
    lagBytes: shards.some((s) => s.lagBytes !== null) ? sum((s) => s.lagBytes) : null,
    lagMs: shards.some((s) => s.lagMs !== null) ? Math.max(...shards.map((s) => s.lagMs ?? 0)) : null,
    rdb:
      inRdb.length === 0
        ? null
        : {
            bytes: inRdb.reduce((t, s) => t + s.rdb!.bytes, 0),
            totalBytes: inRdb.every((s) => s.rdb!.totalBytes !== null) ? inRdb.reduce((t, s) => t + s.rdb!.totalBytes!, 0) : null,
            keys: inRdb.reduce((t, s) => t + s.rdb!.keys, 0),
            keysPerSec: inRdb.reduce((t, s) => t + s.rdb!.keysPerSec, 0),
          },
    opsPerSec: sum((s) => s.opsPerSec),
    commandsApplied: sum((s) => s.commandsApplied),
    errors: sum((s) => s.errors),
    fullSyncs: sum((s) => s.fullSyncs),
    partialSyncs: sum((s) => s.partialSyncs),
    lostKeys: sum((s) => s.lostKeys),
    lostKeysReport: shards.find((s) => s.lostKeysReport !== null)?.lostKeysReport ?? null,
    skippedCommands: sum((s) => s.skippedCommands),
    complete: shards.every((s) => s.complete),
  };
}
