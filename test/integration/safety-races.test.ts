/**
 * No operator mistake and no topology change loses or doubles a write: two syncs of one source
 * launched at the same moment, overlapping partial syncs, a refusal that must leave nothing
 * behind, a flush that must keep the sync's own lease, and a restart after a crash that must
 * not wait for a provably dead holder. Real servers, real CLI processes.
 */
import type { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { infoField, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, startCli, type BackgroundCli } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/fault-proxy.js';

const servers: RedisServer[] = [];
const procs: BackgroundCli[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  for (const c of cleanups.splice(0)) await c().catch(() => undefined);
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

function sync(args: string[], ttl = '2s'): BackgroundCli & { started: number } {
  const started = Date.now();
  const run = startCli(['sync', '--no-progress', '--lease-ttl', ttl, ...args], 90_000);
  procs.push(run);
  return { ...run, started };
}

async function server(args: string[] = []): Promise<RedisServer> {
  const s = await startRedis({ args });
  servers.push(s);
  return s;
}

type LogLine = { msg: string; time: number } & Record<string, unknown>;
function logs(r: BackgroundCli): LogLine[] {
  const out: LogLine[] = [];
  for (const line of r.stderr().split('\n')) {
    try {
      const o = JSON.parse(line) as LogLine;
      if (typeof o.msg === 'string') out.push(o);
    } catch {
      /* the final plain error line */
    }
  }
  return out;
}

const streaming = (r: BackgroundCli) => waitFor(() => /phase: streaming/.test(r.stderr()), 'the sync to stream', 30_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A exit code, or null when still running after `ms`. */
const exitWithin = (r: BackgroundCli, ms: number) => Promise.race([r.code, sleep(ms).then(() => null)]);

/** INCRs on the source until stopped; resolves with how many. */
function incrLoad(c: Redis, keys: string[]): { stop: () => Promise<number> } {
  let stop = false;
  let n = 0;
  const done = (async () => {
    while (!stop) {
      const p = c.pipeline();
      for (const k of keys) p.incr(k);
      await p.exec();
      n++;
      await sleep(2);
    }
    return n;
  })();
  return { stop: async () => ((stop = true), done) };
}

async function counters(c: Redis, keys: string[]): Promise<(string | null)[]> {
  return Promise.all(keys.map((k) => c.get(k)));
}

describe('safety races: two syncs of one source at the same moment', () => {
  it('exactly one runs (the other exits 2 before writing), the counters are the source\'s', async () => {
    const keys = ['c:1', 'c:2'];
    for (let attempt = 0; attempt < 4; attempt++) {
      const source = await server();
      const target = await server();
      const src = source.client();
      const tc = target.client();
      await src.mset('c:1', '0', 'c:2', '0');
      const load = incrLoad(source.client(), keys);
      // Both held at their first target command, then let go together: their checks run side by side.
      const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: target.port } });
      proxy.stall('up');
      const first = sync(['-s', `redis://127.0.0.1:${source.port}`, '-t', proxy.url, '--name', 'first', '--existing', 'replace']);
      const second = sync(['-s', `redis://localhost:${source.port}`, '-t', proxy.url, '--name', 'second', '--existing', 'replace']);
      await waitFor(() => proxy.stats.active >= 2, 'both syncs to connect to the target', 10_000, 20);
      await sleep(200);
      proxy.resume();
      // The first exit, then a moment for the other to exit too (it must not).
      await Promise.race([first.code, second.code, sleep(12_000)]);
      const [a, b] = await Promise.all([exitWithin(first, 1000), exitWithin(second, 1000)]);
      expect([a, b].filter((c) => c === 2), `attempt ${attempt}: exit codes ${a} ${b}\n${first.stderr().slice(-1500)}\n${second.stderr().slice(-1500)}`).toHaveLength(1);
      const winner = a === 2 ? second : first;
      const loser = a === 2 ? first : second;
      expect([a, b].filter((c) => c === null)).toHaveLength(1);
      expect(loser.stderr()).toMatch(/already copies the source .* into this target: a second sync of it would apply every write twice/);
      await streaming(winner);
      await load.stop();
      const want = await counters(src, keys);
      await waitFor(async () => JSON.stringify(await counters(tc, keys)) === JSON.stringify(want), `attempt ${attempt}: the target counters to equal ${want.join(',')}`, 20_000, 50);
      await sleep(300);
      expect(await counters(tc, keys)).toEqual(want);
      // The loser left no registry entry and no lease.
      expect(Object.keys(await tc.hgetall('__replicant:syncs'))).toEqual([a === 2 ? 'second' : 'first']);
      expect(await tc.keys('__replicant:lease:*')).toHaveLength(1);
      winner.kill('SIGTERM');
      expect(await winner.code).toBe(0);
      for (const p of procs.splice(0)) p.kill('SIGKILL');
      await proxy.close();
      await Promise.all(servers.splice(0).map((s) => s.stop()));
    }
  }, 180_000);

  it('a running sync that finds a later registration of its source keeps running; an earlier one stops it (exit 2)', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tc = target.client();
    await src.set('n', '0');
    const run = sync(['-s', source.url, '-t', target.url, '--name', 'mine']);
    await streaming(run);
    const mine = JSON.parse((await tc.hget('__replicant:syncs', 'mine'))!) as Record<string, unknown>;
    // Entries of the same source written behind the atomic registration's back (an older Replicant).
    await tc.hset('__replicant:syncs', 'later', JSON.stringify({ ...mine, checkpointKey: '__replicant:checkpoint:later', leaseKey: '__replicant:lease:later', since: Number(mine.since) + 1000 }));
    await sleep(2000); // three lease renewals
    expect(await exitWithin(run, 10)).toBeNull();
    await src.incr('n');
    await waitFor(async () => (await tc.get('n')) === '1', 'n to reach 1');
    await tc.hset('__replicant:syncs', 'earlier', JSON.stringify({ ...mine, checkpointKey: '__replicant:checkpoint:earlier', leaseKey: '__replicant:lease:earlier', since: Number(mine.since) - 1000 }));
    expect(await exitWithin(run, 10_000)).toBe(2);
    expect(run.stderr()).toMatch(/sync "earlier" registered the source .* before this one/);
    expect(await tc.hexists('__replicant:syncs', 'mine')).toBe(0);
  }, 60_000);
});

