/**
 * An operator's ordinary mistakes must never lose or double data on the target: two sources
 * into one target, two instances of the same sync, source == target (and loops), a target
 * flushed or emptied while streaming, SWAPDB on the source. Real servers, real CLI processes.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, startCli, type BackgroundCli } from '../helpers/cli.js';
import { captureLogger, digestWithoutReserved, masterOffset, runSync, waitCaughtUp } from '../helpers/sync.js';

const servers: RedisServer[] = [];
const procs: Run[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

type Run = BackgroundCli;

function sync(args: string[]): Run {
  const run = startCli(['sync', '--no-progress', '--lease-ttl', '2s', ...args], 90_000);
  procs.push(run);
  return run;
}

async function server(args: string[] = []): Promise<RedisServer> {
  const s = await startRedis({ args });
  servers.push(s);
  return s;
}

const streaming = (r: Run, n = 1) => waitFor(() => (r.stderr().match(/phase: streaming/g) ?? []).length >= n, 'the sync to stream', 30_000);

/** Wait until `target` holds `key` = `value`. */
async function until(target: Redis, key: string, value: string | null, what: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(async () => (await target.get(key)) === value, what, timeoutMs, 50);
}

/** Keys of `c` under `prefix`, with their values. */
async function snapshot(c: Redis, prefix: string): Promise<Record<string, string>> {
  const keys = (await c.keys(`${prefix}*`)).sort();
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = (await c.get(k))!;
  return out;
}

describe('safety: two sources into one target', () => {
  it('each sync keeps its own checkpoint; restarts resume; a forced full resync never flushes the other source', async () => {
    const a = await server();
    const b = await server();
    const target = await server();
    const ca = a.client();
    const cb = b.client();
    const tc = target.client();
    for (let i = 0; i < 50; i++) await ca.set(`a:${i}`, String(i));
    for (let i = 0; i < 50; i++) await cb.set(`b:${i}`, String(i));

    let ra = sync(['-s', a.url, '-t', target.url]);
    await streaming(ra);
    // The second source into a target that now holds the first one's keys must say so...
    const refused = sync(['-s', b.url, '-t', target.url]);
    expect(await refused.code).toBe(5);
    // ...and with --existing replace it shares the target.
    let rb = sync(['-s', b.url, '-t', target.url, '--existing', 'replace']);
    await streaming(rb);
    expect(await tc.keys('__replicant:checkpoint:*')).toHaveLength(2);

    // Non-idempotent writes on both, with restarts (graceful, then SIGKILL) in turn.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) {
        await ca.incr('a:counter');
        await cb.incr('b:counter');
      }
      if (round === 0) {
        ra.kill('SIGTERM');
        expect(await ra.code).toBe(0);
        ra = sync(['-s', a.url, '-t', target.url]);
        await streaming(ra);
      } else if (round === 1) {
        rb.kill('SIGKILL');
        await rb.code;
        rb = sync(['-s', b.url, '-t', target.url, '--existing', 'replace']);
        await streaming(rb);
      }
    }
    await until(tc, 'a:counter', '60', 'a:counter to reach 60');
    await until(tc, 'b:counter', '60', 'b:counter to reach 60');
    // Every restart resumed: one full sync per source in all.
    expect(/sync_full:(\d+)/.exec((await ca.info('stats')) as string)![1]).toBe('1');
    expect(/sync_full:(\d+)/.exec((await cb.info('stats')) as string)![1]).toBe('1');

    // Source A restarts without persistence: a new replication history, so A needs a full resync.
    ra.kill('SIGTERM');
    expect(await ra.code).toBe(0);
    await a.restart();
    const ca2 = a.client();
    for (let i = 0; i < 10; i++) await ca2.set(`a:new:${i}`, 'x');
    // Default policy: flushing would destroy B's keys, so it refuses (exit 7) and touches nothing.
    const r7 = sync(['-s', a.url, '-t', target.url]);
    expect(await r7.code).toBe(7);
    expect(r7.stderr()).toMatch(/other syncs write to it/);
    expect(r7.stderr()).toMatch(/new replication history/);
    expect(Object.keys(await snapshot(tc, 'b:')).length).toBe(51);
    // With replace it copies A again over the target; B's keys stay, B keeps streaming.
    ra = sync(['-s', a.url, '-t', target.url, '--on-full-resync', 'replace']);
    await streaming(ra);
    await until(tc, 'a:new:9', 'x', 'the new A keys');
    await cb.incr('b:counter');
    await until(tc, 'b:counter', '61', 'b:counter to reach 61');
    expect(await snapshot(tc, 'b:')).toEqual(await snapshot(cb, 'b:'));
    for (const k of Object.keys(await snapshot(ca2, 'a:'))) expect(await tc.get(k)).toBe(await ca2.get(k));
  });
});

