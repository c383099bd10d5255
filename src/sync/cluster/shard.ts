/**
 * The contract between the cluster coordinator and one shard's session: what the coordinator
 * hands down (the shard's source, its snapshot turn, the shared migration guard) and what the
 * shard reports back (its progress, as events rather than polled status).
 */
import type { ShardSourceRef } from '../../replication/source.js';
import type { MigrationGuard } from './migration-guard.js';
import type { SyncLease } from '../../checkpoint/lease.js';

/**
 * What makes a session one shard of a cluster source sync (README "Cluster source"). Its siblings
 * (the other shards' sessions) are not "other syncs": their keys live in other slots, so a full
 * resync of this shard deletes the keys of its own slots instead of flushing the target.
 */
export interface ShardRole {
  source: ShardSourceRef & { slots(): [number, number][]; importingSlots(): Promise<number[]> };
  /** Whether a registry id is a sibling shard's session. */
  isSibling(id: string): boolean;
  /** The --existing decision taken once for the whole target: whether it held no keys but ours. */
  cleanStart: boolean;
  /** Taken before each PSYNC and released once the snapshot is applied (or none came): staggers the source's forks. */
  gate(): Promise<() => void>;
  /** Shared by every shard: keeps a slot migration's DEL from deleting the keys it moved. */
  guard: MigrationGuard;
  /** Resolves once the other shards have applied what they had received when called (bounded wait). */
  othersSettled(): Promise<void>;
  /** The shard's lease, already claimed by the coordinator (the session takes it over and fences the previous holder). */
  lease?: SyncLease;
}

/** Where a shard stands, as the coordinator needs it (not for display: see SyncStatus). */
export interface ShardProgress {
  streaming: boolean;
  /** Offset of the last stream byte received (null before streaming). */
  received: number | null;
  /** Offset applied on the target. */
  applied: number | null;
}

/** At most `n` holders at once; a holder's release is idempotent (the shards' snapshot turns). */
export class Gate {
  private held = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly n: number) {}

  async acquire(): Promise<() => void> {
    if (this.held >= this.n) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.held--;
    };
  }
}
