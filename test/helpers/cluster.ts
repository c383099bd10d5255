/**
 * A real Redis Cluster for integration tests, and the topology changes a cluster source must
 * follow: a slot migration (`migrateSlot`), a manual failover (`failover`), a new master
 * (`addMaster`). Nodes are started through `startRedis` with `--cluster-enabled yes` and an
 * explicit free `cluster-port` (the default port+10000 may be taken or out of range).
 *
 * The cluster is built by hand (distinct config epochs, ADDSLOTSRANGE, CLUSTER MEET, CLUSTER
 * REPLICATE) rather than by `redis-cli --cluster create`, which refuses fewer than 3 masters.
 * `masters`/`replicasOf`/`ownerOf` read the topology from CLUSTER NODES. Every helper returns
 * only once every live node agrees on the change (CLUSTER NODES) and reports cluster_state:ok,
 * so a test can act on any node right after. Always `stop()` the cluster in afterAll.
 */
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { ReplicationStreamParser } from '../../src/resp/stream-parser.js';
import { freePort, startRedis, waitFor, type RedisServer } from './redis.js';
import type { TlsFiles } from './tls.js';

export interface ClusterOptions {
  masters?: number;
  /** Replicas started for every master (default 0). */
  replicasPerMaster?: number;
  password?: string;
  /** Every node serves TLS only, the cluster bus too (`tls-cluster yes`); see startRedis. */
  tls?: TlsFiles;
}

export interface RedisCluster {
  /** Every node started for this cluster: masters, then replicas, then nodes added later. */
  nodes: RedisServer[];
  /** host/port of the first master (a seed for discovery). */
  seed: { host: string; port: number };
  password: string | undefined;
  tls: TlsFiles | undefined;
  /** An ioredis Cluster client (closed by stop()). */
  client(): InstanceType<typeof Redis.Cluster>;
  /** A new cluster-enabled node, not yet part of the cluster (stopped by stop()). */
  startNode(): Promise<RedisServer>;
  stop(): Promise<void>;
}

/** One line of CLUSTER NODES. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  flags: string[];
  master: boolean;
  /** The master's node id for a replica, else null. */
  masterOf: string | null;
  /** Owned slots as inclusive ranges (migrating/importing markers excluded). */
  slots: Array<[number, number]>;
  /** Slots this node marks as migrating to, or importing from, another node. */
  migrating: number[];
  importing: number[];
}

const admins = new WeakMap<RedisServer, Redis>();
/** Cluster bus port of each node: CLUSTER MEET needs it (it is not the default port+10000). */
const busPorts = new WeakMap<RedisServer, number>();

/** One admin connection per node, closed with the node (its client() list). */
export function admin(node: RedisServer): Redis {
  let c = admins.get(node);
  if (c === undefined) {
    c = node.client();
    admins.set(node, c);
  }
  return c;
}

function alive(n: RedisServer): boolean {
  return n.process.exitCode === null && n.process.signalCode === null;
}

export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  const out: ClusterNodeInfo[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 8) continue;
    const flags = f[2]!.split(',');
    const info: ClusterNodeInfo = {
      id: f[0]!,
      port: Number(/:(\d+)@/.exec(f[1]!)?.[1] ?? 0),
      flags,
      master: flags.includes('master'),
      masterOf: f[3] === '-' ? null : f[3]!,
      slots: [],
      migrating: [],
      importing: [],
    };
    for (const s of f.slice(8)) {
      const mig = /^\[(\d+)->-/.exec(s);
      const imp = /^\[(\d+)-<-/.exec(s);
      if (mig) info.migrating.push(Number(mig[1]));
      else if (imp) info.importing.push(Number(imp[1]));
      else {
        const [a, b] = s.split('-');
        info.slots.push([Number(a), Number(b ?? a)]);
      }
    }
    out.push(info);
  }
  return out;
}

export async function clusterNodes(node: RedisServer): Promise<ClusterNodeInfo[]> {
  return parseClusterNodes((await admin(node).call('CLUSTER', 'NODES')) as string);
}

export async function nodeId(node: RedisServer): Promise<string> {
  return (await admin(node).call('CLUSTER', 'MYID')) as string;
}

function owns(n: ClusterNodeInfo, slot: number): boolean {
  return n.slots.some(([a, b]) => slot >= a && slot <= b);
}

/** The live nodes of the cluster that currently are masters, as the first live node sees it. */
export async function masters(cluster: RedisCluster): Promise<RedisServer[]> {
  const view = await clusterNodes(cluster.nodes.find(alive)!);
  const ports = new Set(view.filter((n) => n.master && !n.flags.includes('fail')).map((n) => n.port));
  return cluster.nodes.filter((n) => alive(n) && ports.has(n.port));
}

