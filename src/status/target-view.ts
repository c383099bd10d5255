/**
 * `replicant status`: the syncs writing to a target, read from the target alone (nothing is
 * written): the registry of syncs, each one's lease holder (host and pid) and checkpoint, and for
 * a cluster source the shards with the process holding each and the processes sharing them.
 */
import { REGISTRY_KEY, parseRegistry, type SyncRegistration } from '../checkpoint/identity.js';
import { parseCheckpoint, type Checkpoint } from '../checkpoint/checkpoint.js';
import { leaseHolder } from '../checkpoint/lease.js';
import { reservedKey } from '../checkpoint/reserved.js';
import { membersKey, parseMembers, type MemberInfo } from '../sync/cluster/members.js';
import type { NodeCall } from '../checkpoint/lease.js';

export interface SyncView {
  id: string;
  source: string;
  since: number;
  filter: string | null;
  /** The process holding the sync's lease now (null: none, the sync is not running). */
  heldBy: { host: string; pid: number; member: string | null } | null;
  /** The checkpoint on the target (null: none, or kept in a file elsewhere). */
  checkpoint: Pick<Checkpoint, 'state' | 'offset' | 'replid' | 'db' | 'at'> | null;
}

export interface ClusterSyncView {
  name: string;
  /** Live processes sharing the shards, oldest first. */
  members: MemberInfo[];
  shards: (SyncView & { shard: string })[];
}

export interface TargetView {
  syncs: SyncView[];
  clusters: ClusterSyncView[];
}

/** Reads the target's view of its syncs; `name` keeps only that sync (or cluster source sync). */
export async function readTargetView(call: NodeCall, name?: string): Promise<TargetView> {
  const registry = parseRegistry(await call(['HGETALL', REGISTRY_KEY]));
  const clusters = new Map<string, ClusterSyncView>();
  const syncs: SyncView[] = [];
  const now = await targetTime(call);
  for (const [id, r] of [...registry].sort(([a], [b]) => a.localeCompare(b))) {
    const at = id.lastIndexOf('@');
    const group = at > 0 ? id.slice(0, at) : null;
    if (group !== null && !clusters.has(group)) {
      const list = (await call(['HGETALL', reservedKey(`shards:${group}`)])) as unknown[];
      if (Array.isArray(list) && list.length > 0) {
        clusters.set(group, { name: group, members: parseMembers((await call(['HGETALL', membersKey(group)])) as unknown[], now), shards: [] });
      }
    }
    const cluster = group === null ? undefined : clusters.get(group);
    const wanted = name === undefined || id === name || (cluster !== undefined && group === name);
    if (!wanted) continue;
    const view = await syncView(call, id, r, cluster?.members ?? []);
    if (cluster !== undefined) cluster.shards.push({ ...view, shard: id.slice(at + 1) });
    else syncs.push(view);
  }
  return { syncs, clusters: [...clusters.values()].filter((c) => name === undefined || c.name === name) };
}

async function syncView(call: NodeCall, id: string, r: SyncRegistration, members: readonly MemberInfo[]): Promise<SyncView> {
  const lease = await call(['GET', r.leaseKey]);
  const holder = lease === null ? null : leaseHolder(String(lease));
  const cp = parseCheckpoint((await call(['GET', r.checkpointKey])) as Buffer | string | null);
  return {
    id,
    source: r.source,
    since: r.since,
    filter: r.filter ?? null,
    heldBy: holder === null ? null : { host: holder.host, pid: holder.pid, member: members.find((m) => m.host === holder.host && m.pid === holder.pid)?.id ?? null },
    checkpoint: cp === null ? null : { state: cp.state, offset: cp.offset, replid: cp.replid, db: cp.db, at: cp.at },
  };
}

async function targetTime(call: NodeCall): Promise<number> {
  const [s, us] = (await call(['TIME'])) as [unknown, unknown];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** The view as text, one block per sync. */
export function formatTargetView(v: TargetView, target: string): string {
  const out: string[] = [];
  const count = v.syncs.length + v.clusters.length;
  out.push(`target ${target}: ${count === 0 ? 'no sync writes to it' : `${count} sync${count === 1 ? '' : 's'}`}`);
  const held = (s: SyncView): string => (s.heldBy === null ? 'not running (no lease)' : `${s.heldBy.host} pid ${s.heldBy.pid}`);
  const checkpoint = (s: SyncView): string => (s.checkpoint === null ? 'none on the target' : `${s.checkpoint.state} at offset ${s.checkpoint.offset}`);
  for (const c of v.clusters) {
    const running = c.shards.filter((s) => s.heldBy !== null).length;
    out.push('', `sync "${c.name}" (cluster source): ${c.shards.length} shards, ${running} running, ${c.members.length} process${c.members.length === 1 ? '' : 'es'}`);
    for (const m of c.members) out.push(`  process ${m.id}: ${m.host} pid ${m.pid}, ${m.shards.length} shard${m.shards.length === 1 ? '' : 's'}${m.maxShards === null ? '' : ` (--max-shards ${m.maxShards})`}, seen ${(m.ageMs / 1000).toFixed(1)} s ago`);
    for (const s of c.shards) out.push(`  shard ${s.shard} (${s.source}): ${held(s)}; checkpoint ${checkpoint(s)}`);
  }
  for (const s of v.syncs) {
    out.push('', `sync "${s.id}" (source ${s.source}${s.filter === null ? '' : ', partial'}): ${held(s)}; checkpoint ${checkpoint(s)}`);
  }
  return `${out.join('\n')}\n`;
}
