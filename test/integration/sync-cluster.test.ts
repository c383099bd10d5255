/**
 * Sync into a Redis Cluster target: commands routed by slot, checkpoint in a file, keys of
 * other dbs and cross-slot source transactions reported by the error policy.
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { startCluster, type RedisCluster } from '../helpers/cluster.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { captureLogger, runSync, scanKeys, waitCaughtUp, type RunningSync } from '../helpers/sync.js';

type ClusterClient = ReturnType<RedisCluster['client']>;

const cleanups: (() => Promise<void>)[] = [];
beforeAll(ensureBuilt, 120_000);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** A logical dump of one key: type, value (order-free where the type is), TTL present or not. */
async function snapshotKey(c: Redis | ClusterClient, key: string): Promise<unknown> {
  const type = await c.type(key);
  const ttl = (await c.pttl(key)) > 0;
  switch (type) {
    case 'string': return [type, ttl, await c.get(key)];
    case 'list': return [type, ttl, await c.lrange(key, 0, -1)];
    case 'set': return [type, ttl, (await c.smembers(key)).sort()];
    case 'zset': return [type, ttl, await c.zrange(key, 0, -1, 'WITHSCORES')];
    case 'hash': return [type, ttl, Object.entries(await c.hgetall(key)).sort()];
    case 'stream': return [type, ttl, await c.xrange(key, '-', '+'), await c.xlen(key)];
    default: return [type];
  }
}

async function allKeys(c: Redis): Promise<string[]> {
  return (await scanKeys(c)).sort();
}

/** A standalone source and a 3-master cluster target, both stopped after the test. */
async function sourceAndCluster(): Promise<{ source: RedisServer; cluster: RedisCluster; src: Redis }> {
  const source = await startRedis();
  cleanups.push(() => source.stop());
  const cluster = await startCluster(3);
  cleanups.push(() => cluster.stop());
  return { source, cluster, src: source.client() };
}

