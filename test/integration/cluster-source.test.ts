/**
 * Sync from a Redis Cluster source: one replication link per shard, each with its own
 * checkpoint, snapshots one shard at a time, into a standalone target (the shards merged) and
 * into a cluster target; a restart resumes every shard with PSYNC. Real servers, a
 * non-idempotent load (INCR, RPUSH) running while the shards are copied.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, startCli } from '../helpers/cli.js';
import { makeTlsFiles } from '../helpers/tls.js';
import { startCluster, type RedisCluster } from '../helpers/cluster.js';
import { keyspaceDigest, masterOffset } from '../helpers/sync.js';
import { ClusterSourceSync, type ClusterSyncOptions } from '../../src/sync/cluster-sync.js';
import type { Phase } from '../../src/sync/session.js';

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

interface Running {
  sync: ClusterSourceSync;
  done: Promise<unknown>;
  /** Most shards seen in full-sync at the same time. */
  maxConcurrentSnapshots: () => number;
  stop(): Promise<void>;
}

function runClusterSync(opts: ClusterSyncOptions): Running {
  const sync = new ClusterSourceSync({ reconnectMinMs: 50, reconnectMaxMs: 500, topologyPollMs: 300, leaseTtlMs: 2000, ...opts });
  const inSnapshot = new Set<string>();
  let max = 0;
  sync.on('phase', (phase: Phase, info: Record<string, unknown>) => {
    const shard = String(info.shard);
    if (phase === 'full-sync') inSnapshot.add(shard);
    else inSnapshot.delete(shard);
    max = Math.max(max, inSnapshot.size);
  });
  const done = sync.run();
  done.catch(() => {});
  cleanups.push(async () => {
    sync.stop();
    await done.catch(() => {});
  });
  return {
    sync,
    done,
    maxConcurrentSnapshots: () => max,
    async stop() {
      sync.stop();
      await done;
    },
  };
}

/** Master node clients of a cluster (every node of startCluster(n) is a master). */
function masters(cluster: RedisCluster): Redis[] {
  return cluster.nodes.map((n) => n.client());
}

/** Wait until every shard streams and has applied everything its master wrote so far. */
async function waitAllCaughtUp(sync: ClusterSourceSync, nodes: readonly Redis[]): Promise<void> {
  const ids = await Promise.all(nodes.map(async (c) => String(await c.call('CLUSTER', 'MYID'))));
  await waitFor(
    async () => {
      const st = sync.status();
      if (st.shards.length !== nodes.length || st.shards.some((s) => s.phase !== 'streaming')) return false;
      for (const [i, c] of nodes.entries()) {
        const shard = st.shards.find((s) => s.shard === ids[i]);
        if (shard === undefined || shard.appliedOffset === null || shard.appliedOffset < (await masterOffset(c))) return false;
      }
      return true;
    },
    'every shard to apply what its master wrote',
    60_000,
    100,
  );
}

/** Full syncs served by the source masters (INFO stats sync_full). */
async function fullSyncsServed(nodes: readonly Redis[]): Promise<number> {
  let n = 0;
  for (const c of nodes) n += Number(/sync_full:(\d+)/.exec(String(await c.info('stats')))?.[1] ?? 0);
  return n;
}

/** INCR and RPUSH on keys of every slot range until stopped: applied twice or not at all shows. */
function startLoad(client: ReturnType<RedisCluster['client']>): { stop: () => Promise<number> } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      await client.incr(`counter:${n % 37}`);
      await client.rpush(`list:${n % 23}`, String(n));
      n++;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return n;
    },
  };
}

