/**
 * `replicant verify` (and cutover's sampled verify, and plan) with a Redis Cluster on either side,
 * against real servers: a standalone source and its copy in a 3-master and a 4-master cluster
 * (copied with DUMP / RESTORE ABSTTL, so values, stream groups and expiries are identical).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { populate } from '../helpers/dataset.js';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { startCluster, type RedisCluster } from '../helpers/cluster.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { runSync, waitCaughtUp } from '../helpers/sync.js';
import { startMetricsServer } from '../../src/observe/metrics.js';
import { KeyChecker } from '../../src/verify/check.js';
import { VerifySide } from '../../src/verify/side.js';
import { checkRandomSample } from '../../src/cutover/random-sample.js';
import { parseRedisUrl } from '../../src/replication/url.js';
import { silentLogger } from '../../src/observe/logger.js';
import { keySlot } from '../../src/commands/slot.js';

let source: RedisServer;
let three: RedisCluster;
let four: RedisCluster;
let sourceKeys = 0;

const url = (c: RedisCluster) => `redis://${c.seed.host}:${c.seed.port}`;

/** Every key of the source's db 0 onto the cluster, with its exact expiry. */
async function copyInto(cluster: RedisCluster): Promise<void> {
  const src = source.client();
  const dst = cluster.client();
  let cursor = '0';
  do {
    const [next, keys] = await src.scanBuffer(cursor, 'COUNT', 200);
    cursor = next.toString();
    for (const k of keys) {
      const [dump, at] = await Promise.all([src.dumpBuffer(k), src.call('PEXPIRETIME', k) as Promise<number>]);
      await dst.call('RESTORE', k, at > 0 ? at : 0, dump!, 'REPLACE', ...(at > 0 ? ['ABSTTL'] : []));
    }
  } while (cursor !== '0');
}

async function flushCluster(cluster: RedisCluster): Promise<void> {
  await Promise.all(cluster.nodes.map((n) => n.client().flushall()));
}

async function verify(args: string[]): Promise<{ code: number; report: Record<string, any>; stderr: string }> {
  const r = await runCli(['verify', '--log-level', 'warn', '--json', '--no-progress', ...args]);
  return { code: r.code, report: r.stdout.length > 0 ? JSON.parse(r.stdout.toString()) : {}, stderr: r.stderr };
}

beforeAll(async () => {
  await ensureBuilt();
  [source, three, four] = await Promise.all([startRedis(), startCluster(3), startCluster(4)]);
  await populate(source.client(), { seed: 5, dbs: [0], bigElements: 1500, smallKeys: 200, bigStringBytes: 100_000, functions: false });
  sourceKeys = Number(await source.client().dbsize());
}, 180_000);

afterAll(async () => {
  await Promise.all([source?.stop(), three?.stop(), four?.stop()]);
});

beforeEach(async () => {
  await Promise.all([flushCluster(three), flushCluster(four)]);
  await source.client(1).flushdb();
  await Promise.all([copyInto(three), copyInto(four)]);
}, 60_000);