describe('safety: a shared target', () => {
  it('a source FLUSHALL is not relayed into a target shared with another sync; --existing flush is refused there', async () => {
    const a = await server();
    const b = await server();
    const target = await server();
    const ca = a.client();
    const cb = b.client();
    const tc = target.client();
    await ca.set('a:1', '1');
    await cb.set('b:1', '1');
    const ra = sync(['-s', a.url, '-t', target.url, '--on-error', 'skip']);
    await streaming(ra);
    const rb = sync(['-s', b.url, '-t', target.url, '--existing', 'replace']);
    await streaming(rb);
    // A third source asking to flush the shared target is refused before anything is written.
    const c = await server();
    await c.client().set('c:1', '1');
    const rc = sync(['-s', c.url, '-t', target.url, '--existing', 'flush']);
    expect(await rc.code).toBe(5);
    expect(rc.stderr()).toMatch(/other syncs write to the target/);
    await waitFor(async () => /another sync now writes to this target/.test(ra.stderr()), 'A to see B', 10_000);
    await ca.flushall();
    await ca.set('a:2', '2');
    await until(tc, 'a:2', '2', 'the write after FLUSHALL');
    expect(ra.stderr()).toMatch(/FLUSHALL at offset \d+ not relayed: the target is shared/);
    expect(await tc.get('b:1')).toBe('1');
    await cb.set('b:2', '2');
    await until(tc, 'b:2', '2', 'B still streaming');
    expect(await tc.get('c:1')).toBeNull();
    // The dropped FLUSHALL left A's deleted keys on the target: A's copy is incomplete (exit 9), B's is not.
    rb.kill('SIGTERM');
    expect(await rb.code).toBe(0);
    ra.kill('SIGTERM');
    expect(await ra.code).toBe(9);
    expect(ra.stderr()).toMatch(/1 commands of the stream were left out/);
  });
});