async function preload(client: ReturnType<RedisCluster['client']>, keys: number): Promise<void> {
  for (let i = 0; i < keys; i += 500) {
    const writes: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(keys, i + 500); j++) {
      writes.push(client.set(`k:${j}`, `v${j}`));
      if (j % 10 === 0) writes.push(client.hset(`h:${j}`, 'f', String(j), 'g', 'x'));
    }
    await Promise.all(writes);
  }
  await client.pexpire('k:7', 3_600_000);
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'replicant-csrc-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('sync from a cluster source', () => {
  it('into a standalone target: shards merged, one snapshot at a time, per-shard checkpoints, restart resumes with PSYNC', async () => {
    const cluster = await startCluster(3);
    cleanups.push(() => cluster.stop());
    const target: RedisServer = await startRedis();
    cleanups.push(() => target.stop());
    const client = cluster.client();
    await preload(client, 3000);
    const nodes = masters(cluster);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir() };

    const load = startLoad(client);
    const first = runClusterSync(opts);
    await waitFor(() => first.sync.status().phase === 'streaming', 'every shard to stream', 60_000);
    const ops = await load.stop();
    expect(ops).toBeGreaterThan(0);
    await waitAllCaughtUp(first.sync, nodes);
    const tc = target.client();
    expect(await keyspaceDigest([tc])).toEqual(await keyspaceDigest(nodes));
    expect(first.maxConcurrentSnapshots()).toBe(1);
    await first.stop();
    const st = first.sync.status();
    expect(st.shards.map((s) => [s.fullSyncs, s.partialSyncs])).toEqual([[1, 0], [1, 0], [1, 0]]);
    expect(await fullSyncsServed(nodes)).toBe(3);
    // One checkpoint per shard, named after the shard's master, and the shard list.
    const ids = (await Promise.all(nodes.map(async (c) => String(await c.call('CLUSTER', 'MYID'))))).sort();
    const name = `${cluster.seed.host}:${cluster.seed.port}`;
    expect((await tc.keys('__replicant:checkpoint:*')).sort()).toEqual(ids.map((id) => `__replicant:checkpoint:${name}@${id}`).sort());
    expect((await tc.hkeys(`__replicant:shards:${name}`)).sort()).toEqual(['~meta', ...ids].sort());

    // Writes while stopped, then a restart: every shard resumes with PSYNC, nothing copied again.
    for (let i = 0; i < 200; i++) await client.incr(`counter:${i % 37}`);
    await client.del('k:1');
    await client.del('k:2');
    const second = runClusterSync(opts);
    await waitAllCaughtUp(second.sync, nodes);
    expect(await keyspaceDigest([tc])).toEqual(await keyspaceDigest(nodes));
    await second.stop();
    expect(second.sync.status().shards.map((s) => [s.fullSyncs, s.partialSyncs])).toEqual([[0, 1], [0, 1], [0, 1]]);
    expect(await fullSyncsServed(nodes)).toBe(3);
  }, 120_000);

  it('into a cluster target, two snapshots at a time, file checkpoints per shard', async () => {
    const source = await startCluster(3);
    cleanups.push(() => source.stop());
    const target = await startCluster(3);
    cleanups.push(() => target.stop());
    const client = source.client();
    await preload(client, 2000);
    const nodes = masters(source);
    const dir = tempDir();
    const opts: ClusterSyncOptions = { source: `redis://${source.seed.host}:${source.seed.port}`, target: `redis://${target.seed.host}:${target.seed.port}`, spoolDir: dir, parallelSyncs: 2 };
    const load = startLoad(client);
    const run = runClusterSync(opts);
    await waitFor(() => run.sync.status().phase === 'streaming', 'every shard to stream', 60_000);
    await load.stop();
    await waitAllCaughtUp(run.sync, nodes);
    expect(run.maxConcurrentSnapshots()).toBeLessThanOrEqual(2);
    const targets = masters(target);
    expect(await keyspaceDigest(targets)).toEqual(await keyspaceDigest(nodes));
    await run.stop();
    expect(await fullSyncsServed(nodes)).toBe(3);

    for (let i = 0; i < 100; i++) await client.rpush(`list:${i % 23}`, `after-${i}`);
    const again = runClusterSync(opts);
    await waitAllCaughtUp(again.sync, nodes);
    expect(await keyspaceDigest(targets)).toEqual(await keyspaceDigest(nodes));
    await again.stop();
    expect(again.sync.status().fullSyncs).toBe(0);
    expect(await fullSyncsServed(nodes)).toBe(3);
  }, 120_000);

  it("a shard that must copy again deletes only its own slots' keys; the other shards resume with PSYNC", async () => {
    const cluster = await startCluster(3);
    cleanups.push(() => cluster.stop());
    const target = await startRedis();
    cleanups.push(() => target.stop());
    const client = cluster.client();
    await preload(client, 1500);
    const nodes = masters(cluster);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), name: 'cs' };
    const first = runClusterSync(opts);
    await waitAllCaughtUp(first.sync, nodes);
    await first.stop();
    // While stopped: keys deleted in every shard, and the first shard's checkpoint made unresumable.
    for (let i = 0; i < 60; i++) await client.del(`k:${i}`);
    const tc = target.client();
    const victim = String(await nodes[0]!.call('CLUSTER', 'MYID'));
    const cpKey = `__replicant:checkpoint:cs@${victim}`;
    const cp = JSON.parse((await tc.get(cpKey))!) as { replid: string };
    await tc.set(cpKey, JSON.stringify({ ...cp, replid: 'f'.repeat(40) }));
    const second = runClusterSync(opts);
    await waitAllCaughtUp(second.sync, nodes);
    expect(await keyspaceDigest([tc])).toEqual(await keyspaceDigest(nodes));
    for (let i = 0; i < 60; i++) expect(await tc.exists(`k:${i}`)).toBe(0);
    await second.stop();
    const byShard = Object.fromEntries(second.sync.status().shards.map((s) => [s.shard, [s.fullSyncs, s.partialSyncs]]));
    expect(byShard[victim]).toEqual([1, 0]);
    expect(Object.values(byShard).filter(([full, partial]) => full === 0 && partial === 1)).toHaveLength(2);
  }, 120_000);

  it('CLI: detects the cluster, /status lists the shards, /healthz 200 once all stream, SIGTERM exits 0', async () => {
    const cluster = await startCluster(3);
    cleanups.push(() => cluster.stop());
    const target = await startRedis();
    cleanups.push(() => target.stop());
    const client = cluster.client();
    await preload(client, 500);
    const port = await freePort();
    const cli = startCli(['sync', '--no-progress', '-s', `redis://${cluster.seed.host}:${cluster.seed.port}`, '-t', target.url, '--spool-dir', tempDir(), '--metrics-port', String(port), '--cluster-parallel-syncs', '3'], 60_000);
    cleanups.push(async () => cli.kill('SIGKILL'));
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => null))?.status === 200, '/healthz 200', 30_000, 100);
    const status = (await (await fetch(`${base}/status`)).json()) as { phase: string; shards: { shard: string; phase: string; slots: string }[] };
    expect(status.phase).toBe('streaming');
    expect(status.shards.map((s) => s.slots).sort()).toEqual(['0-5460', '10923-16383', '5461-10922']);
    await client.set('live', '1');
    await waitFor(async () => (await target.client().get('live')) === '1', 'a live write to arrive', 10_000);
    cli.kill('SIGTERM');
    expect(await cli.code).toBe(0);
    expect(cli.stderr()).toMatch(/the source is a Redis Cluster/);
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(masters(cluster)));
  }, 120_000);

  it('rediss:// seed: every node of the cluster source is reached over TLS, verified with --source-tls-ca', async () => {
    const files = makeTlsFiles();
    cleanups.push(async () => files.remove());
    const cluster = await startCluster(3, undefined, files);
    cleanups.push(() => cluster.stop());
    const target = await startRedis();
    cleanups.push(() => target.stop());
    const client = cluster.client();
    await preload(client, 300);
    const cli = startCli(['sync', '--no-progress', '-s', `rediss://127.0.0.1:${cluster.seed.port}`, '--source-tls-ca', files.ca, '-t', target.url, '--spool-dir', tempDir(), '--cluster-parallel-syncs', '3'], 60_000);
    cleanups.push(async () => cli.kill('SIGKILL'));
    await waitFor(() => (cli.stderr().match(/phase: streaming/g) ?? []).length >= 3, 'the three shards to stream', 30_000);
    await client.set('live', 'over-tls');
    await waitFor(async () => (await target.client().get('live')) === 'over-tls', 'a live write to arrive', 10_000);
    cli.kill('SIGTERM');
    expect(await cli.code, cli.stderr()).toBe(0);
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(masters(cluster)));
  }, 120_000);

  it('partial sync of a cluster source: filters and rename on every shard, also when one shard copies again', async () => {
    const cluster = await startCluster(3);
    cleanups.push(() => cluster.stop());
    const target = await startRedis();
    cleanups.push(() => target.stop());
    const client = cluster.client();
    await preload(client, 1000);
    const nodes = masters(cluster);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), name: 'part', partial: { prefixes: ['h:'], renamePrefix: ['h:', 'hash:'] }, parallelSyncs: 3 };
    const first = runClusterSync(opts);
    await waitAllCaughtUp(first.sync, nodes);
    await client.hset('h:live', 'f', '1');
    await client.set('k:live', 'not copied');
    await waitAllCaughtUp(first.sync, nodes);
    await first.stop();
    const tc = target.client();
    const expected = async () => (await Promise.all(nodes.map((n) => n.keys('h:*')))).flat().map((k) => `hash:${k.slice(2)}`).sort();
    const copied = async () => (await tc.keys('*')).filter((k) => !k.startsWith('__replicant')).sort();
    expect(await copied()).toEqual(await expected());
    expect(await tc.hgetall('hash:live')).toEqual({ f: '1' });
    // A deletion while stopped, in the shard that then copies again: its renamed keys are found by their source slot.
    const victim = String(await nodes[1]!.call('CLUSTER', 'MYID'));
    const victimKeys = (await nodes[1]!.keys('h:*')).slice(0, 5);
    expect(victimKeys.length).toBeGreaterThan(0);
    for (const k of victimKeys) await client.del(k);
    const cpKey = `__replicant:checkpoint:part@${victim}`;
    await tc.set(cpKey, JSON.stringify({ ...JSON.parse((await tc.get(cpKey))!), replid: 'e'.repeat(40) }));
    const second = runClusterSync(opts);
    await waitAllCaughtUp(second.sync, nodes);
    await second.stop();
    expect(await copied()).toEqual(await expected());
    for (const k of victimKeys) expect(await tc.exists(`hash:${k.slice(2)}`)).toBe(0);
    expect(second.sync.status().fullSyncs).toBe(1);
  }, 120_000);
});