/** The live replicas of `master`, as `master` sees them. */
export async function replicasOf(cluster: RedisCluster, master: RedisServer): Promise<RedisServer[]> {
  const view = await clusterNodes(master);
  const id = view.find((n) => n.flags.includes('myself'))!.id;
  const ports = new Set(view.filter((n) => n.masterOf === id).map((n) => n.port));
  return cluster.nodes.filter((n) => alive(n) && ports.has(n.port));
}

/** The master owning `slot`, as the first live node sees it. */
export async function ownerOf(cluster: RedisCluster, slot: number): Promise<RedisServer> {
  const view = await clusterNodes(cluster.nodes.find(alive)!);
  const port = view.find((n) => n.master && owns(n, slot))?.port;
  const node = cluster.nodes.find((n) => n.port === port);
  if (node === undefined) throw new Error(`no master owns slot ${slot}`);
  return node;
}

/** Waits until every live node reports cluster_state:ok (unless `stateOk` is false) and `agree` holds for its CLUSTER NODES. */
async function waitAgreement(cluster: RedisCluster, what: string, agree: (view: ClusterNodeInfo[]) => boolean, timeoutMs = 30_000, stateOk = true): Promise<void> {
  await waitFor(async () => {
    for (const n of cluster.nodes.filter(alive)) {
      const c = admin(n);
      if (stateOk && !((await c.call('CLUSTER', 'INFO')) as string).includes('cluster_state:ok')) return false;
      if (!agree(parseClusterNodes((await c.call('CLUSTER', 'NODES')) as string))) return false;
    }
    return true;
  }, what, timeoutMs, 100);
}

async function waitReplicaLinked(replica: RedisServer): Promise<void> {
  await waitFor(async () => {
    const info = (await admin(replica).info('replication')) as string;
    return info.includes('master_link_status:up') && info.includes('master_sync_in_progress:0');
  }, `replica ${replica.port} in sync with its master`, 30_000, 100);
}

/**
 * Makes `added` known to every live node of the cluster (one wait for all of them). `stateOk`
 * false: do not wait for the new nodes' cluster_state:ok (a new master-without-slots waits out
 * a rejoin delay of up to the node timeout; a node about to become a replica need not).
 */
async function meet(cluster: RedisCluster, added: RedisServer[], stateOk = true): Promise<void> {
  const seed = cluster.nodes.find((n) => !added.includes(n) && alive(n))!;
  for (const n of added) await admin(seed).call('CLUSTER', 'MEET', '127.0.0.1', String(n.port), String(busPorts.get(n)));
  const ids = await Promise.all(added.map(nodeId));
  const total = cluster.nodes.filter(alive).length;
  await waitAgreement(cluster, `nodes ${added.map((n) => n.port).join(', ')} known by every node`, (view) =>
    view.length === total && ids.every((id) => view.some((n) => n.id === id && !n.flags.includes('handshake'))), 30_000, stateOk);
}

/**
 * Starts a cluster: `startCluster(3)` or `startCluster({ masters, replicasPerMaster, password, tls })`
 * (the positional `(masters, password, tls)` form is kept for older tests). Slots are split evenly
 * over the masters, in order.
 */