describe('safety: one sync, two instances', () => {
  it('a second instance refuses while the first lives; after a stall the new one fences the old, which applies nothing more', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tc = target.client();
    await src.set('n', '0');
    const first = sync(['-s', source.url, '-t', target.url]);
    await streaming(first);
    // A second copy of the same command: refused at once, exit 10, naming the running one.
    const second = sync(['-s', source.url, '-t', target.url]);
    expect(await second.code).toBe(10);
    expect(second.stderr()).toMatch(/already running/);
    for (let i = 0; i < 100; i++) await src.incr('n');
    await until(tc, 'n', '100', 'n to reach 100');

    // The first instance freezes (SIGSTOP: a GC pause, a hung host) with writes going on.
    first.kill('SIGSTOP');
    for (let i = 0; i < 100; i++) await src.incr('n');
    const third = sync(['-s', source.url, '-t', target.url]);
    await waitFor(() => /fenced an earlier instance/.test(third.stderr()), 'the new instance to fence the frozen one', 30_000);
    await streaming(third);
    await until(tc, 'n', '200', 'n to reach 200');
    // The frozen one wakes up: whatever it held must not reach the target; it stops with exit 10.
    first.kill('SIGCONT');
    expect(await first.code).toBe(10);
    for (let i = 0; i < 100; i++) await src.incr('n');
    await until(tc, 'n', '300', 'n to reach 300');
    await new Promise((r) => setTimeout(r, 500));
    expect(await tc.get('n')).toBe('300');
    third.kill('SIGTERM');
    expect(await third.code).toBe(0);
  });

  it('under a continuous non-idempotent load, a frozen instance and its successor never double a write', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tc = target.client();
    let stop = false;
    let sent = 0;
    const load = (async () => {
      const w = source.client();
      while (!stop && sent < 200_000) {
        const p = w.pipeline();
        for (let i = 0; i < 20; i++) p.incr('n').rpush('l', String(sent + i));
        await p.exec();
        sent += 20;
      }
    })();
    const first = sync(['-s', source.url, '-t', target.url]);
    await streaming(first);
    await waitFor(() => sent > 2000, 'some load', 10_000);
    first.kill('SIGSTOP');
    const second = sync(['-s', source.url, '-t', target.url]);
    await waitFor(() => /fenced an earlier instance/.test(second.stderr()), 'the successor to fence the frozen one', 30_000);
    await streaming(second);
    first.kill('SIGCONT');
    expect(await first.code).toBe(10);
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await load;
    await waitFor(async () => (await tc.get('n')) === (await src.get('n')), 'the target to catch up', 30_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(await tc.get('n')).toBe(String(sent));
    expect(await tc.llen('l')).toBe(sent);
    second.kill('SIGTERM');
    expect(await second.code).toBe(0);
  });

  it('after a SIGKILL the restarted instance takes over (at once: its holder is provably dead), without doubling', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tc = target.client();
    const first = sync(['-s', source.url, '-t', target.url]);
    await streaming(first);
    for (let i = 0; i < 50; i++) await src.rpush('l', String(i));
    await waitFor(async () => (await tc.llen('l')) === 50, 'the first 50 elements', 20_000);
    first.kill('SIGKILL');
    await first.code;
    for (let i = 50; i < 100; i++) await src.rpush('l', String(i));
    const again = sync(['-s', source.url, '-t', target.url]);
    await streaming(again);
    await waitFor(async () => (await tc.llen('l')) >= 100, 'the list to reach 100', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(await tc.lrange('l', 0, -1)).toEqual(await src.lrange('l', 0, -1));
    again.kill('SIGTERM');
    expect(await again.code).toBe(0);
  });
});

describe('safety: source == target, loops', () => {
  it('refuses the same server under two names (exit 2) without touching it', async () => {
    const s = await server();
    await s.client().set('k', 'v');
    const r = sync(['-s', `redis://localhost:${s.port}`, '-t', s.url, '--existing', 'flush']);
    expect(await r.code).toBe(2);
    expect(r.stderr()).toMatch(/same server/);
    expect(r.stderr()).not.toMatch(/--existing flush to empty/);
    expect(await s.client().get('k')).toBe('v');
  });

  it('refuses a --name already used by a sync of another source (it would adopt its checkpoint)', async () => {
    const a = await server();
    const b = await server();
    const target = await server();
    await a.client().set('a', '1');
    await b.client().set('b', '1');
    const ra = sync(['-s', a.url, '-t', target.url, '--name', 'orders']);
    await streaming(ra);
    ra.kill('SIGTERM');
    expect(await ra.code).toBe(0);
    const rb = sync(['-s', b.url, '-t', target.url, '--name', 'orders', '--existing', 'replace']);
    expect(await rb.code).toBe(2);
    expect(rb.stderr()).toMatch(/belongs to the source 127\.0\.0\.1:\d+, not/);
    expect(await target.client().get('a')).toBe('1');
    expect(await target.client().get('b')).toBeNull();
  });

  it('refuses a second sync of the same source under another --name (every write would apply twice); two partial syncs with disjoint selections may split it', async () => {
    const a = await server();
    const target = await server();
    await a.client().mset('x:1', '1', 'y:1', '1');
    const first = sync(['-s', a.url, '-t', target.url]);
    await streaming(first);
    const second = sync(['-s', a.url, '-t', target.url, '--name', 'again', '--existing', 'replace']);
    expect(await second.code).toBe(2);
    expect(second.stderr()).toMatch(/sync "127\.0\.0\.1:\d+" already copies the source 127\.0\.0\.1:\d+ into this target: a second sync of it would apply every write twice/);
    first.kill('SIGTERM');
    expect(await first.code).toBe(0);
    // Split by key: allowed, with a warning about overlaps.
    await target.client().hdel('__replicant:syncs', `127.0.0.1:${a.port}`);
    const xs = sync(['-s', a.url, '-t', target.url, '--name', 'xs', '--key', 'x:*', '--existing', 'replace']);
    await streaming(xs);
    const ys = sync(['-s', a.url, '-t', target.url, '--name', 'ys', '--key', 'y:*', '--existing', 'replace']);
    await streaming(ys);
    expect(ys.stderr()).toMatch(/sync \\"xs\\" copies other keys of the same source into this target \(the two selections are disjoint\)/);
    await a.client().incr('x:1');
    await a.client().incr('y:1');
    await until(target.client(), 'y:1', '2', 'y:1 once');
    await until(target.client(), 'x:1', '2', 'x:1 once');
    for (const r of [xs, ys]) {
      r.kill('SIGTERM');
      expect(await r.code).toBe(0);
    }
  });

  it('refuses a loop A -> B -> A', async () => {
    const a = await server();
    const b = await server();
    await a.client().set('k', 'v');
    const ab = sync(['-s', a.url, '-t', b.url]);
    await streaming(ab);
    const ba = sync(['-s', b.url, '-t', a.url, '--existing', 'replace']);
    expect(await ba.code).toBe(2);
    expect(ba.stderr()).toMatch(/replication loop/);
    ab.kill('SIGTERM');
    expect(await ab.code).toBe(0);
  });
});

