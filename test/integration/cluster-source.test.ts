/**
 * Sync from a Redis Cluster source: one replication link per shard, each with its own
 * checkpoint, snapshots one shard at a time, into a standalone target (the shards merged) and
 * into a cluster target; a restart resumes every shard with PSYNC. Real servers, a
 * non-idempotent load (INCR, RPUSH) running while the shards are copied.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli, startCli } from '../helpers/cli.js';
import { makeTlsFiles } from '../helpers/tls.js';
import { addMaster, failover, masters, migrateSlot, nodeId, ownerOf, replicasOf, startCluster, type RedisCluster } from '../helpers/cluster.js';
import { keySlot } from '../../src/commands/slot.js';
import { keyspaceDigest, masterOffset } from '../helpers/sync.js';
import { ClusterSourceSync, type ClusterSyncOptions } from '../../src/sync/cluster/coordinator.js';
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

/** Clients of the nodes of startCluster(n) without replicas (all masters). */
function masterClients(cluster: RedisCluster): Redis[] {
  return cluster.nodes.map((n) => n.client());
}

/** Wait until `shards` shards stream and each has applied everything the node it reads from has. */
async function waitAllCaughtUp(sync: ClusterSourceSync, cluster: RedisCluster, shards = 3): Promise<void> {
  const clients = new Map<number, Redis>();
  const client = (port: number) => clients.get(port) ?? clients.set(port, cluster.nodes.find((n) => n.port === port)!.client()).get(port)!;
  await waitFor(
    async () => {
      const st = sync.status();
      if (st.shards.length !== shards || st.shards.some((s) => s.phase !== 'streaming' || s.node === null)) return false;
      for (const s of st.shards) {
        const port = Number(s.node!.split(':').pop());
        if (s.appliedOffset === null || s.appliedOffset < (await masterOffset(client(port)))) return false;
      }
      return true;
    },
    `${shards} shards to apply what their nodes have`,
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

/**
 * INCR and RPUSH on keys of every slot range until stopped: applied twice or not at all shows.
 * A write refused during a failover or a migration is simply not retried (the digests compare
 * the target with the source, whatever it holds).
 */
function startLoad(client: ReturnType<RedisCluster['client']>): { stop: () => Promise<number> } {
  let running = true;
  let n = 0;
  let failed = 0;
  const loop = (async () => {
    while (running) {
      try {
        await client.incr(`counter:${n % 37}`);
        await client.rpush(`list:${n % 23}`, String(n));
      } catch {
        failed++;
        await new Promise((r) => setTimeout(r, 20));
      }
      n++;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return n - failed;
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
  // The keys the load works on exist from the start (a slot migration of one of them has keys to move).
  await Promise.all([...Array.from({ length: 37 }, (_, i) => client.set(`counter:${i}`, '0')), ...Array.from({ length: 23 }, (_, i) => client.rpush(`list:${i}`, 'start'))]);
}

/** A 3-master source cluster holding `keys` keys, and an empty standalone target (both stopped after the test). */
async function clusterAndTarget(keys: number): Promise<{ cluster: RedisCluster; target: RedisServer; client: ReturnType<RedisCluster['client']> }> {
  const cluster = await startCluster(3);
  cleanups.push(() => cluster.stop());
  const target = await startRedis();
  cleanups.push(() => target.stop());
  const client = cluster.client();
  await preload(client, keys);
  return { cluster, target, client };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'replicant-csrc-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('sync from a cluster source', () => {
  it('into a standalone target: shards merged, one snapshot at a time, per-shard checkpoints, restart resumes with PSYNC', async () => {
    const { cluster, target, client } = await clusterAndTarget(3000);
    const nodes = masterClients(cluster);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir() };

    const load = startLoad(client);
    const first = runClusterSync(opts);
    await waitFor(() => first.sync.status().phase === 'streaming', 'every shard to stream', 60_000);
    const ops = await load.stop();
    expect(ops).toBeGreaterThan(0);
    await waitAllCaughtUp(first.sync, cluster);
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
    await waitAllCaughtUp(second.sync, cluster);
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
    const nodes = masterClients(source);
    const dir = tempDir();
    const opts: ClusterSyncOptions = { source: `redis://${source.seed.host}:${source.seed.port}`, target: `redis://${target.seed.host}:${target.seed.port}`, spoolDir: dir, parallelSyncs: 2 };
    const load = startLoad(client);
    const run = runClusterSync(opts);
    await waitFor(() => run.sync.status().phase === 'streaming', 'every shard to stream', 60_000);
    await load.stop();
    await waitAllCaughtUp(run.sync, source);
    expect(run.maxConcurrentSnapshots()).toBeLessThanOrEqual(2);
    const targets = masterClients(target);
    expect(await keyspaceDigest(targets)).toEqual(await keyspaceDigest(nodes));
    await run.stop();
    expect(await fullSyncsServed(nodes)).toBe(3);

    for (let i = 0; i < 100; i++) await client.rpush(`list:${i % 23}`, `after-${i}`);
    const again = runClusterSync(opts);
    await waitAllCaughtUp(again.sync, source);
    expect(await keyspaceDigest(targets)).toEqual(await keyspaceDigest(nodes));
    await again.stop();
    expect(again.sync.status().fullSyncs).toBe(0);
    expect(await fullSyncsServed(nodes)).toBe(3);

    // One shard's checkpoint file made unresumable, keys deleted meanwhile: only that shard copies
    // again, after deleting the keys of its slots from the target's masters.
    for (let i = 0; i < 60; i++) await client.del(`k:${i}`);
    const victim = String(await nodes[1]!.call('CLUSTER', 'MYID'));
    const file = readdirSync(dir).find((f) => f.startsWith('.replicant-checkpoint-') && f.endsWith(`_${victim}.json`))!;
    const cp = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { replid: string };
    writeFileSync(join(dir, file), JSON.stringify({ ...cp, replid: 'a'.repeat(40) }));
    const third = runClusterSync(opts);
    await waitAllCaughtUp(third.sync, source);
    expect(await keyspaceDigest(targets)).toEqual(await keyspaceDigest(nodes));
    await third.stop();
    expect(third.sync.status().shards.map((s) => [s.shard === victim, s.fullSyncs])).toEqual(third.sync.status().shards.map((s) => [s.shard === victim, s.shard === victim ? 1 : 0]));
  }, 120_000);

  it("a shard that must copy again deletes only its own slots' keys; the other shards resume with PSYNC", async () => {
    const { cluster, target, client } = await clusterAndTarget(1500);
    const nodes = masterClients(cluster);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), name: 'cs' };
    const first = runClusterSync(opts);
    await waitAllCaughtUp(first.sync, cluster);
    await first.stop();
    // While stopped: keys deleted in every shard, and the first shard's checkpoint made unresumable.
    for (let i = 0; i < 60; i++) await client.del(`k:${i}`);
    const tc = target.client();
    const victim = String(await nodes[0]!.call('CLUSTER', 'MYID'));
    const cpKey = `__replicant:checkpoint:cs@${victim}`;
    const cp = JSON.parse((await tc.get(cpKey))!) as { replid: string };
    await tc.set(cpKey, JSON.stringify({ ...cp, replid: 'f'.repeat(40) }));
    const second = runClusterSync(opts);
    await waitAllCaughtUp(second.sync, cluster);
    expect(await keyspaceDigest([tc])).toEqual(await keyspaceDigest(nodes));
    for (let i = 0; i < 60; i++) expect(await tc.exists(`k:${i}`)).toBe(0);
    await second.stop();
    const byShard = Object.fromEntries(second.sync.status().shards.map((s) => [s.shard, [s.fullSyncs, s.partialSyncs]]));
    expect(byShard[victim]).toEqual([1, 0]);
    expect(Object.values(byShard).filter(([full, partial]) => full === 0 && partial === 1)).toHaveLength(2);
  }, 120_000);

  it('stopped during a shard\'s snapshot (exit 9): the restart deletes that shard\'s partial copy and copies it again, the others resume', async () => {
    const { cluster, target, client } = await clusterAndTarget(3000);
    // Big enough values that a snapshot takes a moment.
    const big = 'x'.repeat(20_000);
    for (let i = 0; i < 600; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => client.set(`big:${i + j}`, big)));
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), name: 'cut', maxInflightBytes: 256 * 1024 };
    const first = runClusterSync(opts);
    await waitFor(() => first.sync.status().shards.some((s) => s.phase === 'streaming') && first.sync.status().shards.some((s) => s.phase === 'full-sync' && (s.rdb?.keys ?? 0) > 0), 'one shard streaming, another one copying', 60_000, 5);
    first.sync.stop();
    await expect(first.done).rejects.toMatchObject({ exitCode: 9 });
    const states = first.sync.status().shards.map((s) => s.fullSyncs);
    expect(states.filter((n) => n === 1).length).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 50; i++) await client.del(`big:${i}`);
    const second = runClusterSync(opts);
    await waitAllCaughtUp(second.sync, cluster);
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(masterClients(cluster)));
    await second.stop();
    const st = second.sync.status().shards;
    // The shard that had finished resumes; the interrupted one (and any not started) copies again.
    expect(st.filter((s) => s.partialSyncs === 1 && s.fullSyncs === 0).length).toBeGreaterThanOrEqual(1);
    expect(st.filter((s) => s.fullSyncs === 1).length).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('a shard that can resume does not wait while another shard holds the snapshot turn', async () => {
    const { cluster, target } = await clusterAndTarget(300);
    const nodes = masterClients(cluster);
    // Every snapshot starts 3 s after the fork is asked for: a turn lasts that long.
    for (const c of nodes) await c.config('SET', 'repl-diskless-sync', 'yes', 'repl-diskless-sync-delay', '3');
    const ids = await Promise.all(nodes.map(async (c) => String(await c.call('CLUSTER', 'MYID'))));
    const run = runClusterSync({ source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir() });
    const shardOf = (i: number) => run.sync.status().shards.find((s) => s.shard === ids[i]);
    let streamingIndex = -1;
    await waitFor(() => {
      streamingIndex = ids.findIndex((_, i) => shardOf(i)?.phase === 'streaming');
      return streamingIndex >= 0 && run.sync.status().shards.filter((s) => s.fullSyncs === 0).length === 2;
    }, 'one shard streaming while the others wait for their snapshot', 30_000, 20);
    await nodes[streamingIndex]!.client('KILL', 'TYPE', 'replica');
    await waitFor(() => shardOf(streamingIndex)?.partialSyncs === 1, 'the shard to resume', 10_000, 20);
    // It resumed while the other shards were still waiting for (or taking) their snapshots.
    expect(run.sync.status().shards.filter((s) => s.fullSyncs === 0).length).toBeGreaterThan(0);
    await waitAllCaughtUp(run.sync, cluster);
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(nodes));
  }, 60_000);

  it('a user that may not run CLUSTER NODES is refused at once (exit 4), naming the permission', async () => {
    const { cluster, target } = await clusterAndTarget(10);
    for (const c of masterClients(cluster)) await c.call('ACL', 'SETUSER', 'nonodes', 'on', '>pw', '+@all', '-cluster|nodes', '~*');
    // A connect timeout longer than the test's: only a refusal that is not retried ends in time.
    const run = runClusterSync({ source: `redis://nonodes:pw@${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), connectTimeoutMs: 120_000 });
    await expect(run.done).rejects.toMatchObject({ exitCode: 4, message: expect.stringMatching(/CLUSTER NODES refused .*\+cluster\|nodes/) });
  }, 30_000);

  it('--exit-after-full-sync: resolves once every shard\'s snapshot is applied', async () => {
    const { cluster, target } = await clusterAndTarget(800);
    const run = runClusterSync({ source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), exitAfterFullSync: true, parallelSyncs: 2 });
    await run.done;
    expect(run.sync.status().shards.map((s) => s.fullSyncs)).toEqual([1, 1, 1]);
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(masterClients(cluster)));
  }, 60_000);

  it('--checkpoint target:KEY and file:PATH name one checkpoint per shard (KEY@<shard>, PATH.<shard>)', async () => {
    const { cluster, target } = await clusterAndTarget(200);
    const ids = (await Promise.all(masterClients(cluster).map(async (c) => String(await c.call('CLUSTER', 'MYID'))))).sort();
    const source = `redis://${cluster.seed.host}:${cluster.seed.port}`;
    await runClusterSync({ source, target: target.url, spoolDir: tempDir(), exitAfterFullSync: true, checkpoint: { kind: 'target', key: '__replicant:cp:mine', db: 0 } }).done;
    expect((await target.client().keys('__replicant:cp:*')).sort()).toEqual(ids.map((id) => `__replicant:cp:mine@${id}`));
    const other = await startRedis();
    cleanups.push(() => other.stop());
    const dir = tempDir();
    await runClusterSync({ source, target: other.url, spoolDir: dir, exitAfterFullSync: true, checkpoint: { kind: 'file', path: join(dir, 'cp.json') } }).done;
    expect(readdirSync(dir).filter((f) => f.startsWith('cp.json')).sort()).toEqual(ids.map((id) => `cp.json.${id}`));
    expect(await other.client().keys('__replicant:checkpoint:*')).toEqual([]);
  }, 60_000);

  it('CLI: detects the cluster, /status lists the shards, /healthz 200 once all stream, SIGTERM exits 0', async () => {
    const { cluster, target, client } = await clusterAndTarget(500);
    const port = await freePort();
    const cli = startCli(['sync', '--progress-interval', '200ms', '-s', `redis://${cluster.seed.host}:${cluster.seed.port}`, '-t', target.url, '--spool-dir', tempDir(), '--metrics-port', String(port), '--cluster-parallel-syncs', '3'], 60_000);
    cleanups.push(async () => cli.kill('SIGKILL'));
    const base = `http://127.0.0.1:${port}`;
    type Status = { phase: string; shards: { shard: string; phase: string; slots: string }[] };
    const read = async (): Promise<Status | null> => ((await fetch(`${base}/status`).catch(() => null))?.json() as Promise<Status> | undefined) ?? null;
    await waitFor(async () => (await read())?.phase === 'streaming', 'every shard to stream', 30_000, 100);
    const status = (await read())!;
    expect(status.shards.map((s) => s.phase)).toEqual(['streaming', 'streaming', 'streaming']);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    // Three shards whose ranges cover the 16384 slots.
    const ranges = status.shards.map((s) => s.slots.split('-').map(Number) as [number, number]).sort((a, b) => a[0] - b[0]);
    expect(ranges).toHaveLength(3);
    expect(ranges.flat()[0]).toBe(0);
    expect(ranges.flat().at(-1)).toBe(16383);
    for (let i = 1; i < 3; i++) expect(ranges[i]![0]).toBe(ranges[i - 1]![1] + 1);
    await client.set('live', '1');
    await waitFor(async () => (await target.client().get('live')) === '1', 'a live write to arrive', 10_000);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const s of status.shards) expect(metrics).toContain(`replicant_shard_healthy{shard="${s.shard}"} 1`);
    expect(metrics).toMatch(/replicant_shard_applied_offset\{shard="\w+"\} \d+/);

    // cutover under a writer: every master paused, each shard caught up to its master's offset, sampled verify, unpaused.
    const seed = `redis://${cluster.seed.host}:${cluster.seed.port}`;
    let writing = true;
    let written = 0;
    const load = (async () => {
      while (writing) {
        await client.incr(`c:${written % 20}`);
        written++;
      }
    })();
    await waitFor(() => written > 200, 'the writer to start', 10_000);
    const cut = await runCli(['cutover', '-s', seed, '-t', target.url, '--status-url', `${base}/status`, '--unpause', '--sample', '100', '--max-pause', '5s', '--json'], { timeoutMs: 30_000 });
    writing = false;
    await load;
    expect(cut.code, cut.stderr).toBe(0);
    const proof = JSON.parse(cut.stdout.toString()) as { shards: { master: string; sourceOffset: number; appliedOffset: number }[]; verify: { differences: number; compared: number } };
    expect(proof.shards.map((x) => x.master).sort()).toEqual(cluster.nodes.map((n) => `127.0.0.1:${n.port}`).sort());
    for (const x of proof.shards) expect(x.appliedOffset).toBe(x.sourceOffset);
    expect(proof.verify.differences).toBe(0);
    expect(proof.verify.compared).toBeGreaterThan(50);
    // Without --status-url: each shard's position is read from its checkpoint on the target.
    const fromTarget = await runCli(['cutover', '-s', seed, '-t', target.url, '--unpause', '--sample', '50', '--max-pause', '5s', '--json'], { timeoutMs: 30_000 });
    expect(fromTarget.code, fromTarget.stderr).toBe(0);
    const proof2 = JSON.parse(fromTarget.stdout.toString()) as { shards: { master: string; sourceOffset: number; appliedOffset: number }[] };
    expect(proof2.shards).toHaveLength(3);
    for (const x of proof2.shards) expect(x.appliedOffset).toBe(x.sourceOffset);
    // verify reads every master of the source against the merged target.
    await waitFor(async () => (await read())?.shards.every((x) => x.phase === 'streaming') === true, 'streaming', 10_000);
    await client.set('last', '1');
    await waitFor(async () => (await target.client().get('last')) === '1', 'the last write', 10_000);
    const v = await runCli(['verify', '-s', seed, '-t', target.url, '--no-progress'], { timeoutMs: 30_000 });
    expect(v.code, v.stdout.toString() + v.stderr).toBe(0);
    expect(v.stdout.toString()).toContain('EQUAL');
    cli.kill('SIGTERM');
    expect(await cli.code).toBe(0);
    expect(cli.stderr()).toMatch(/the source is a Redis Cluster/);
    expect(cli.stderr()).toMatch(/"shards":3,"shardsStreaming":3/);
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(masterClients(cluster)));
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
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(masterClients(cluster)));
  }, 120_000);

  it('partial sync of a cluster source: filters and rename on every shard, also when one shard copies again', async () => {
    const { cluster, target, client } = await clusterAndTarget(1000);
    const nodes = masterClients(cluster);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), name: 'part', partial: { prefixes: ['h:'], renamePrefix: ['h:', 'hash:'] }, parallelSyncs: 3 };
    const first = runClusterSync(opts);
    await waitAllCaughtUp(first.sync, cluster);
    await client.hset('h:live', 'f', '1');
    await client.set('k:live', 'not copied');
    await waitAllCaughtUp(first.sync, cluster);
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
    await waitAllCaughtUp(second.sync, cluster);
    expect(await copied()).toEqual(await expected());
    for (const k of victimKeys) expect(await tc.exists(`hash:${k.slice(2)}`)).toBe(0);
    // A FLUSHALL of one master deletes that shard's copied keys only, filters or not.
    await nodes[1]!.flushall();
    await waitAllCaughtUp(second.sync, cluster);
    expect(await copied()).toEqual(await expected());
    expect((await copied()).length).toBeGreaterThan(0);
    await second.stop();
    expect(second.sync.status().fullSyncs).toBe(1);
    expect(second.sync.status().errors).toBe(0);
  }, 120_000);
});