describe('verify with a cluster side', () => {
  it('standalone source, cluster target: EQUAL key by key over every master', async () => {
    // The keys really are spread: each master holds some.
    for (const n of three.nodes) expect(Number(await n.client().dbsize())).toBeGreaterThan(0);
    const r = await verify(['-s', source.url, '-t', url(three)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.report.method).toBe('keys');
    expect(r.report.fingerprint).toBe('digest-value');
    expect(r.report.target.masters).toBe(3);
    expect(r.report.source.masters).toBeNull();
    expect(r.report.summary).toMatchObject({ compared: sourceKeys, equal: sourceKeys, missing: 0, extra: 0, value: 0, type: 0, ttl: 0 });

    const text = await runCli(['verify', '--log-level', 'warn', '--no-progress', '-s', source.url, '-t', url(three)]);
    expect(text.stdout.toString()).toContain('cluster of 3 masters');
    expect(text.stdout.toString()).toMatch(/EQUAL/);
  });

  it('finds and names each key changed, missing or extra on the cluster', async () => {
    const c = three.client();
    await c.hset('big:hash', 'field-700', 'changed'); // a big hash: described by HSCAN on the source, HMGET on the target
    await c.del('d0:k5');
    await c.set('extra:only-on-target', 'x');
    await c.pexpire('int:neg', 90_000_000);
    await c.del('zset:special');
    await c.set('zset:special', 'now a string');
    const r = await verify(['-s', source.url, '-t', url(three)]);
    expect(r.code).toBe(8);
    expect(r.report.summary).toMatchObject({ missing: 1, extra: 1, value: 1, type: 1, ttl: 1, equal: sourceKeys - 4 });
    const byKey = Object.fromEntries((r.report.differences as { key: string; kind: string; detail: string }[]).map((d) => [d.key, d]));
    expect(byKey['big:hash']).toMatchObject({ kind: 'value', detail: 'field "field-700" has a different value' });
    expect(byKey['d0:k5']).toMatchObject({ kind: 'missing' });
    expect(byKey['extra:only-on-target']).toMatchObject({ kind: 'extra' });
    expect(byKey['int:neg']).toMatchObject({ kind: 'ttl' });
    expect(byKey['zset:special']).toMatchObject({ kind: 'type', detail: 'zset on source, string on target' });
  });

  it('cluster source, standalone target: EQUAL, and a source db the cluster cannot have is named', async () => {
    const r = await verify(['-s', url(three), '-t', source.url]);
    expect(r.code).toBe(0);
    expect(r.report.source.masters).toBe(3);
    expect(r.report.summary).toMatchObject({ compared: sourceKeys, equal: sourceKeys });

    // Keys in db 1 of the standalone side: a cluster has no db 1, so they are extra on the target...
    await source.client(1).set('in-db-1', 'v');
    const extra = await verify(['-s', url(three), '-t', source.url]);
    expect(extra.code).toBe(8);
    expect(extra.report.summary.extra).toBe(1);
    expect(extra.report.differences).toEqual([expect.objectContaining({ db: 1, key: 'in-db-1', kind: 'extra' })]);
    expect(extra.report.notes).toEqual(['the source is a cluster (db 0 only): the keys the target holds for source db 1 count as extra']);
    // ...and missing the other way round.
    const missing = await verify(['-s', source.url, '-t', url(three)]);
    expect(missing.code).toBe(8);
    expect(missing.report.summary.missing).toBe(1);
    expect(missing.report.notes).toEqual(['the target is a cluster (db 0 only): the keys of source db 1 count as missing']);
  });

  it('cluster (3 masters) against cluster (4 masters): equal, then different', async () => {
    const equal = await verify(['-s', url(three), '-t', url(four), '--batch', '64']);
    expect(equal.code).toBe(0);
    expect(equal.report.source.masters).toBe(3);
    expect(equal.report.target.masters).toBe(4);
    expect(equal.report.summary).toMatchObject({ compared: sourceKeys, equal: sourceKeys });

    await four.client().lset('big:list', 1234, 'changed');
    await three.client().set('only-on-source', '1');
    const diff = await verify(['-s', url(three), '-t', url(four)]);
    expect(diff.code).toBe(8);
    expect(diff.report.summary).toMatchObject({ missing: 1, value: 1, extra: 0 });
    const named = (diff.report.differences as { key: string; detail: string }[]).map((d) => `${d.key}: ${d.detail}`).sort();
    expect(named).toEqual(['big:list: list element 1234 differs', 'only-on-source: string only on source']);
  });

  it('--sample on a cluster checks about that many keys on each side', async () => {
    const r = await verify(['-s', url(three), '-t', url(four), '--sample', '40']);
    expect(r.code).toBe(0);
    expect(r.report.sample).toBe('about 40 keys');
    expect(r.report.summary.compared).toBeGreaterThan(0);
    expect(r.report.summary.compared).toBeLessThanOrEqual(40);
  });

  it('follows ASK and MOVED while a slot migrates between masters during the check', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => Buffer.from(`{mv}:${i}`));
    const slot = keySlot(keys[0]!);
    const ids = await Promise.all(four.nodes.map(async (n) => String(await n.client().call('CLUSTER', 'MYID'))));
    for (const [i, k] of keys.entries()) {
      await source.client().set(k, `value-${i}`);
      await four.client().set(k, `value-${i}`);
    }
    const from = await ownerOf(four, slot);
    const to = (from + 1) % four.nodes.length;
    const side = new VerifySide('target', parseRedisUrl(url(four)), silentLogger());
    const src = new VerifySide('source', parseRedisUrl(source.url), silentLogger());
    try {
      await side.open();
      await src.open();
      const checker = new KeyChecker({ source: src, target: side, fingerprint: 'digest-value', expiry: 'pexpiretime', describe: () => true, logger: silentLogger() });
      const [fromC, toC] = [four.nodes[from]!.client(), four.nodes[to]!.client()];
      await toC.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids[from]!);
      await fromC.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids[to]!);
      await fromC.call('MIGRATE', '127.0.0.1', four.nodes[to]!.port, '', 0, 5000, 'KEYS', ...keys.slice(0, 5));
      // Half the keys moved: the old owner answers ASK for them, and DIGEST-VALUE there sees no key.
      expect((await checker.check(0, keys)).map((v) => v.kind)).toEqual(keys.map(() => 'equal'));
      await fromC.call('MIGRATE', '127.0.0.1', four.nodes[to]!.port, '', 0, 5000, 'KEYS', ...keys.slice(5));
      for (const n of four.nodes) await n.client().call('CLUSTER', 'SETSLOT', slot, 'NODE', ids[to]!);
      // The slot now belongs to the other master: MOVED, the map is refreshed, the reads retried.
      expect((await checker.check(0, keys)).map((v) => v.kind)).toEqual(keys.map(() => 'equal'));
      await toC.set(keys[3]!, 'changed');
      expect((await checker.check(0, [keys[3]!]))[0]).toMatchObject({ kind: 'value' });
    } finally {
      side.close();
      src.close();
      for (const k of keys) await source.client().del(k);
    }
  });
});