describe('safety: chained and replicated sources', () => {
  it('refuses a source that is a native replica of the target (exit 2), without touching the target', async () => {
    const target = await server();
    await target.client().set('k', 'v');
    const replica = await server(['--repl-diskless-sync-delay', '0']);
    await replica.client().call('REPLICAOF', '127.0.0.1', String(target.port));
    await waitFor(async () => (await replica.client().get('k')) === 'v', 'the replica to copy the target');
    const r = sync(['-s', replica.url, '-t', target.url, '--existing', 'replace']);
    expect(await r.code).toBe(2);
    expect(r.stderr()).toMatch(/replication loop: the source 127\.0\.0\.1:\d+ replicates the target .* \(same replication id [0-9a-f]{40}\)/);
    expect(await target.client().dbsize()).toBe(1);
  });

  it("a chained source's __replicant keys in its snapshot are not copied over this sync's own", async () => {
    const a = await server();
    const b = await server(['--repl-diskless-sync-delay', '0']);
    const c = await server();
    await a.client().set('k', 'v');
    const ab = sync(['-s', a.url, '-t', b.url]);
    await streaming(ab);
    // B now holds A's data and Replicant's keys for the A -> B sync.
    const bc = sync(['-s', b.url, '-t', c.url]);
    await streaming(bc);
    await a.client().set('k2', 'v2');
    await until(c.client(), 'k2', 'v2', 'the write to go A -> B -> C');
    const registry = await c.client().hkeys('__replicant:syncs');
    expect(registry).toEqual([`127.0.0.1:${b.port}`]);
    expect(await c.client().exists(`__replicant:checkpoint:127.0.0.1:${a.port}`)).toBe(0);
    expect(bc.stderr()).toMatch(/the source's snapshot holds Replicant's own keys/);
    for (const r of [bc, ab]) {
      r.kill('SIGTERM');
      expect(await r.code).toBe(0);
    }
  });
});

