/**
 * Network and target faults under a non-idempotent load, with the library SyncSession:
 * - the source link cut (TCP RST) 20 times while streaming: every reconnect is a partial resync;
 * - the target stalled for 30 s behind a FaultProxy: the source is still read at wire speed and
 *   the link is never dropped;
 * - the target killed (SIGKILL, AOF with fsync always) and restarted mid-stream, under load and
 *   at a quiet moment (nothing in flight): the source link is kept either way;
 * - the source link reset inside the RDB transfer: the full sync starts over.
 * Each ends with the target equal to the source (DEBUG DIGEST without Replicant's keys) and the
 * source's `sync_full` still 1.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { populate, startLoad, type Load } from '../helpers/dataset.js';
import { captureLogger, digestWithoutReserved, runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import type { Phase } from '../../src/sync/session.js';
import type { Logger } from '../../src/observe/logger.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
const proxies: FaultProxy[] = [];
const loads: Load[] = [];
afterEach(async () => {
  await Promise.all(loads.splice(0).map((l) => l.stop().catch(() => 0)));
  await Promise.all(syncs.splice(0).map((s) => s.stop().catch(() => {})));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function server(args: string[] = []): Promise<RedisServer> {
  const s = await startRedis({ args });
  servers.push(s);
  return s;
}

async function proxyTo(s: RedisServer): Promise<FaultProxy> {
  const p = await FaultProxy.start({ target: { host: s.host, port: s.port } });
  proxies.push(p);
  return p;
}

/** A source that can serve partial resyncs after long gaps. */
const SOURCE_ARGS = ['--repl-backlog-size', '64mb', '--repl-diskless-sync-delay', '0'];