export async function startCluster(opts?: number | ClusterOptions, password?: string, tls?: TlsFiles): Promise<RedisCluster> {
  const o: ClusterOptions = typeof opts === 'object' ? opts : { masters: opts ?? 3, ...(password !== undefined ? { password } : {}), ...(tls !== undefined ? { tls } : {}) };
  const masterCount = o.masters ?? 3;
  const nodes: RedisServer[] = [];
  const clients: InstanceType<typeof Redis.Cluster>[] = [];
  const cluster: RedisCluster = {
    nodes,
    seed: { host: '127.0.0.1', port: 0 },
    password: o.password,
    tls: o.tls,
    client() {
      const c = new Redis.Cluster([{ host: '127.0.0.1', port: cluster.seed.port }], {
        redisOptions: { ...(o.password ? { password: o.password } : {}), ...(o.tls ? { tls: o.tls.clientOptions() } : {}) },
      });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    async startNode() {
      const busPort = await freePort();
      const node = await startRedis({
        args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort), '--cluster-node-timeout', '5000', ...(o.tls ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : [])],
        ...(o.password ? { password: o.password } : {}),
        ...(o.tls ? { tls: { files: o.tls } } : {}),
      });
      busPorts.set(node, busPort);
      nodes.push(node);
      return node;
    },
    async stop() {
      for (const c of clients.splice(0)) c.disconnect();
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  try {
    for (let i = 0; i < masterCount; i++) await cluster.startNode();
    cluster.seed.port = nodes[0]!.port;
    const per = Math.floor(16384 / masterCount);
    for (let i = 0; i < masterCount; i++) {
      const c = admin(nodes[i]!);
      // Distinct epochs, as redis-cli sets them: no epoch collision to resolve before the state is ok.
      await c.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1));
      await c.call('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(i === masterCount - 1 ? 16383 : (i + 1) * per - 1));
    }
    for (const n of nodes.slice(1)) await admin(nodes[0]!).call('CLUSTER', 'MEET', '127.0.0.1', String(n.port), String(busPorts.get(n)));
    await waitAgreement(cluster, 'cluster state ok on every node', (view) => view.length === masterCount && view.every((n) => !n.flags.includes('handshake')));
    const replicaOf = Array.from({ length: o.replicasPerMaster ?? 0 }, () => nodes.slice(0, masterCount)).flat();
    if (replicaOf.length > 0) await addReplicas(cluster, replicaOf);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** Starts one node per entry of `of`, each a replica of that master (in sync, known as such by every node). */
export async function addReplicas(cluster: RedisCluster, of: RedisServer[]): Promise<RedisServer[]> {
  // Started and joined together: a new node takes seconds to reach cluster_state:ok, once for all.
  const added = await Promise.all(of.map(() => cluster.startNode()));
  await meet(cluster, added, false);
  const masterIds = await Promise.all(of.map(nodeId));
  const ids = await Promise.all(added.map(nodeId));
  for (const [i, n] of added.entries()) await admin(n).call('CLUSTER', 'REPLICATE', masterIds[i]!);
  await waitAgreement(cluster, `nodes ${added.map((n) => n.port).join(', ')} replicas everywhere`, (view) =>
    ids.every((id, i) => view.some((n) => n.id === id && n.masterOf === masterIds[i])));
  await Promise.all(added.map(waitReplicaLinked));
  return added;
}

/** Starts a node and joins it as a master without slots (give it some with migrateSlot). */
export async function addMaster(cluster: RedisCluster): Promise<RedisServer> {
  const node = await cluster.startNode();
  await meet(cluster, [node]);
  return node;
}

export interface MigrateOptions {
  /** Keys per `MIGRATE ... KEYS` call (default 100). */
  batch?: number;
  /** Called after each MIGRATE batch, while the slot is still migrating (e.g. to write through ASK). */
  onBatch?: (movedSoFar: number) => Promise<void> | void;
}

/**
 * Moves `slot` and its keys from master `from` to master `to`, as redis-cli --cluster reshard
 * does: IMPORTING on `to`, MIGRATING on `from`, GETKEYSINSLOT + MIGRATE ... KEYS until the slot
 * is empty on `from`, then SETSLOT NODE on `to`, `from` and every other master. Returns the
 * number of keys moved.
 */
export async function migrateSlot(cluster: RedisCluster, slot: number, from: RedisServer, to: RedisServer, opts: MigrateOptions = {}): Promise<number> {
  const batch = opts.batch ?? 100;
  const fromId = await nodeId(from);
  const toId = await nodeId(to);
  const src = admin(from);
  await admin(to).call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId);
  await src.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId);
  let moved = 0;
  for (;;) {
    const keys = (await src.callBuffer('CLUSTER', 'GETKEYSINSLOT', String(slot), String(batch))) as Buffer[];
    if (keys.length === 0) break;
    const auth = cluster.password !== undefined ? ['AUTH', cluster.password] : [];
    const reply = (await src.call('MIGRATE', '127.0.0.1', String(to.port), '', '0', '10000', ...auth, 'KEYS', ...keys)) as string;
    // NOKEY: every key of the batch expired or was deleted since GETKEYSINSLOT; the loop looks again.
    if (reply !== 'OK' && reply !== 'NOKEY') throw new Error(`MIGRATE of slot ${slot} from ${from.port} to ${to.port} replied ${reply}`);
    moved += keys.length;
    await opts.onBatch?.(moved);
  }
  // The destination first: once it owns the slot, no client is sent back and forth.
  await admin(to).call('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
  await src.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
  for (const m of await masters(cluster)) {
    if (m !== from && m !== to) await admin(m).call('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
  }
  await waitAgreement(cluster, `slot ${slot} owned by ${to.port} everywhere`, (view) =>
    view.every((n) => (n.id === toId ? owns(n, slot) : !owns(n, slot)) && !n.migrating.includes(slot) && !n.importing.includes(slot)));
  return moved;
}

/**
 * Promotes `replica` by CLUSTER FAILOVER (the coordinated, lossless one) and waits until every
 * node sees it as a master, the old master as its replica, and the old master in sync with it.
 */
export async function failover(cluster: RedisCluster, replica: RedisServer): Promise<void> {
  const id = await nodeId(replica);
  const before = (await clusterNodes(replica)).find((n) => n.id === id)!;
  const oldMasterId = before.masterOf;
  if (oldMasterId === null) throw new Error(`node ${replica.port} is not a replica`);
  const done = (view: ClusterNodeInfo[]) =>
    view.some((n) => n.id === id && n.master && n.slots.length > 0) && view.every((n) => n.id !== oldMasterId || n.masterOf === id || n.flags.includes('fail'));
  // A manual failover gives up silently when the replica does not catch up in time (busy
  // master): ask again, up to three times.
  for (let attempt = 1; ; attempt++) {
    await admin(replica).call('CLUSTER', 'FAILOVER');
    try {
      await waitAgreement(cluster, `node ${replica.port} master everywhere after the failover`, done, 15_000);
      break;
    } catch (e) {
      if (attempt === 3 || (await clusterNodes(replica)).some((n) => n.id === id && n.master)) throw e;
    }
  }
  for (const n of cluster.nodes.filter(alive)) {
    if ((await nodeId(n)) === oldMasterId) await waitReplicaLinked(n);
  }
}

export interface StreamTap {
  /** Every command of the node's replication stream since the tap started, as copied arguments. */
  commands: Buffer[][];
  /** The commands as text (arguments joined by spaces), PING and SELECT left out. */
  text(): string[];
  close(): void;
}

/**
 * Reads `node`'s replication stream as a bare replica would (AUTH, PSYNC, skip the snapshot), to
 * see what a master propagates. Plain TCP only. Resolves once the stream is flowing.
 */
export async function tapReplicationStream(node: RedisServer, password?: string): Promise<StreamTap> {
  const commands: Buffer[][] = [];
  const socket = connect({ host: '127.0.0.1', port: node.port });
  socket.on('error', () => {});
  let head = Buffer.alloc(0);
  let parser: ReplicationStreamParser | null = null;
  let rdbLeft = -1;
  await new Promise<void>((resolve, reject) => {
    // No REPLCONF capa eof: the snapshot comes as one $<length> bulk, easy to skip. PSYNC only
    // once AUTH was answered: the server refuses it while a reply is still pending.
    let authPending = password !== undefined;
    socket.once('connect', () => socket.write(authPending ? `AUTH ${password}\r\n` : 'PSYNC ? -1\r\n'));
    socket.on('data', (chunk: Buffer) => {
      if (parser !== null) {
        for (const c of parser.push(chunk)) commands.push(c.args.map((a) => Buffer.from(a)));
        return;
      }
      head = Buffer.concat([head, chunk]);
      for (;;) {
        if (rdbLeft >= 0) {
          if (head.length < rdbLeft) return;
          const rest = head.subarray(rdbLeft);
          parser = new ReplicationStreamParser(0);
          resolve();
          if (rest.length > 0) for (const c of parser.push(rest)) commands.push(c.args.map((a) => Buffer.from(a)));
          return;
        }
        const eol = head.indexOf('\r\n');
        if (eol < 0) return;
        const line = head.subarray(0, eol).toString('latin1');
        head = head.subarray(eol + 2);
        if (line.startsWith('-')) return reject(new Error(`replication tap on ${node.port}: ${line}`));
        if (authPending && line === '+OK') {
          authPending = false;
          socket.write('PSYNC ? -1\r\n');
        }
        if (line.startsWith('$')) rdbLeft = Number(line.slice(1));
        // "+FULLRESYNC ..." and bare newlines (keepalives while the RDB is made) pass.
      }
    });
    socket.once('close', () => reject(new Error(`replication tap on ${node.port} closed`)));
  });
  return {
    commands,
    text: () => commands
      .filter((c) => !['ping', 'select'].includes(c[0]!.toString('latin1').toLowerCase()))
      .map((c) => c.map((a) => a.toString('latin1')).join(' ')),
    close: () => socket.destroy(),
  };
}

/**
 * Every key of the given nodes (e.g. each master of a cluster, or one standalone target) with
 * its value in a comparable form and its absolute expiry (PEXPIRETIME): two images are equal
 * when the data is, whatever the encodings. Key `__replicant*` entries are left out.
 */
export async function keyImage(clients: Redis[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const c of clients) {
    for (const k of await c.keys('*')) {
      if (k.startsWith('__replicant')) continue;
      const type = await c.type(k);
      let value: unknown;
      if (type === 'string') value = await c.get(k);
      else if (type === 'list') value = await c.lrange(k, 0, -1);
      else if (type === 'set') value = (await c.smembers(k)).sort();
      else if (type === 'hash') value = Object.entries(await c.hgetall(k)).sort();
      else if (type === 'zset') value = await c.zrange(k, 0, -1, 'WITHSCORES');
      else if (type === 'stream') value = await c.xrange(k, '-', '+');
      else value = type;
      out.set(k, `${type} ${JSON.stringify(value)} @${String(await c.call('PEXPIRETIME', k))}`);
    }
  }
  return out;
}
