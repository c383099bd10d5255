/**
 * One cluster source sync shared by several `replicant sync` processes (same source, target and
 * --name): each holds its share of the shards through their leases in the target; a process
 * killed has its shards resumed by another (PSYNC continue, no full sync); one that joins takes
 * shards from the busiest; SIGTERM hands shards over; --max-shards caps a process. A cluster of
 * 3 masters + 3 replicas under a non-idempotent write load, a standalone target, checked key by
 * key at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, infoField, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli, startCli, type BackgroundCli } from '../helpers/cli.js';
import { masters, startCluster, type RedisCluster } from '../helpers/cluster.js';
import { masterOffset } from '../helpers/sync.js';

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

const TTL_MS = 2000;

interface Status {
  phase: string;
  shards: { shard: string; phase: string; node: string | null; appliedOffset: number | null; fullSyncs: number; partialSyncs: number }[];
  sharing: { member: string; quota: number; waiting: string[]; members: { id: string; shards: string[] }[] };
}

interface Proc {
  cli: BackgroundCli;
  port: number;
  status(): Promise<Status | null>;
}

async function setup(): Promise<{ cluster: RedisCluster; target: RedisServer; seed: string; spool: string }> {
  const cluster = await startCluster({ masters: 3, replicasPerMaster: 1 });
  cleanups.push(() => cluster.stop());
  const target = await startRedis();
  cleanups.push(() => target.stop());
  const spool = mkdtempSync(join(tmpdir(), 'replicant-scale-'));
  cleanups.push(async () => rmSync(spool, { recursive: true, force: true }));
  return { cluster, target, seed: `redis://${cluster.seed.host}:${cluster.seed.port}`, spool };
}

async function start(seed: string, target: RedisServer, spool: string, extra: string[] = []): Promise<Proc> {
  const port = await freePort();
  const cli = startCli(['sync', '--no-progress', '-s', seed, '-t', target.url, '--name', 'shared', '--lease-ttl', `${TTL_MS}ms`, '--spool-dir', spool, '--metrics-port', String(port), ...extra], 170_000);
  cleanups.push(async () => cli.kill('SIGKILL'));
  const status = async (): Promise<Status | null> => {
    const r = await fetch(`http://127.0.0.1:${port}/status`).catch(() => null);
    return r === null ? null : ((await r.json()) as Status);
  };
  return { cli, port, status };
}

/** INCRs and SETs spread over every slot until stopped; the counts it made. */
function writeLoad(client: InstanceType<typeof Redis.Cluster>): { stop(): Promise<Map<string, number>> } {
  const counts = new Map<string, number>();
  let on = true;
  const loop = (async () => {
    for (let i = 0; on; i++) {
      const key = `ctr:${i % 60}`;
      await client.incr(key);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (i % 7 === 0) await client.set(`k:${i % 500}`, String(i));
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 2));
    }
  })();
  // A failing test stops the cluster under the loop: its rejection is the test's failure, not an unhandled one.
  loop.catch(() => {});
  return {
    async stop() {
      on = false;
      await loop;
      return counts;
    },
  };
}

const held = (s: Status | null): string[] => (s?.shards ?? []).map((x) => x.shard).sort();

async function fullAndPartial(cluster: RedisCluster): Promise<{ full: number; partial: number }[]> {
  const out = [];
  for (const m of await masters(cluster)) {
    const c = m.client();
    out.push({ full: await infoField(c, 'stats', 'sync_full'), partial: await infoField(c, 'stats', 'sync_partial_ok') });
  }
  return out;
}

/** Every key of the cluster's masters equals the target's, value by value. */
async function expectEqual(cluster: RedisCluster, target: RedisServer): Promise<void> {
  const source = new Map<string, string>();
  for (const m of await masters(cluster)) {
    const c = m.client();
    for (const k of await c.keys('*')) source.set(k, (await c.get(k))!);
  }
  const tc = target.client();
  const keys = (await tc.keys('*')).filter((k) => !k.startsWith('__replicant:'));
  expect(keys.sort()).toEqual([...source.keys()].sort());
  for (const [k, v] of source) expect(await tc.get(k), k).toBe(v);
}