describe('a cluster source changing under the sync', () => {
  /** Clients of the current masters. */
  const masterNow = async (cluster: RedisCluster) => (await masters(cluster)).map((m) => m.client());

  it('follows a failover (PSYNC on the promoted replica), a slot migration with keys and a new shard under load; one full sync per shard; a restart resumes every shard with PSYNC', async () => {
    const cluster = await startCluster({ masters: 3, replicasPerMaster: 1 });
    cleanups.push(() => cluster.stop());
    const target = await startRedis();
    cleanups.push(() => target.stop());
    const client = cluster.client();
    await preload(client, 2000);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), name: 'topo' };
    const load = startLoad(client);
    const run = runClusterSync(opts);
    await waitFor(() => run.sync.status().phase === 'streaming', 'every shard to stream', 60_000);
    const [m0] = await masters(cluster);
    const [r0] = await replicasOf(cluster, m0!);
    const m0id = await nodeId(m0!);
    await failover(cluster, r0!);
    // A slot whose keys the load keeps incrementing moves to another master, keys and all.
    const hot = keySlot(Buffer.from('counter:1'));
    const from = await ownerOf(cluster, hot);
    const to = (await masters(cluster)).find((m) => m !== from)!;
    expect(await migrateSlot(cluster, hot, from, to)).toBeGreaterThan(0);
    // A new master takes a slot with keys: a fourth shard.
    const added = await addMaster(cluster);
    const listSlot = keySlot(Buffer.from('list:3'));
    await migrateSlot(cluster, listSlot, await ownerOf(cluster, listSlot), added);
    await waitFor(() => run.sync.status().shards.length === 4, 'the new shard to be synced', 30_000);
    expect(await load.stop()).toBeGreaterThan(0);
    await waitAllCaughtUp(run.sync, cluster, 4);
    const tc = target.client();
    expect(await keyspaceDigest([tc])).toEqual(await keyspaceDigest(await masterNow(cluster)));
    await run.stop();
    const st = run.sync.status();
    // One full sync per shard; the failed-over shard resumed on its promoted replica with PSYNC.
    expect(st.shards.map((s) => s.fullSyncs)).toEqual([1, 1, 1, 1]);
    const failedOver = st.shards.find((s) => s.shard === m0id)!;
    expect(failedOver.partialSyncs).toBeGreaterThanOrEqual(1);
    expect(failedOver.node).toBe(`127.0.0.1:${r0!.port}`);

    for (let i = 0; i < 100; i++) await client.incr(`counter:${i % 37}`);
    const again = runClusterSync(opts);
    await waitAllCaughtUp(again.sync, cluster, 4);
    expect(await keyspaceDigest([tc])).toEqual(await keyspaceDigest(await masterNow(cluster)));
    await again.stop();
    expect(again.sync.status().shards.map((s) => [s.fullSyncs, s.partialSyncs])).toEqual([[0, 1], [0, 1], [0, 1], [0, 1]]);
  }, 180_000);

  it('--prefer-replica (and a password): snapshots come from the replicas; after a failover the shard follows its new replica with PSYNC', async () => {
    // With a password: every node is reached with the seed's credentials.
    const cluster = await startCluster({ masters: 2, replicasPerMaster: 1, password: 'cl-pw' });
    cleanups.push(() => cluster.stop());
    const target = await startRedis();
    cleanups.push(() => target.stop());
    const client = cluster.client();
    await preload(client, 1000);
    const before = await Promise.all(cluster.nodes.map(async (n) => fullSyncsServed([n.client()])));
    const opts: ClusterSyncOptions = { source: `redis://:cl-pw@${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), preferReplica: true };
    const run = runClusterSync(opts);
    await waitAllCaughtUp(run.sync, cluster, 2);
    const [m0, m1] = await masters(cluster);
    const replicas = [(await replicasOf(cluster, m0!))[0]!, (await replicasOf(cluster, m1!))[0]!];
    // The sync reads the replicas: each served one full sync (to Replicant), the masters none more.
    expect(run.sync.status().shards.map((s) => s.node).sort()).toEqual(replicas.map((r) => `127.0.0.1:${r.port}`).sort());
    const after = await Promise.all(cluster.nodes.map(async (n) => fullSyncsServed([n.client()])));
    for (const [i, n] of cluster.nodes.entries()) expect(after[i]! - before[i]!, `node ${n.port}`).toBe(replicas.includes(n) ? 1 : 0);

    const load = startLoad(client);
    await failover(cluster, replicas[0]!);
    await load.stop();
    // m0 is now the replica of shard 0: the sync moves there and resumes.
    await waitFor(() => run.sync.status().shards.some((s) => s.node === `127.0.0.1:${m0!.port}`), 'the sync to read the new replica', 30_000);
    await waitAllCaughtUp(run.sync, cluster, 2);
    expect(await keyspaceDigest([target.client()])).toEqual(await keyspaceDigest(await masterNow(cluster)));
    await run.stop();
    const st = run.sync.status();
    expect(st.fullSyncs).toBe(2);
    expect(st.partialSyncs).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('into a cluster target: keys of a slot migrated under load are neither lost nor doubled', async () => {
    const source = await startCluster({ masters: 2 });
    cleanups.push(() => source.stop());
    const target = await startCluster(3);
    cleanups.push(() => target.stop());
    const client = source.client();
    await preload(client, 1500);
    const opts: ClusterSyncOptions = { source: `redis://${source.seed.host}:${source.seed.port}`, target: `redis://${target.seed.host}:${target.seed.port}`, spoolDir: tempDir(), parallelSyncs: 2 };
    const run = runClusterSync(opts);
    await waitAllCaughtUp(run.sync, source, 2);
    const load = startLoad(client);
    for (const key of ['counter:2', 'list:5', 'k:10']) {
      const slot = keySlot(Buffer.from(key));
      const from = await ownerOf(source, slot);
      const to = (await masters(source)).find((m) => m !== from)!;
      expect(await migrateSlot(source, slot, from, to, { batch: 1 })).toBeGreaterThan(0);
    }
    await load.stop();
    await waitAllCaughtUp(run.sync, source, 2);
    const targets = masterClients(target);
    expect(await keyspaceDigest(targets)).toEqual(await keyspaceDigest(await masterNow(source)));
    // A RESTORE-ASKING no DEL will ever follow (as after MIGRATE COPY): the guard tracks the key
    // until every shard has applied past it, then releases it; so does every migrated key.
    const lone = Buffer.from('lone-restored');
    const owner = (await ownerOf(source, keySlot(lone))).client();
    await owner.set('dump-me', 'v');
    const payload = await owner.dumpBuffer('dump-me');
    await owner.del('dump-me');
    await owner.callBuffer('RESTORE-ASKING', lone, '0', payload);
    await waitAllCaughtUp(run.sync, source, 2);
    expect(await keyspaceDigest(targets)).toEqual(await keyspaceDigest(await masterNow(source)));
    await waitFor(() => run.sync.status().migrations.trackedKeys === 0, 'the guard to release its keys', 10_000);
    await run.stop();
    expect(run.sync.status().shards.map((s) => s.fullSyncs)).toEqual([1, 1]);
  }, 120_000);

  it('a second instance of the same cluster sync shares the shards (one handed over and back, no full sync); a FLUSHALL of one master deletes only its shard\'s keys; inside a transaction it stops every shard (exit 5)', async () => {
    const { cluster, target, client } = await clusterAndTarget(600);
    const opts: ClusterSyncOptions = { source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: target.url, spoolDir: tempDir(), name: 'safe', claimEveryMs: 200 };
    const first = runClusterSync(opts);
    await waitAllCaughtUp(first.sync, cluster);
    // A second process of the same sync (same source, target, --name) takes its share: one shard, handed over at a checkpoint.
    const second = runClusterSync(opts);
    await waitFor(() => second.sync.status().shards.length === 1 && first.sync.status().shards.length === 2, 'the second instance to take one shard', 20_000);
    await client.set('still', 'here');
    await waitFor(async () => (await target.client().get('still')) === 'here', 'both to go on', 10_000);
    // Stopped, it hands the shard back: the first holds all three again, none copied twice.
    await second.stop();
    await waitAllCaughtUp(first.sync, cluster);
    expect(first.sync.status().shards.map((s) => s.fullSyncs).reduce((a, b) => a + b, 0)).toBe(2);

    const tc = target.client();
    const victim = cluster.nodes[2]!.client();
    const victimKeys = await victim.dbsize();
    const before = await tc.dbsize();
    await victim.flushall();
    await client.set('after', 'flush');
    await waitAllCaughtUp(first.sync, cluster);
    expect(await keyspaceDigest([tc])).toEqual(await keyspaceDigest(masterClients(cluster)));
    expect(before - (await tc.dbsize())).toBe(victimKeys - 1);
    expect(first.sync.status().errors).toBe(0);

    await victim.set('{x}a', '1');
    await victim.multi().set('{x}b', '2').flushall().exec();
    await expect(first.done).rejects.toMatchObject({ exitCode: 5, message: expect.stringMatching(/FLUSHALL .*inside a transaction/) });
    expect(first.sync.status().shards.map((s) => s.phase)).toEqual(['stopped', 'stopped', 'stopped']);
  }, 120_000);
});
