/**
 * A Redis Cluster as the source: its topology read from CLUSTER NODES (any reachable node
 * answers), and one `ShardSource` per shard telling a sync session where to connect now.
 *
 * A shard is a master that serves slots (or was just added) with its replicas. It is tracked by
 * the set of its node ids, not by an address: node ids survive restarts (nodes.conf), and after
 * a failover the promoted replica is a node the shard already had, so the session reconnects to
 * it and resumes with PSYNC (its master_replid2 is the replication id the session holds).
 */
import type { Logger } from '../observe/logger.js';
import { SLOT_COUNT } from '../commands/slot.js';
import { ReplicationSourceError, isRetryable } from './errors.js';
import { readServerText } from './server-info.js';
import { endpointLabel, type SourceEndpoint } from './url.js';

export interface ClusterNode {
  id: string;
  host: string;
  port: number;
  flags: ReadonlySet<string>;
  /** The master a replica follows (null for a master). */
  masterId: string | null;
  /** Slot ranges served (inclusive); migrating/importing markers are left out. */
  slots: [number, number][];
  /** Slots this node is importing (`[slot-<-id]`: shown by a node for itself only). */
  importing: number[];
}

export interface ClusterShard {
  master: ClusterNode;
  replicas: ClusterNode[];
}

/** Flags of a node that cannot be used now (failed, being joined, address unknown). */
const UNUSABLE = ['fail', 'fail?', 'handshake', 'noaddr'];

export function usableNode(n: ClusterNode): boolean {
  return UNUSABLE.every((f) => !n.flags.has(f)) && n.port > 0;
}

/**
 * CLUSTER NODES: `<id> <ip:port@cport[,hostname]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...`.
 * `fallbackHost` replaces an empty ip (a node that does not know its own address yet).
 */
