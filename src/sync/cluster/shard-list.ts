/**
 * The shard list of a cluster source sync, kept on the target (`__replicant:shards:<name>`):
 * shard key → node ids, and the first start's --existing outcome. A restart after a failover maps
 * the promoted master to its shard's checkpoint through it, and every process sharing the sync
 * names the shards alike. The first start is decided by one process only (a lock key): two
 * processes started together must not both apply --existing (one could flush what the other
 * already copied).
 */
import { ExitCode, ReplicantError } from '../../errors.js';
import type { Logger } from '../../observe/logger.js';
import { reservedKey } from '../../checkpoint/reserved.js';
import { ClusterSource, ShardSource, type ClusterShard } from '../../replication/cluster-source.js';
import type { NodeCall } from '../../checkpoint/lease.js';

/** The field holding the first start's outcome. */
const META_FIELD = '~meta';
/** How long the first-start lock lives if its holder dies while checking the target. */
const FIRST_START_LOCK_MS = 60_000;

export interface KnownShards {
  cleanStart: boolean;
  shards: Map<string, string[]>;
}

export class ShardList {
  readonly key: string;
  private readonly lockKey: string;

  constructor(name: string, private readonly log: Logger) {
    this.key = reservedKey(`shards:${name}`);
    this.lockKey = reservedKey(`first-start:${name}`);
  }

  async read(call: NodeCall): Promise<KnownShards | null> {
    const reply = (await call(['HGETALL', this.key])) as unknown[];
    if (!Array.isArray(reply) || reply.length === 0) return null;
    const shards = new Map<string, string[]>();
    let cleanStart: boolean | null = null;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const field = String(reply[i]);
      try {
        const v = JSON.parse(String(reply[i + 1])) as { nodes?: unknown; cleanStart?: unknown };
        if (field === META_FIELD) cleanStart = v.cleanStart === true;
        else if (Array.isArray(v.nodes)) shards.set(field, v.nodes.map(String));
      } catch {
        this.log.warn({ key: this.key, field }, 'unreadable entry in the shard list on the target: ignored');
      }
    }
    // Shards without the outcome: a first start still deciding (or one that died doing so).
    return cleanStart === null ? null : { cleanStart, shards };
  }

  async save(call: NodeCall, cleanStart: boolean, shards: Iterable<ShardSource>): Promise<void> {
    const args: string[] = ['HSET', this.key, META_FIELD, JSON.stringify({ cleanStart })];
    for (const s of shards) args.push(s.key, JSON.stringify({ nodes: s.nodeIds }));
    await call(args);
  }

  /**
   * The shard list, deciding the first start once for every process: the one that takes the lock
   * runs `decide` (the --existing check) and saves the outcome; the others wait for it.
   * `firstStart` tells whether this process decided it.
   */
  async readOrDecide(call: NodeCall, me: string, decide: () => Promise<boolean>, stopping: () => boolean): Promise<{ known: KnownShards; firstStart: boolean }> {
    const deadline = Date.now() + 2 * FIRST_START_LOCK_MS;
    for (let announced = false; ; ) {
      const known = await this.read(call);
      if (known !== null) return { known, firstStart: false };
      if ((await call(['SET', this.lockKey, me, 'NX', 'PX', FIRST_START_LOCK_MS])) !== null) {
        try {
          const cleanStart = await decide();
          return { known: { cleanStart, shards: new Map() }, firstStart: true };
        } finally {
          await call(['DEL', this.lockKey]).catch(() => undefined);
        }
      }
      if (!announced) {
        announced = true;
        this.log.info({ holder: String(await call(['GET', this.lockKey])) }, 'another process of this sync is checking the target at its first start: waiting for its outcome');
      }
      if (stopping() || Date.now() > deadline) throw new ReplicantError('LOCKED', `the first start of this cluster sync is being decided by another process (${this.lockKey}) and did not end within ${(2 * FIRST_START_LOCK_MS) / 1000} s`, ExitCode.LOCKED);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** The tracked shard for `s`: the known entry sharing a node with it, or a new one keyed by its master. */
export function shardSourceFor(s: ClusterShard, known: Map<string, string[]>, taken: (key: string) => boolean, cluster: ClusterSource, preferReplica: boolean): ShardSource {
  const ids = [s.master.id, ...s.replicas.map((r) => r.id)];
  let key = s.master.id;
  let nodes: string[] = ids;
  let best = 0;
  for (const [k, list] of known) {
    // A known shard already matched by another current one (nodes moved between shards) is not taken twice.
    if (taken(k)) continue;
    const score = (list.includes(s.master.id) ? 1000 : 0) + ids.filter((id) => list.includes(id)).length;
    if (score > best) [best, key, nodes] = [score, k, [...new Set([...list, ...ids])]];
  }
  if (taken(key)) key = `${key}-${Date.now().toString(36)}`;
  return new ShardSource(key, nodes, cluster, preferReplica);
}