describe('replicant sync into a cluster target', () => {
  it('copies the snapshot and the live stream, routed by slot, with a file checkpoint', async () => {
    const { source, cluster, src } = await sourceAndCluster();
    const p = src.pipeline();
    for (let i = 0; i < 2000; i++) p.set(`s:${i}`, `v${i}`);
    for (let i = 0; i < 50; i++) p.rpush(`l:${i}`, ...Array.from({ length: 30 }, (_, j) => `e${j}`));
    for (let i = 0; i < 50; i++) p.hset(`h:${i}`, 'a', '1', 'b', String(i));
    p.zadd('z', 1, 'a', 2, 'b');
    p.sadd('set', 'x', 'y');
    p.xadd('st', '1-1', 'f', 'v');
    p.pexpireat('s:1', Date.now() + 3_600_000);
    await p.exec();
    const cpPath = `${source.dir}/cluster-cp.json`;
    const sync: RunningSync = runSync({ source: source.url, target: `redis://${cluster.seed.host}:${cluster.seed.port}`, checkpoint: { kind: 'file', path: cpPath } });
    cleanups.push(() => sync.stop());
    await new Promise<void>((resolve, reject) => {
      sync.session.once('fullSyncDone', () => resolve());
      sync.done.then(() => reject(new Error('sync ended early')), reject);
    });
    // Live writes, including single-slot transactions and scripts (hash tags).
    for (let i = 0; i < 300; i++) {
      await src.incr(`c:${i % 7}`);
      await src.lpush(`l:${i % 50}`, `n${i}`);
      await src.append(`s:${i}`, 'x');
      await src.hincrby(`h:${i % 50}`, 'a', 2);
      await src.multi().incr('{tx}a').lpush('{tx}b', String(i)).exec();
      await src.eval("redis.call('INCR', KEYS[1]); return redis.call('APPEND', KEYS[2], 'e')", 2, '{ev}n', '{ev}s');
    }
    await src.xadd('st', '*', 'live', '1');
    await src.del('s:5');
    await waitCaughtUp(sync.session, src);
    await sync.stop();
    const target = cluster.client();
    const keys = await allKeys(src);
    expect(keys.length).toBeGreaterThan(2000);
    for (const k of keys) expect(await snapshotKey(target, k), k).toEqual(await snapshotKey(src, k));
    expect(await target.exists('s:5')).toBe(0);
    const cp = JSON.parse((await import('node:fs')).readFileSync(cpPath, 'utf8'));
    expect(cp.state).toBe('streaming');
    expect(cp.offset).toBe(sync.session.status().appliedOffset);
  });

  it('a master flushed mid-stream loses its marker key: detected, and the target is copied again; a source FLUSHALL is not mistaken for it', async () => {
    const { source, cluster, src } = await sourceAndCluster();
    const p = src.pipeline();
    for (let i = 0; i < 600; i++) p.set(`k:${i}`, String(i));
    await p.exec();
    const { logger, lines } = captureLogger();
    const lost = () => lines.filter((l) => l['level'] === 50 && /^the target lost what it had applied/.test(String(l['msg'])));
    const sync: RunningSync = runSync({ source: source.url, target: `redis://${cluster.seed.host}:${cluster.seed.port}`, checkpoint: { kind: 'file', path: `${source.dir}/cp.json` }, leaseTtlMs: 1500, logger });
    cleanups.push(() => sync.stop());
    await waitFor(() => sync.session.status().phase === 'streaming', 'streaming', 20_000);
    const target = cluster.client();
    // Markers are placed at the first lease renewal (every 0.5 s here).
    const markerCount = async () => {
      let n = 0;
      for (const node of cluster.nodes) n += (await node.client().keys('__replicant:marker:*')).length;
      return n;
    };
    await waitFor(async () => (await markerCount()) === 3, 'one marker per master', 10_000);
    // A source FLUSHALL is relayed to every master (markers included): not a loss.
    await src.flushall();
    for (let i = 0; i < 100; i++) await src.set(`n:${i}`, String(i));
    await waitCaughtUp(sync.session, src);
    await waitFor(async () => (await markerCount()) === 3, 'the markers placed again', 10_000);
    await new Promise((r) => setTimeout(r, 1000)); // two more checks
    expect(sync.session.status().fullSyncs).toBe(1);
    expect(lost()).toEqual([]);
    // One master emptied out of band.
    await cluster.nodes[1]!.client().flushall();
    await src.set('after', '1');
    await waitFor(() => sync.session.status().fullSyncs === 2, 'a second full sync', 20_000);
    expect(lost().map((l) => l['msg'])).toEqual([expect.stringContaining(`master 127.0.0.1:${cluster.nodes[1]!.port} no longer holds the marker key`)]);
    await waitFor(() => sync.session.status().phase === 'streaming', 'streaming again', 20_000);
    await src.set('last', '1');
    await waitCaughtUp(sync.session, src);
    const keys = await allKeys(src);
    expect(keys.length).toBe(102);
    for (const k of keys) expect(await target.get(k), k).toBe(await src.get(k));
  });

  it('CLI without --checkpoint: a cluster target gets the default file checkpoint (in --spool-dir)', async () => {
    const { source, cluster, src } = await sourceAndCluster();
    await src.mset('a', '1', 'b', '2');
    const dir = mkdtempSync(join(tmpdir(), 'replicant-cluster-cp-'));
    const r = await runCli(['sync', '-s', source.url, '-t', `redis://${cluster.seed.host}:${cluster.seed.port}`, '--spool-dir', dir, '--exit-after-full-sync', '--no-progress'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(await cluster.client().get('b')).toBe('2');
    expect(readdirSync(dir).filter((f) => f.startsWith('.replicant-checkpoint-'))).toHaveLength(1);
  });

  it('reports a key in another db under --on-error fail, skips it under skip', async () => {
    const source = await startRedis();
    cleanups.push(() => source.stop());
    const cluster = await startCluster(3);
    cleanups.push(() => cluster.stop());
    const src = source.client();
    await src.set('a', '1');
    await src.select(3);
    await src.set('elsewhere', '1');
    const failing = runSync({ source: source.url, target: `redis://${cluster.seed.host}:${cluster.seed.port}`, checkpoint: { kind: 'none' } });
    await expect(failing.done).rejects.toThrow(/db 3.*cluster target has only db 0/);
    const report = join(source.dir, 'lost-keys.txt');
    const skipping = runSync({ source: source.url, target: `redis://${cluster.seed.host}:${cluster.seed.port}`, checkpoint: { kind: 'none' }, onError: 'skip', existing: 'replace', report });
    cleanups.push(() => skipping.stop().catch(() => undefined));
    await waitFor(() => skipping.session.status().phase === 'streaming', 'streaming', 30_000);
    expect(await cluster.client().get('a')).toBe('1');
    const st = skipping.session.status();
    expect(st.errors).toBeGreaterThanOrEqual(1);
    // The key of db 3 is not on the target: counted, named in the report, and the copy is incomplete.
    expect(st).toMatchObject({ lostKeys: 1, lostKeysReport: report, complete: false });
    expect(readFileSync(report, 'utf8')).toMatch(/^3\telsewhere\tdb 3 does not exist on a cluster target\n$/);
    await expect(skipping.stop()).rejects.toMatchObject({ exitCode: 9 });
  });
});