export function parseClusterNodes(text: string, fallbackHost: string): ClusterNode[] {
  const nodes: ClusterNode[] = [];
  for (const line of text.split(/\r?\n/)) {
    const f = line.trim().split(' ');
    if (f.length < 8) continue;
    const addr = /^(.*):(\d+)@\d+(?:,.*)?$/.exec(f[1]!);
    if (!addr) throw new ReplicationSourceError(`CLUSTER NODES: cannot read the address ${JSON.stringify(f[1])} of node ${f[0]}`, false);
    const slots: [number, number][] = [];
    const importing: number[] = [];
    for (const s of f.slice(8)) {
      const imp = /^\[(\d+)-<-/.exec(s);
      if (imp) importing.push(Number(imp[1]));
      const m = /^(\d+)(?:-(\d+))?$/.exec(s);
      if (!m) continue; // [slot->-id] / [slot-<-id]: a migration in progress, not ownership
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      if (lo <= hi && hi < SLOT_COUNT) slots.push([lo, hi]);
    }
    const host = addr[1]!.replace(/^\[(.*)\]$/, '$1');
    nodes.push({ id: f[0]!, host: host === '' ? fallbackHost : host, port: Number(addr[2]), flags: new Set(f[2]!.split(',')), masterId: f[3] === '-' ? null : f[3]!, slots, importing });
  }
  return nodes;
}

/** The shards: every usable master with its replicas. */
export function shardsOf(nodes: readonly ClusterNode[]): ClusterShard[] {
  return nodes
    .filter((n) => n.flags.has('master') && usableNode(n))
    .map((master) => ({ master, replicas: nodes.filter((r) => r.masterId === master.id && r.flags.has('slave')) }))
    .sort((a, b) => (a.master.slots[0]?.[0] ?? SLOT_COUNT) - (b.master.slots[0]?.[0] ?? SLOT_COUNT));
}

export function slotRangesText(ranges: readonly [number, number][]): string {
  return ranges.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(',') || 'none';
}

/** The topology of a cluster source, refreshed from whichever node answers. */
export class ClusterSource {
  private nodes: ClusterNode[] = [];

  /** `seed`: the address given, with the credentials and TLS settings every node shares. */
  constructor(readonly seed: SourceEndpoint) {}

  /** Where to reach `node`, with the seed's credentials and TLS settings. */
  endpointOf(node: ClusterNode): SourceEndpoint {
    return { ...this.seed, host: node.host, port: node.port };
  }

  get shards(): ClusterShard[] {
    return shardsOf(this.nodes);
  }

  /** Node id → node, as last read. */
  node(id: string): ClusterNode | undefined {
    return this.nodes.find((n) => n.id === id);
  }

  /** Takes a CLUSTER NODES reply (read from a node reached at `host`) as the current topology. */
  use(text: string, host: string): ClusterShard[] {
    const nodes = parseClusterNodes(text, host);
    if (nodes.length === 0) throw new Error('CLUSTER NODES listed no node');
    this.nodes = nodes;
    return this.shards;
  }

  /** Reads CLUSTER NODES from a known node, else from the seed. */
  async refresh(): Promise<ClusterShard[]> {
    const tried = new Set<string>();
    const failures: string[] = [];
    let refused = 0;
    const candidates = [...this.nodes.filter(usableNode).map((n) => this.endpointOf(n)), this.seed];
    for (const ep of candidates) {
      const label = endpointLabel(ep);
      if (tried.has(label)) continue;
      tried.add(label);
      try {
        const text = await readServerText(ep, ['CLUSTER', 'NODES'], 3000);
        if (text === null) throw new Error('CLUSTER NODES refused (not a cluster node, or the user may not run it: grant it +cluster|nodes)');
        return this.use(text, ep.host);
      } catch (e) {
        // A refusal, wrong credentials or a refused TLS handshake will not fix themselves.
        if (!isRetryable(e)) refused++;
        failures.push(`${label}: ${(e as Error).message}`);
      }
    }
    // Nodes that all refuse will refuse again; unreachable ones may come back.
    throw new ReplicationSourceError(`no node of the cluster source answered CLUSTER NODES (${failures.join('; ')})`, refused < failures.length);
  }
}

/**
 * How well `shard` matches a set of node ids: its master being one of them counts most.
 * 0: no common node.
 */
function affinity(shard: ClusterShard, ids: ReadonlySet<string>): number {
  return (ids.has(shard.master.id) ? 1000 : 0) + shard.replicas.filter((r) => ids.has(r.id)).length;
}

/** The shard of `shards` that `ids` designate, or null. */
export function matchShard(shards: readonly ClusterShard[], ids: ReadonlySet<string>): ClusterShard | null {
  let best: ClusterShard | null = null;
  let score = 0;
  for (const s of shards) {
    const a = affinity(s, ids);
    if (a > score) [best, score] = [s, a];
  }
  return best;
}

/** One shard of a cluster source, followed across failovers (SourceSpec kind `cluster-shard`). */
export class ShardSource {
  private readonly ids: Set<string>;

  /** `key`: the node id of the shard's master when it was first seen (its name in checkpoints). */
  constructor(
    readonly key: string,
    ids: Iterable<string>,
    private readonly cluster: ClusterSource,
    private readonly preferReplica: boolean,
  ) {
    this.ids = new Set(ids);
  }

  get nodeIds(): string[] {
    return [...this.ids].sort();
  }

  /** Stable across failovers and restarts: it names the sync's registry entry. */
  describe(): string {
    return `cluster shard ${this.key}`;
  }

  /** This shard in the topology last read (null: no usable master now, e.g. during a failover). */
  current(): ClusterShard | null {
    return matchShard(this.cluster.shards, this.ids);
  }

  /** Adds the nodes the shard has now (a replica added, a node promoted); true when any is new. */
  track(): boolean {
    const s = this.current();
    if (s === null) return false;
    const before = this.ids.size;
    for (const n of [s.master, ...s.replicas]) this.ids.add(n.id);
    return this.ids.size !== before;
  }

  /** The slots the shard serves now (empty when it has no usable master). */
  slots(): [number, number][] {
    return this.current()?.master.slots ?? [];
  }

  /**
   * The node to replicate from now: the master, or with --prefer-replica a usable replica (the
   * master when none is). The replica picked last is kept while it stays one: a replica added
   * later does not move the link.
   */
  pick(): ClusterNode | null {
    const s = this.current();
    if (s === null) return null;
    if (this.preferReplica) {
      const usable = s.replicas.filter(usableNode);
      const replica = usable.find((r) => r.id === this.picked) ?? usable.sort((a, b) => a.id.localeCompare(b.id))[0];
      if (replica !== undefined) {
        this.picked = replica.id;
        return replica;
      }
    }
    return s.master;
  }

  /** The replica pick() chose last (--prefer-replica). */
  private picked: string | null = null;

  /** Re-reads the topology and names the endpoint to connect to (called before every connection). */
  async resolve(logger: Logger): Promise<SourceEndpoint> {
    await this.cluster.refresh();
    this.track();
    const node = this.pick();
    if (node === null) throw new ReplicationSourceError(`${this.describe()}: no usable master in the cluster now (failover in progress?)`, true);
    const ep = this.cluster.endpointOf(node);
    logger.info({ shard: this.key, node: node.id, address: endpointLabel(ep), role: node.flags.has('master') ? 'master' : 'replica', slots: slotRangesText(this.slots()) }, 'cluster shard source');
    return ep;
  }

  /**
   * The slots the shard's master is importing now (a migration into it in progress), read from
   * the master itself (a node shows its migrations only in its own line). Empty when unknown.
   */
  async importingSlots(): Promise<number[]> {
    const master = this.current()?.master;
    if (master === undefined) return [];
    const text = await readServerText(this.cluster.endpointOf(master), ['CLUSTER', 'NODES'], 3000).catch(() => null);
    if (text === null) return [];
    return parseClusterNodes(text, master.host).find((n) => n.flags.has('myself'))?.importing ?? [];
  }

  /** Where `pick()` points now, without re-reading the topology. */
  endpointNow(): SourceEndpoint | null {
    const node = this.pick();
    return node === null ? null : this.cluster.endpointOf(node);
  }
}