describe('safety: a checkpoint that is not this sync\'s', () => {
  it('refuses a --checkpoint file written by another sync, or for another target (exit 2), leaving the target untouched', async () => {
    const a = await server();
    const b = await server();
    const t1 = await server();
    const t2 = await server();
    await a.client().set('a', '1');
    await b.client().set('b', '1');
    await t2.client().set('precious', '1');
    const file = join(mkdtempSync(join(tmpdir(), 'replicant-cp-')), 'cp.json');
    const first = sync(['-s', a.url, '-t', t1.url, '--checkpoint', `file:${file}`]);
    await streaming(first);
    first.kill('SIGTERM');
    expect(await first.code).toBe(0);
    // Another source into another target with the same file: it would resume A's position (or flush t2).
    const other = sync(['-s', b.url, '-t', t2.url, '--checkpoint', `file:${file}`, '--existing', 'replace']);
    expect(await other.code).toBe(2);
    expect(other.stderr()).toMatch(/belongs to sync "127\.0\.0\.1:\d+", not to this one/);
    // The same source into another target: it would skip the copy and stream onto an empty target.
    const moved = sync(['-s', a.url, '-t', t2.url, '--checkpoint', `file:${file}`, '--existing', 'replace']);
    expect(await moved.code).toBe(2);
    expect(moved.stderr()).toMatch(/was written for the target 127\.0\.0\.1:\d+, not 127\.0\.0\.1:\d+/);
    expect(await t2.client().keys('*')).toEqual(['precious']);
  });
});

