/**
 * How many of the target's keys are Replicant's own (the keys `isOwnKey` names, checkpoint/
 * reserved.ts: the registry of syncs, each sync's checkpoint, lease and ledger, a cluster source's shard
 * list; on a cluster, its marker keys), so key counts can be compared with the source's. Listed by
 * name from the registry rather than found by SCAN, which would walk the whole keyspace during
 * the pause.
 */
import { ClusterMarkers } from '../checkpoint/cluster-markers.js';
import { REGISTRY_KEY, ledgerKeyOf, parseRegistry } from '../checkpoint/identity.js';
import { reservedKey } from '../checkpoint/reserved.js';
import type { VerifySide } from '../verify/side.js';

export async function reservedKeyCount(target: VerifySide): Promise<number> {
  const registry = parseRegistry(await target.call(0, ['HGETALL', REGISTRY_KEY]));
  const keys = [REGISTRY_KEY, ...[...registry].flatMap(([id, r]) => [r.checkpointKey, r.leaseKey, ledgerKeyOf(id)])];
  // A cluster source's shards register as <name>@<shard>; their shard list is kept under <name>.
  for (const id of registry.keys()) if (id.includes('@')) keys.push(reservedKey(`shards:${id.slice(0, id.lastIndexOf('@'))}`));
  // On a cluster target each sync also keeps a marker key per master, in the first slot it serves.
  const slots = target.clusterFirstSlots();
  if (slots !== null) {
    for (const id of registry.keys()) {
      const markers = new ClusterMarkers(id);
      keys.push(...slots.map((s) => markers.key(s)));
    }
  }
  const unique = [...new Set(keys)];
  return target.existsCount(0, unique.map((k) => Buffer.from(k)));
}