/** Every shard streams and has applied at least what its master had written when called. */
async function caughtUp(procs: Proc[], cluster: RedisCluster): Promise<void> {
  const want = new Map<number, number>();
  for (const m of await masters(cluster)) want.set(m.port, await masterOffset(m.client()));
  await waitFor(
    async () => {
      const shards = (await Promise.all(procs.map((p) => p.status()))).flatMap((s) => s?.shards ?? []);
      if (shards.length !== 3 || shards.some((s) => s.phase !== 'streaming' || s.node === null)) return false;
      return shards.every((s) => (s.appliedOffset ?? 0) >= (want.get(Number(s.node!.split(':').pop())) ?? Infinity));
    },
    'every shard to be caught up',
    30_000,
    100,
  );
}

describe('one cluster sync shared by several processes', () => {
  it('three processes hold one shard each; a fourth stays idle; SIGKILL moves a shard with PSYNC continue; SIGTERM hands shards over; exact at the end', async () => {
    const { cluster, target, seed, spool } = await setup();
    const client = cluster.client();
    for (let i = 0; i < 300; i++) await client.set(`pre:${i}`, String(i));
    const load = writeLoad(client);
    // Started together: one of them decides the first start (--existing) for all.
    const procs = await Promise.all([start(seed, target, spool), start(seed, target, spool), start(seed, target, spool)]);
    await waitFor(async () => (await Promise.all(procs.map((p) => p.status()))).every((s) => s?.phase === 'streaming' && s.shards.length === 1), 'each process to stream one shard', 60_000, 200);
    const owners = await Promise.all(procs.map(async (p) => held(await p.status())));
    expect(new Set(owners.flat()).size).toBe(3);
    await caughtUp(procs, cluster);

    // A fourth process: every share is already 1; it holds nothing and is a healthy standby.
    const fourth = await start(seed, target, spool);
    await waitFor(async () => (await fourth.status())?.sharing.members.length === 4, 'the fourth to be a member', 20_000, 100);
    await new Promise((r) => setTimeout(r, 3000));
    expect(held(await fourth.status())).toEqual([]);
    expect((await fetch(`http://127.0.0.1:${fourth.port}/healthz`)).status).toBe(200);
    for (const [i, p] of procs.entries()) expect(held(await p.status())).toEqual(owners[i]);

    // From the target alone: who holds which shard, and the processes.
    const st = await runCli(['status', '-t', target.url, '--name', 'shared', '--json'], { timeoutMs: 20_000 });
    expect(st.code, st.stderr).toBe(0);
    const view = JSON.parse(st.stdout.toString()) as { clusters: { name: string; members: { id: string; pid: number }[]; shards: { shard: string; heldBy: { pid: number; member: string } | null; checkpoint: { state: string } | null }[] }[] };
    expect(view.clusters).toHaveLength(1);
    expect(view.clusters[0]!.members).toHaveLength(4);
    for (const [i, p] of procs.entries()) {
      const member = (await p.status())!.sharing.member;
      const shard = view.clusters[0]!.shards.find((x) => x.shard === owners[i]![0])!;
      expect(shard.heldBy?.member).toBe(member);
      expect(shard.checkpoint?.state).toBe('streaming');
    }
    const text = await runCli(['status', '-t', target.url], { timeoutMs: 20_000 });
    expect(text.stdout.toString()).toMatch(/sync "shared" \(cluster source\): 3 shards, 3 running, 4 processes/);

    // A cutover finds every shard's applied offset in the target, the shards spread over three processes.
    const cut = await runCli(['cutover', '-s', seed, '-t', target.url, '--name', 'shared', '--unpause', '--sample', '50', '--max-pause', '10s', '--json'], { timeoutMs: 40_000 });
    expect(cut.code, cut.stderr).toBe(0);
    const proof = JSON.parse(cut.stdout.toString()) as { shards: { sourceOffset: number; appliedOffset: number }[] };
    expect(proof.shards).toHaveLength(3);
    for (const x of proof.shards) expect(x.appliedOffset).toBe(x.sourceOffset);

    // SIGKILL the first: its shard is resumed by another process within TTL + 2 s, with a partial resync.
    const before = await fullAndPartial(cluster);
    const victim = owners[0]![0]!;
    const killedAt = Date.now();
    procs[0]!.cli.kill('SIGKILL');
    const alive = [procs[1]!, procs[2]!, fourth];
    await waitFor(async () => (await Promise.all(alive.map((p) => p.status()))).some((s) => held(s).includes(victim) && s!.shards.find((x) => x.shard === victim)!.phase === 'streaming'), 'the killed shard to be resumed', 20_000, 50);
    expect(Date.now() - killedAt).toBeLessThan(TTL_MS + 2000);
    const after = await fullAndPartial(cluster);
    expect(after.map((x) => x.full)).toEqual(before.map((x) => x.full));
    expect(after.reduce((t, x) => t + x.partial, 0)).toBeGreaterThan(before.reduce((t, x) => t + x.partial, 0));

    // SIGTERM two of the three left: their shards go to the last one, without a full sync.
    const [a, b, last] = alive as [Proc, Proc, Proc];
    a!.cli.kill('SIGTERM');
    b!.cli.kill('SIGTERM');
    expect(await a!.cli.code).toBe(0);
    expect(await b!.cli.code).toBe(0);
    await waitFor(async () => held(await last.status()).length === 3, 'the last process to hold every shard', 20_000, 100);
    await caughtUp([last], cluster);
    expect((await fullAndPartial(cluster)).map((x) => x.full)).toEqual(before.map((x) => x.full));

    const counts = await load.stop();
    await caughtUp([last], cluster);
    await expectEqual(cluster, target);
    // Nothing applied twice: each counter is exactly the number of INCRs made.
    const tc = target.client();
    for (const [k, n] of counts) expect(Number(await tc.get(k)), k).toBe(n);
    last.cli.kill('SIGTERM');
    expect(await last.cli.code).toBe(0);
  }, 170_000);

  it('two processes with --max-shards 1 on three shards: one shard waits, visibly, until a third process starts', async () => {
    const { cluster, target, seed, spool } = await setup();
    const client = cluster.client();
    for (let i = 0; i < 100; i++) await client.set(`k${i}`, String(i));
    const p1 = await start(seed, target, spool, ['--max-shards', '1']);
    const p2 = await start(seed, target, spool, ['--max-shards', '1']);
    await waitFor(async () => held(await p1.status()).length === 1 && held(await p2.status()).length === 1, 'one shard each', 60_000, 200);
    await waitFor(async () => (await p1.status())!.sharing.waiting.length === 1, 'the third shard to be reported waiting', 10_000, 100);
    const waiting = (await p1.status())!.sharing.waiting[0]!;
    await waitFor(async () => (await p2.status())!.sharing.waiting.join() === waiting, 'the other process to report it too', 10_000, 100);
    expect(p1.cli.stderr() + p2.cli.stderr()).toMatch(/a shard waits for a process/);
    const metrics = await (await fetch(`http://127.0.0.1:${p1.port}/metrics`)).text();
    expect(metrics).toMatch(/replicant_shards_waiting 1/);
    const p3 = await start(seed, target, spool);
    await waitFor(async () => held(await p3.status()).includes(waiting), 'the third process to take the waiting shard', 30_000, 100);
    await caughtUp([p1, p2, p3], cluster);
    await waitFor(async () => (await p1.status())!.sharing.waiting.length === 0, 'no shard to wait any more', 5_000, 100);
    await expectEqual(cluster, target);
    for (const p of [p1, p2, p3]) p.cli.kill('SIGTERM');
    for (const p of [p1, p2, p3]) expect(await p.cli.code).toBe(0);
  }, 150_000);
});