/** Index in `cluster.nodes` of the master serving `slot`. */
async function ownerOf(cluster: RedisCluster, slot: number): Promise<number> {
  const slots = (await cluster.nodes[0]!.client().call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  const range = slots.find(([a, b]) => a <= slot && slot <= b)!;
  return cluster.nodes.findIndex((n) => n.port === range[2][1]);
}

describe('cutover and plan with a cluster side', () => {
  it('cutover of a cluster source with no sync of it on the target (no shard checkpoints, no --status-url) is refused (exit 2), and pauses nothing', async () => {
    const r = await runCli(['cutover', '--log-level', 'warn', '-s', url(three), '-t', source.url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no shard of a sync named ".*" in the registry .* or --status-url/);
    // Writes on every master go through at once: none was paused.
    const c = three.client();
    const writes = (async () => {
      for (let i = 0; i < 30; i++) await c.set(`unpaused:${i}`, '1');
      return 'written';
    })();
    expect(await Promise.race([writes, new Promise((r) => setTimeout(() => r('blocked'), 2000))])).toBe('written');
  });

  it('bench refuses a cluster side (exit 2) before writing anything', async () => {
    const before = await source.client().dbsize();
    const r = await runCli(['bench', '-s', source.url, '-t', url(three), '--keys', '10', '--no-progress']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bench: the target is a Redis Cluster; bench measures standalone servers/);
    expect(await source.client().dbsize()).toBe(before);
  });

  it("cutover's sampled verify reads a cluster target through its masters", async () => {
    const s = new VerifySide('source', parseRedisUrl(source.url), silentLogger());
    const t = new VerifySide('target', parseRedisUrl(url(three)), silentLogger());
    try {
      await s.open();
      await t.open();
      const ok = await checkRandomSample(s, t, 100, silentLogger());
      expect(ok.differences).toBe(0);
      // Random keys of every master: more than one master's share of 100.
      expect(ok.compared).toBeGreaterThan(60);
      // A target holding four keys the source lacks, and none of the source's: every pick differs.
      const small = new VerifySide('target', parseRedisUrl(url(four)), silentLogger());
      await flushCluster(four);
      await four.client().set('a', '1');
      await four.client().set('b', '2');
      await small.open();
      const diff = await checkRandomSample(s, small, 50, silentLogger());
      small.close();
      expect(diff.equal).toBe(0);
      expect(diff.differences).toBe(diff.compared);
      expect(diff.compared).toBeGreaterThan(2);
      expect(diff.examples.join('\n')).toMatch(/: missing \(/);
    } finally {
      s.close();
      t.close();
    }
  });

  it('cutover into a cluster target: the sync catches up, the sampled verify reads every master', async () => {
    const own = await startRedis();
    await flushCluster(three);
    const src = own.client();
    await src.call('DEBUG', 'POPULATE', 3000, 'pre', 20);
    const sync = runSync({ source: own.url, target: url(three), checkpoint: { kind: 'file', path: `${own.dir}/cp.json` }, leaseTtlMs: 1500 });
    const metrics = await startMetricsServer(sync.session, { port: 0 });
    try {
      await waitCaughtUp(sync.session, src);
      // Replicant's keys on the target (lease, a marker per master) are not counted as data.
      await waitFor(async () => {
        let markers = 0;
        for (const n of three.nodes) markers += (await n.client().keys('__replicant:marker:*')).length;
        return markers === three.nodes.length;
      }, 'a marker key on every master');
      await src.set('late', 'x');
      const r = await runCli(['cutover', '--log-level', 'warn', '-s', own.url, '-t', url(three), '--status-url', `http://127.0.0.1:${metrics.port}/status`, '--sample', '300', '--max-pause', '10s', '--unpause', '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const proof = JSON.parse(r.stdout.toString());
      expect(proof.appliedOffset).toBe(proof.sourceOffset);
      expect(proof.verify).toMatchObject({ method: 'random-keys', differences: 0 });
      expect(proof.verify.compared).toBeGreaterThan(300);
      expect(proof.targetKeys).toBe(proof.sourceKeys);
      expect(proof.unpaused).toBe(true);
    } finally {
      await metrics.close();
      await sync.stop().catch(() => {});
      await own.stop();
    }
  }, 60_000);

  it('plan with a cluster source: no crash, the cluster reported and its keys added up', async () => {
    const r = await runCli(['plan', '--log-level', 'warn', '-s', url(three), '-t', source.url, '--sample-time', '200ms', '--json']);
    expect([0, 12]).toContain(r.code);
    const p = JSON.parse(r.stdout.toString());
    expect(p.source.masters).toBe(3);
    expect(p.source.keys).toBe(sourceKeys);
    expect(p.checks.find((c: { name: string }) => c.name === 'cluster source')).toMatchObject({ verdict: 'warn' });
    const t = await runCli(['plan', '--log-level', 'warn', '-s', source.url, '-t', url(four), '--sample-time', '200ms', '--json']);
    const q = JSON.parse(t.stdout.toString());
    expect(q.target).toMatchObject({ cluster: true, masters: 4, keys: sourceKeys });
  });
});