describe('safety: the target loses its data while streaming', () => {
  /** A source with 200 keys and an empty target. */
  async function filledPair() {
    const source = await server();
    const target = await server();
    const src = source.client();
    for (let i = 0; i < 200; i++) await src.set(`k${i}`, String(i));
    return { source, target, src, tc: target.client() };
  }

  it('a FLUSHALL on the target is detected with the next batch and the target is copied again', async () => {
    const { source, target, src, tc } = await filledPair();
    const r = sync(['-s', source.url, '-t', target.url]);
    await streaming(r);
    await src.incr('c');
    await until(tc, 'c', '1', 'c to reach 1');
    await tc.flushall();
    await src.incr('c');
    await waitFor(() => /the target lost what it had applied/.test(r.stderr()), 'the loss to be detected', 20_000);
    await streaming(r, 2);
    await src.incr('c');
    await until(tc, 'c', '3', 'c to reach 3 after the copy');
    await waitFor(async () => (await tc.get('k199')) === '199', 'the copy', 10_000);
    expect(await digestWithoutReserved(tc)).toBe(await digestWithoutReserved(src));
    r.kill('SIGTERM');
    expect(await r.code).toBe(0);
  });

  it('with --checkpoint file: a flushed target is noticed by its vanished lease and registry, streaming or stopped', async () => {
    const { source, target, src, tc } = await filledPair();
    const file = join(mkdtempSync(join(tmpdir(), 'replicant-cp-')), 'cp.json');
    const r = sync(['-s', source.url, '-t', target.url, '--checkpoint', `file:${file}`]);
    await streaming(r);
    await src.incr('c');
    await until(tc, 'c', '1', 'c to reach 1');
    await tc.flushall();
    await waitFor(() => /the target lost what it had applied: Replicant's lease and registry entry on it are gone/.test(r.stderr()), 'the loss to be detected', 20_000);
    await streaming(r, 2);
    await src.incr('c');
    await until(tc, 'c', '2', 'c to reach 2 after the copy');
    expect(await digestWithoutReserved(tc)).toBe(await digestWithoutReserved(src));
    r.kill('SIGTERM');
    expect(await r.code).toBe(0);

    // Flushed while no sync runs: the checkpoint file alone would resume onto an empty target.
    await tc.flushall();
    await src.incr('c');
    const again = sync(['-s', source.url, '-t', target.url, '--checkpoint', `file:${file}`]);
    await streaming(again);
    expect(again.stderr()).toMatch(/the target no longer holds this sync's registry entry: it lost its data while the sync was stopped/);
    await until(tc, 'c', '3', 'the copy');
    expect(await digestWithoutReserved(tc)).toBe(await digestWithoutReserved(src));
    again.kill('SIGTERM');
    expect(await again.code).toBe(0);
  });

  it('a target flushed during the snapshot is found at its end (its full-sync checkpoint is gone) and copied again', async () => {
    const source = await server(['--enable-debug-command', 'yes']);
    const target = await server();
    const src = source.client();
    const tc = target.client();
    await src.call('DEBUG', 'POPULATE', '300000', 'k', '32');
    const { logger, lines } = captureLogger();
    const s = runSync({ source: source.url, target: target.url, logger });
    try {
      await waitFor(() => (s.session.status().rdb?.keys ?? 0) >= 20_000, 'the snapshot to be under way', 30_000, 5);
      await tc.flushall();
      await waitFor(() => s.session.status().fullSyncs >= 2 && s.session.status().phase === 'streaming', 'the copy again', 60_000);
      expect(lines.filter((l) => l['level'] === 50).map((l) => l['msg'])).toEqual([expect.stringMatching(/^the target lost what it had applied: the snapshot's checkpoint was gone when the copy ended/)]);
      await src.set('after', '1');
      await waitCaughtUp(s.session, src);
      expect(await tc.dbsize()).toBe(300_001 + (await tc.keys('__replicant*')).length);
      expect(s.session.status().complete).toBe(true);
    } finally {
      await s.stop();
    }
  });

  it('with --checkpoint none too: a flushed target is noticed by its vanished lease and registry and copied again', async () => {
    const { source, target, src, tc } = await filledPair();
    const r = sync(['-s', source.url, '-t', target.url, '--checkpoint', 'none']);
    await streaming(r);
    await tc.flushall();
    await waitFor(() => /the target lost what it had applied: Replicant's lease and registry entry on it are gone/.test(r.stderr()), 'the loss to be detected', 20_000);
    await streaming(r, 2);
    await src.incr('c');
    await until(tc, 'c', '1', 'c after the copy');
    expect(await digestWithoutReserved(tc)).toBe(await digestWithoutReserved(src));
    r.kill('SIGTERM');
    expect(await r.code).toBe(0);
  });

  it('a target restarted without persistence is copied again', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    for (let i = 0; i < 100; i++) await src.set(`k${i}`, String(i));
    const r = sync(['-s', source.url, '-t', target.url, '--log-level', 'info']);
    await streaming(r);
    await target.restart();
    await src.incr('c');
    await streaming(r, 2);
    const tc = target.client();
    await until(tc, 'c', '1', 'c on the restarted target');
    await waitFor(async () => (await tc.get('k99')) === '99', 'the copy', 10_000);
    expect(await digestWithoutReserved(tc)).toBe(await digestWithoutReserved(src));
    r.kill('SIGTERM');
    expect(await r.code).toBe(0);
  });
});

describe('safety: FLUSHALL and SWAPDB on the source', () => {
  it('keeps exactly one checkpoint, in db 0, and the lease, through SWAPDB and FLUSHALL', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tc = target.client();
    await src.set('a', '1');
    const r = sync(['-s', source.url, '-t', target.url]);
    await streaming(r);
    await src.call('SWAPDB', '0', '1');
    await src.select(1);
    await src.incr('a');
    await src.select(0);
    await src.set('b', '1');
    const t1 = target.client(1);
    await until(t1, 'a', '2', 'a in db 1');
    await until(tc, 'b', '1', 'b in db 0');
    expect(await t1.keys('__replicant*')).toEqual([]);
    expect(await tc.keys('__replicant:checkpoint:*')).toHaveLength(1);
    expect(await tc.exists(`__replicant:lease:127.0.0.1:${source.port}`)).toBe(1);
    await src.flushall();
    await src.set('after', '1');
    await until(tc, 'after', '1', 'the write after FLUSHALL');
    expect(await tc.exists(`__replicant:lease:127.0.0.1:${source.port}`)).toBe(1);
    expect(await tc.hlen('__replicant:syncs')).toBe(1);
    expect(r.stderr()).not.toMatch(/lost what it had applied/);
    expect(await masterOffset(src)).toBeGreaterThan(0);
    expect(await digestWithoutReserved(tc)).toBe(await digestWithoutReserved(src));
    r.kill('SIGTERM');
    expect(await r.code).toBe(0);
  });
});
