/**
 * What the steps of one sync share: its fixed parts (options, identity, selection, the shard
 * role), the collaborators that each own one concern, and the two things that change per run
 * (the checkpoint store, once the target is known; the current source connection).
 */
import type { SyncLease } from '../checkpoint/lease.js';
import type { ClusterMarkers } from '../checkpoint/cluster-markers.js';
import type { SyncIdentity } from '../checkpoint/identity.js';
import type { CheckpointStore } from '../checkpoint/store.js';
import type { CheckpointTracker } from '../checkpoint/tracker.js';
import type { Logger } from '../observe/logger.js';
import type { ServerInfo } from '../replication/server-info.js';
import type { SourceSpec } from '../replication/source.js';
import type { AppliedLog } from './apply/applied-log.js';
import type { SnapshotApplier } from './apply/snapshot-writer.js';
import type { TargetConnections } from './apply/target-connections.js';
import type { ShardRole } from './cluster/shard.js';
import type { SyncFigures } from './figures.js';
import type { LostKeys } from './lost-keys.js';
import type { ResolvedSyncOptions } from './options.js';
import type { Ownership } from './ownership/registry.js';
import type { ErrorPolicy } from './policy.js';
import type { PartialScope } from './relay/selection.js';
import type { RunControl } from './run-control.js';
import type { SourceConnection } from './steps/source-connection.js';

export interface SyncContext {
  readonly opts: ResolvedSyncOptions;
  readonly log: Logger;
  readonly identity: SyncIdentity;
  readonly sourceSpec: SourceSpec;
  readonly shard: ShardRole | null;
  readonly scope: PartialScope;
  readonly run: RunControl;
  readonly figures: SyncFigures;
  readonly policy: ErrorPolicy;
  readonly lost: LostKeys;
  readonly lease: SyncLease;
  /** Proof that a cluster target's masters still hold the copy (its checkpoint is a file). */
  readonly markers: ClusterMarkers;
  readonly target: TargetConnections;
  readonly units: AppliedLog;
  readonly tracker: CheckpointTracker;
  readonly owner: Ownership;
  /** Chosen once the target is known (starting). */
  store: CheckpointStore;
  /** The source's INFO read before the first PSYNC (run_id, replids, memory...). */
  sourceInfo: ServerInfo | null;
  /** The current replication connection (null between connections). */
  source: SourceConnection | null;
  /** The snapshot being applied (places a key the target rejects in its db), null outside a full sync. */
  snapshot: SnapshotApplier | null;
  /** Events of the session (the library API). */
  readonly emit: SessionEmitter;
}

export interface SessionEmitter {
  fullSyncDone(info: { replid: string; offset: number; keys: number; ms: number }): void;
  applied(offset: number): void;
}