describe('safety races: overlapping partial syncs', () => {
  it("refuses --key 'ab*' next to --key 'a*' of the same source (exit 2); --allow-overlap runs it with a warning", async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    await src.mset('a:ctr', '0', 'ab:ctr', '0', 'x:ctr', '0');
    const a = sync(['-s', source.url, '-t', target.url, '--name', 'as', '--key', 'a*']);
    await streaming(a);
    const ab = sync(['-s', source.url, '-t', target.url, '--name', 'abs', '--key', 'ab*', '--existing', 'replace']);
    expect(await ab.code).toBe(2);
    expect(ab.stderr()).toMatch(/sync \\?"as\\?" already copies keys of the source .* that this sync would copy too/);
    expect(await target.client().hexists('__replicant:syncs', 'abs')).toBe(0);
    // Disjoint by type: fine, and silent about overlaps.
    const hashes = sync(['-s', source.url, '-t', target.url, '--name', 'hashes', '--key', 'ab*', '--type', 'hash', '--existing', 'replace']);
    // a* copies every type: ab* of type hash overlaps it.
    expect(await hashes.code).toBe(2);
    const xs = sync(['-s', source.url, '-t', target.url, '--name', 'xs', '--key', 'x*', '--existing', 'replace']);
    await streaming(xs);
    const forced = sync(['-s', source.url, '-t', target.url, '--name', 'abs', '--key', 'ab*', '--existing', 'replace', '--allow-overlap']);
    await streaming(forced);
    expect(forced.stderr()).toMatch(/--allow-overlap/);
    for (const r of [a, xs, forced]) {
      r.kill('SIGTERM');
      expect(await r.code).toBe(0);
    }
  }, 90_000);
});