async function stat(c: Redis, name: string): Promise<number> {
  const m = new RegExp(`^${name}:(\\d+)`, 'm').exec((await c.info('stats')) as string);
  if (!m) throw new Error(`INFO stats has no ${name}`);
  return Number(m[1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** Start the sync and resolve once the snapshot is applied (rejects if run() ends first). */
async function startSync(sourceUrl: string, targetUrl: string, logger?: Logger): Promise<RunningSync> {
  const sync = runSync({ source: sourceUrl, target: targetUrl, ...(logger ? { logger } : {}) });
  syncs.push(sync);
  await new Promise<void>((resolve, reject) => {
    sync.session.once('fullSyncDone', () => resolve());
    sync.done.then(() => reject(new Error('sync ended before the full sync finished')), reject);
  });
  return sync;
}

/** Records every phase change of a session. */
function phases(sync: RunningSync): Phase[] {
  const seen: Phase[] = [];
  sync.session.on('phase', (p) => seen.push(p));
  return seen;
}

/** Wait for the session to stream again and to have applied something past `offset`. */
async function streamingPast(sync: RunningSync, offset: number, what: string): Promise<void> {
  await waitFor(() => {
    const st = sync.session.status();
    return st.phase === 'streaming' && st.appliedOffset !== null && st.appliedOffset > offset;
  }, what, 30_000, 20);
}

/** Stop the load, let the sync catch up, stop it, and compare the datasets. */
async function finish(sync: RunningSync, load: Load, src: Redis, tgt: Redis): Promise<void> {
  const sent = await load.stop();
  expect(sent).toBeGreaterThan(500);
  await waitCaughtUp(sync.session, src, 60_000);
  await sync.stop();
  expect(await digestWithoutReserved(tgt)).toBe(await digestWithoutReserved(src));
}

describe('faults on the source link and the target', () => {
  it('the source link cut 20 times while streaming: 20 partial resyncs, no second full sync, exact data', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    await populate(src, { seed: 21 });
    const proxy = await proxyTo(source);
    const load = startLoad(source.client(), { delayMs: 1 });
    loads.push(load);
    const { logger, lines } = captureLogger();
    const sync = await startSync(proxy.url, target.url, logger);
    expect(await stat(src, 'sync_full')).toBe(1);

    const cuts = 20;
    for (let i = 0; i < cuts; i++) {
      const before = sync.session.status().appliedOffset ?? 0;
      await streamingPast(sync, before, `streaming before cut ${i + 1}`);
      await sleep(30 + ((i * 37) % 200));
      expect(proxy.cut(), `open connections at cut ${i + 1}`).toBeGreaterThanOrEqual(1);
    }
    await streamingPast(sync, sync.session.status().appliedOffset ?? 0, 'streaming after the last cut');
    await finish(sync, load, src, target.client());

    const st = sync.session.status();
    expect(st.fullSyncs).toBe(1);
    expect(st.partialSyncs).toBe(cuts);
    expect(await stat(src, 'sync_full')).toBe(1);
    expect(await stat(src, 'sync_partial_ok')).toBe(cuts);
    expect(proxy.stats.cut).toBeGreaterThanOrEqual(cuts);
    // Each cut follows a successful resume, so each reconnect starts from the shortest delay
    // (runSync: 50 ms) instead of growing towards the maximum over the session's lifetime.
    const delays = lines.filter((l) => l['side'] === 'source' && typeof l['retryInMs'] === 'number').map((l) => l['retryInMs']);
    expect(delays).toHaveLength(cuts);
    expect.soft(delays, 'reconnect delays after successful resumes').toEqual(Array.from({ length: cuts }, () => 50));
  });

  it('the source link reset in the middle of the RDB: the full sync starts over from a clean target and ends exact', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    await populate(src, { seed: 24 });
    // 4 MB of incompressible values: 1 MB into the transfer is inside the RDB.
    const p = src.pipeline();
    for (let i = 0; i < 256; i++) p.set(`random:${i}`, randomBytes(16 * 1024));
    await p.exec();
    const proxy = await proxyTo(source);
    const fired = proxy.reset('down', 1024 * 1024);
    const load = startLoad(source.client(), { delayMs: 1 });
    loads.push(load);
    const sync = runSync({ source: proxy.url, target: target.url });
    syncs.push(sync);
    let fullSyncsDone = 0;
    sync.session.on('fullSyncDone', () => fullSyncsDone++);
    await fired;
    // The reset came before any full sync completed.
    expect(fullSyncsDone).toBe(0);
    await waitFor(() => fullSyncsDone === 1, 'the second full sync to complete', 30_000, 20);
    await finish(sync, load, src, target.client());
    expect(proxy.stats.reset).toBe(1);
    expect(sync.session.status().fullSyncs).toBe(2);
    expect(await stat(src, 'sync_full')).toBe(2);
  });

  it('the target stalled for 30 s: the source is still read, the link is kept, nothing is lost or applied twice', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    await populate(src, { seed: 22 });
    const proxy = await proxyTo(target);
    const load = startLoad(source.client(), { delayMs: 1 });
    loads.push(load);
    const sync = await startSync(source.url, proxy.url);
    const seen = phases(sync);
    await streamingPast(sync, sync.session.status().appliedOffset ?? 0, 'streaming before the stall');

    proxy.stall('both');
    // Let what was in flight before the stall settle, then take the positions.
    await sleep(1000);
    const at = sync.session.status();
    await sleep(29_000);
    const during = sync.session.status();
    // Nothing reaches the target, yet the source is still being read into the spool.
    expect(during.appliedOffset).toBe(at.appliedOffset);
    expect(during.receivedOffset!).toBeGreaterThan(at.receivedOffset! + 100_000);
    expect(during.lagBytes!).toBeGreaterThan(100_000);
    proxy.resume();

    await finish(sync, load, src, target.client());
    expect(sync.session.status().fullSyncs).toBe(1);
    expect(await stat(src, 'sync_full')).toBe(1);
    // A stalled target is not a reason to drop the source link.
    expect(await stat(src, 'sync_partial_ok')).toBe(0);
    expect(seen).not.toContain('reconnecting');
  }, 90_000);

  it('the target killed (SIGKILL, appendfsync always) and restarted mid-stream: exact data, no second full sync', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server(['--appendonly', 'yes', '--appendfsync', 'always']);
    const src = source.client();
    await populate(src, { seed: 23 });
    const load = startLoad(source.client(), { delayMs: 1 });
    loads.push(load);
    const sync = await startSync(source.url, target.url);
    const seen = phases(sync);
    await streamingPast(sync, sync.session.status().appliedOffset ?? 0, 'streaming before the kill');
    await sleep(500);

    const proc = target.process;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    // Down for a while, under load: the session must retry, not give up.
    await sleep(2000);
    const whileDown = sync.session.status();
    await target.restart();
    await streamingPast(sync, whileDown.appliedOffset ?? 0, 'streaming after the target restart');

    await finish(sync, load, src, target.client());
    expect(sync.session.status().fullSyncs).toBe(1);
    expect(await stat(src, 'sync_full')).toBe(1);
    expect(seen).toContain('reconnecting');
    // Target outages are handled without dropping the source link (the spool keeps reading).
    expect(await stat(src, 'sync_partial_ok'), 'source partial resyncs: the source link should be kept through a target outage').toBe(0);
  });

  it('the target killed while the source is quiet (nothing in flight): the target is reconnected, the source link kept', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server(['--appendonly', 'yes', '--appendfsync', 'always']);
    const src = source.client();
    const tgt = target.client();
    await src.set('before', '1');
    const sync = await startSync(source.url, target.url);
    const seen = phases(sync);
    await waitFor(async () => (await tgt.get('before')) === '1', 'the snapshot on the target', 10_000, 20);
    await src.incr('counter');
    await waitFor(async () => (await tgt.get('counter')) === '1', 'the first write on the target', 10_000, 20);
    await waitFor(() => sync.session.status().lagBytes === 0, 'nothing left to apply', 10_000, 20);

    const proc = target.process;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    await sleep(500);
    await target.restart();
    // The first write after the outage goes through the same source link.
    await src.incr('counter');
    await waitFor(async () => (await target.client().get('counter')) === '2', 'the write after the outage on the target', 20_000, 50);

    expect(seen).toContain('reconnecting');
    expect(await stat(src, 'sync_full')).toBe(1);
    expect(await stat(src, 'sync_partial_ok'), 'the source link was dropped for a target outage').toBe(0);
    await sync.stop();
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(src));
  });
});