describe('safety races: a refusal leaves nothing behind', () => {
  it('a source that is a native replica of the target, caught before its link is up: exit 2, no __replicant key; a legitimate sync then starts normally', async () => {
    // The target delays the replica's sync: its link stays down (and its replid its own) for a while.
    const target = await server(['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '3']);
    await target.client().set('k', 'v');
    const replica = await server();
    await replica.client().call('REPLICAOF', '127.0.0.1', String(target.port));
    const r = sync(['-s', replica.url, '-t', target.url, '--existing', 'replace']);
    expect(await r.code).toBe(2);
    expect(r.stderr()).toMatch(/replication loop: the source 127\.0\.0\.1:\d+ /);
    const tc = target.client();
    expect(await tc.keys('__replicant:*')).toEqual([]);
    await waitFor(async () => (await replica.client().get('k')) === 'v', 'the replica to copy the target', 20_000);
    const other = await server();
    await other.client().set('o', '1');
    const legit = sync(['-s', other.url, '-t', target.url, '--existing', 'replace']);
    await streaming(legit);
    const store = logs(legit).find((l) => l.msg === 'checkpoint store');
    expect(store?.otherSyncs).toEqual([]);
    expect(legit.stderr()).not.toMatch(/another sync now writes to this target/);
    legit.kill('SIGTERM');
    expect(await legit.code).toBe(0);
  }, 60_000);
});

describe('safety races: a flush keeps the sync\'s own keys', () => {
  it('an interrupted full sync is flushed without the lease ever vanishing', async () => {
    const source = await server();
    const target = await server();
    await source.client().call('DEBUG', 'POPULATE', '40000', 'key', '100');
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: source.port } });
    cleanups.push(() => proxy.close());
    proxy.slow('down', 512 * 1024);
    const tc = target.client();
    const run = sync(['-s', proxy.url, '-t', target.url, '--name', 'cut']);
    await waitFor(async () => (await tc.dbsize()) > 1000, 'the first keys on the target', 30_000, 20);
    // Watch the lease from now on: it must never be missing.
    let watching = true;
    let missing = 0;
    let polls = 0;
    const watcher = (async () => {
      const w = target.client();
      while (watching) {
        if ((await w.exists('__replicant:lease:cut')) === 0) missing++;
        polls++;
      }
    })();
    proxy.cut();
    proxy.slow('down', null);
    await waitFor(() => /flushing its partial copy from the target/.test(run.stderr()), 'the interrupted copy to be flushed', 30_000);
    await streaming(run);
    watching = false;
    await watcher;
    expect(polls).toBeGreaterThan(10);
    expect(run.stderr()).not.toMatch(/the lease was gone/);
    expect(missing).toBe(0);
    expect(await tc.hexists('__replicant:syncs', 'cut')).toBe(1);
    // Its own keys: the lease, the registry, the checkpoint and the foreign-writes ledger (written
    // with the batch that ends the full sync, which may reach the target just after the phase log).
    await waitFor(async () => (await tc.dbsize()) >= 40_000 + 4, 'the ledger', 10_000, 20);
    expect(await tc.dbsize()).toBe(40_000 + 4);
    run.kill('SIGTERM');
    expect(await run.code).toBe(0);
  }, 90_000);
});

describe('safety races: a restart after a crash', () => {
  it('takes over the lease of a dead holder on the same host at once and resumes with +CONTINUE', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tc = target.client();
    const keys = ['c:1', 'c:2'];
    await src.mset('c:1', '0', 'c:2', '0');
    const load = incrLoad(source.client(), keys);
    // The default lease TTL (10 s): waiting for it would show.
    const first = sync(['-s', source.url, '-t', target.url], '10s');
    await streaming(first);
    await sleep(300);
    const full = await infoField(src, 'stats', 'sync_full');
    const partial = await infoField(src, 'stats', 'sync_partial_ok');
    first.kill('SIGKILL');
    await first.code;
    const again = sync(['-s', source.url, '-t', target.url], '10s');
    await waitFor(() => /resumed with a partial resync/.test(again.stderr()), 'the restart to resume', 30_000);
    const took = logs(again).find((l) => /lease taken over at once/.test(l.msg));
    expect(took, again.stderr().slice(-2000)).toBeDefined();
    expect(took!.time - again.started).toBeLessThan(2000);
    const resumed = logs(again).find((l) => /resumed with a partial resync/.test(l.msg))!;
    expect(resumed.time - again.started).toBeLessThan(4000);
    expect(await infoField(src, 'stats', 'sync_full')).toBe(full);
    expect(await infoField(src, 'stats', 'sync_partial_ok')).toBe(partial + 1);
    await load.stop();
    const want = await counters(src, keys);
    await waitFor(async () => JSON.stringify(await counters(tc, keys)) === JSON.stringify(want), 'the counters to match', 20_000, 50);
    await sleep(300);
    expect(await counters(tc, keys)).toEqual(want);
    again.kill('SIGTERM');
    expect(await again.code).toBe(0);
  }, 60_000);
});
