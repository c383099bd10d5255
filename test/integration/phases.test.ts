/**
 * Characterisation of SyncSession's `phase` events and final `status()` (the safety net for
 * turning src/sync/session.ts into a state machine; docs review-sync.md §3.5 step 0). Each test
 * records every `phase` event in order and asserts the sequence the current code produces,
 * tolerant only where it is genuinely timing-dependent (how many reconnect attempts a fault
 * takes), plus that every transition is logged exactly once as `phase: X`.
 *
 * Today's behaviour worth knowing when reading the expected sequences:
 * - a session starts in phase 'connecting' (status().phase before run()), and setPhase() drops a
 *   change to the phase it is already in (except 'reconnecting'), so the FIRST 'connecting' is
 *   never emitted nor logged: a fresh run emits full-sync, streaming, stopping, stopped; a
 *   resumed one streaming, stopping, stopped. After a reconnect, 'connecting' is emitted.
 * - a target drop while streaming is bridged in place (reconnecting → streaming, the source link
 *   stays up), whether units are in flight or not (before, a drop at a quiet moment went through
 *   the reconnect loop: reconnecting → connecting → streaming, a partial resync of the source).
 *
 * Real redis-server processes on free loopback ports; the session comes from src/index.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode, IncompleteCopyError, type Phase } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { infoField, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import {
  caughtUp,
  digestWithoutReplicantKeys,
  loggedPhases,
  masterOffset,
  startIncrLoad,
  streaming,
  trackSession,
  type IncrLoad,
  type TrackedSession,
} from '../helpers/tracked-session.js';

const servers: RedisServer[] = [];
const sessions: TrackedSession[] = [];
const proxies: FaultProxy[] = [];
const loads: IncrLoad[] = [];
afterEach(async () => {
  await Promise.all(loads.splice(0).map((l) => l.stop().catch(() => undefined)));
  await Promise.all(sessions.splice(0).map((s) => s.stop()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

/** A source that can serve partial resyncs after a gap. */
const SOURCE_ARGS = ['--repl-backlog-size', '64mb'];

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

function track(...args: Parameters<typeof trackSession>): TrackedSession {
  const t = trackSession(...args);
  sessions.push(t);
  return t;
}

/** Each phase change logged exactly once, as `phase: X`, in the order of the events. */
function expectLoggedOnce(t: TrackedSession): void {
  expect(loggedPhases(t.lines)).toEqual(t.phases);
}

/** Counters ctr:0.. on `c`, as numbers (missing: 0). */
async function counters(c: Redis, n: number, prefix = 'ctr:'): Promise<number[]> {
  const v = await c.mget(...Array.from({ length: n }, (_, i) => `${prefix}${i}`));
  return v.map((x) => Number(x ?? 0));
}

async function seed(src: Redis, keys = 200): Promise<void> {
  const p = src.pipeline();
  for (let i = 0; i < keys; i++) p.set(`seed:${i}`, `v${i}`);
  p.hset('seed:h', 'f', 'v').rpush('seed:l', 'a', 'b').sadd('seed:s', 'x');
  await p.exec();
}

/**
 * The middle of a sequence after a fault: one or more (reconnecting, connecting) pairs, then
 * streaming. How many attempts a reconnect takes depends on timing; the shape does not.
 */
function expectReconnectLoop(seq: readonly Phase[]): void {
  expect(seq.length).toBeGreaterThanOrEqual(3);
  expect(seq[seq.length - 1]).toBe('streaming');
  const pairs = seq.slice(0, -1);
  expect(pairs.length % 2).toBe(0);
  for (let i = 0; i < pairs.length; i += 2) expect([pairs[i], pairs[i + 1]]).toEqual(['reconnecting', 'connecting']);
}

describe('phase events and final status', () => {
  it('(a) fresh full sync, then stop: full-sync → streaming → stopping → stopped; complete, counted', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    await seed(src);
    const t = track({ source: source.url, target: target.url });
    // The initial phase, reported by status() but never emitted (see the header).
    expect(t.session.status().phase).toBe('connecting');
    await streaming(t);
    for (let i = 0; i < 50; i++) await src.incr('ctr:0');
    await caughtUp(t, src);
    const expectedOffset = await masterOffset(src);
    const out = await t.stop();

    expect(out.ok).toBe(true);
    expect(t.phases).toEqual(['full-sync', 'streaming', 'stopping', 'stopped']);
    expect(t.events.find((e) => e.phase === 'stopped')?.info).toMatchObject({ appliedOffset: expect.any(Number) });
    expectLoggedOnce(t);
    const st = t.session.status();
    expect(st).toMatchObject({ phase: 'stopped', fullSyncs: 1, partialSyncs: 0, complete: true, skippedCommands: 0, errors: 0, lostKeys: 0 });
    expect(st.commandsApplied).toBeGreaterThanOrEqual(50);
    if (out.ok) {
      expect(out.result.appliedOffset).toBeGreaterThanOrEqual(expectedOffset);
      expect(out.result.replid).toMatch(/^[0-9a-f]{40}$/);
    }
    expect(await tgt.get('ctr:0')).toBe('50');
    expect(await digestWithoutReplicantKeys(tgt)).toBe(await src.call('DEBUG', 'DIGEST'));
    // stop() after the end changes nothing.
    t.session.stop();
    expect(t.phases).toEqual(['full-sync', 'streaming', 'stopping', 'stopped']);
  });

  it('(b) a second session on the same target resumes with +CONTINUE: no full-sync phase, partialSyncs 1', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    await seed(src);
    const first = track({ source: source.url, target: target.url });
    await streaming(first);
    await src.incr('ctr:0');
    await caughtUp(first, src);
    expect((await first.stop()).ok).toBe(true);

    // Written while no session runs: they come from the source's backlog.
    for (let i = 0; i < 30; i++) await src.incr('ctr:0');
    const second = track({ source: source.url, target: target.url });
    await streaming(second);
    await caughtUp(second, src);
    for (let i = 0; i < 20; i++) await src.incr('ctr:1');
    await caughtUp(second, src);
    const out = await second.stop();

    expect(out.ok).toBe(true);
    expect(second.phases).toEqual(['streaming', 'stopping', 'stopped']);
    expect(second.phases).not.toContain('full-sync');
    expectLoggedOnce(second);
    const st = second.session.status();
    expect(st).toMatchObject({ phase: 'stopped', fullSyncs: 0, partialSyncs: 1, complete: true, skippedCommands: 0, errors: 0 });
    expect(st.commandsApplied).toBeGreaterThan(0);
    expect(second.lines.some((l) => /resumed with a partial resync \(\+CONTINUE\)/.test(String(l['msg'])))).toBe(true);
    expect(await infoField(src, 'stats', 'sync_full')).toBe(1);
    expect(await infoField(src, 'stats', 'sync_partial_ok')).toBe(1);
    expect(await tgt.mget('ctr:0', 'ctr:1')).toEqual(['31', '20']);
  });

  it('(c) the source link cut while streaming: reconnecting → connecting → streaming with a partial resync', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    await seed(src);
    const proxy = await proxyTo(source);
    const t = track({ source: proxy.url, target: target.url });
    await streaming(t);
    const load = startIncrLoad(source.client(), { delayMs: 2 });
    loads.push(load);
    await waitFor(() => (t.session.status().appliedOffset ?? 0) > 0 && load.counts[0]! > 20, 'some load applied', 30_000, 20);
    expect(proxy.cut()).toBeGreaterThanOrEqual(1);
    await waitFor(() => t.session.status().partialSyncs >= 1 && t.session.status().phase === 'streaming', 'the partial resync', 60_000, 20);
    const counts = await load.stop();
    await caughtUp(t, src);
    const out = await t.stop();

    expect(out.ok).toBe(true);
    expect(t.phases.slice(0, 2)).toEqual(['full-sync', 'streaming']);
    expect(t.phases.slice(-2)).toEqual(['stopping', 'stopped']);
    expectReconnectLoop(t.phases.slice(2, -2));
    for (const e of t.events.filter((x) => x.phase === 'reconnecting')) expect(e.info).toMatchObject({ side: 'source' });
    expect(t.phases.filter((p) => p === 'full-sync')).toHaveLength(1);
    expectLoggedOnce(t);
    const st = t.session.status();
    expect(st).toMatchObject({ phase: 'stopped', fullSyncs: 1, partialSyncs: 1, complete: true, skippedCommands: 0 });
    expect(st.commandsApplied).toBeGreaterThan(0);
    expect(await infoField(src, 'stats', 'sync_full')).toBe(1);
    expect(await counters(tgt, 8)).toEqual(counts);
    expect(await digestWithoutReplicantKeys(tgt)).toBe(await src.call('DEBUG', 'DIGEST'));
  });

  it('(d) the target cut while units are in flight: bridged in place (streaming → reconnecting → streaming), no new connecting, exact counters', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    await seed(src);
    const proxy = await proxyTo(target);
    const t = track({ source: source.url, target: proxy.url });
    await streaming(t);
    const load = startIncrLoad(source.client(), { delayMs: 2 });
    loads.push(load);
    await waitFor(() => load.counts[0]! > 20 && (t.session.status().appliedOffset ?? 0) > 0, 'some load applied', 30_000, 20);
    // Hold the target's replies so that units are certainly in flight (pending) when it drops.
    proxy.stall('down');
    const upBefore = proxy.stats.bytesUp;
    await waitFor(() => proxy.stats.bytesUp > upBefore + 1000 && (t.session.status().lagBytes ?? 0) > 0, 'units in flight', 30_000, 10);
    const connectionsBefore = proxy.stats.connections;
    expect(proxy.cut()).toBeGreaterThanOrEqual(1);
    // The held replies died with the cut connections; let the new ones through.
    await waitFor(() => proxy.stats.connections > connectionsBefore, 'the session to reconnect to the target', 30_000, 5);
    proxy.resume();
    await waitFor(() => t.phases.filter((p) => p === 'streaming').length >= 2 && t.session.status().phase === 'streaming', 'the bridge', 60_000, 20);
    const counts = await load.stop();
    await caughtUp(t, src);
    const out = await t.stop();

    expect(out.ok).toBe(true);
    expect(t.phases).toEqual(['full-sync', 'streaming', 'reconnecting', 'streaming', 'stopping', 'stopped']);
    expect(t.events[2]!.info).toMatchObject({ side: 'target' });
    expect(t.events[3]!.info).toMatchObject({ resumedFrom: expect.any(Number) });
    expect(t.phases).not.toContain('connecting');
    expectLoggedOnce(t);
    expect(t.lines.some((l) => /target reconnected: resending what it does not have/.test(String(l['msg'])))).toBe(true);
    const st = t.session.status();
    expect(st).toMatchObject({ phase: 'stopped', fullSyncs: 1, partialSyncs: 0, complete: true, skippedCommands: 0 });
    expect(st.commandsApplied).toBeGreaterThan(0);
    expect(await infoField(src, 'stats', 'sync_full')).toBe(1);
    expect(await infoField(src, 'stats', 'sync_partial_ok')).toBe(0);
    expect(counts[0]).toBeGreaterThan(20);
    expect(await counters(tgt, 8)).toEqual(counts);
    expect(await digestWithoutReplicantKeys(tgt)).toBe(await src.call('DEBUG', 'DIGEST'));
  });

  it('(d2) the target cut while nothing is in flight: bridged in place too (the source link is kept: no connecting, no PSYNC)', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    await seed(src);
    const proxy = await proxyTo(target);
    const t = track({ source: source.url, target: proxy.url });
    await streaming(t);
    for (let i = 0; i < 10; i++) await src.incr('ctr:0');
    await caughtUp(t, src);
    // Idle: everything applied, nothing in flight.
    expect(proxy.cut()).toBeGreaterThanOrEqual(1);
    await waitFor(() => t.phases.includes('reconnecting') && t.session.status().phase === 'streaming', 'the session to stream again', 60_000, 20);
    for (let i = 0; i < 10; i++) await src.incr('ctr:0');
    await caughtUp(t, src);
    const out = await t.stop();

    expect(out.ok).toBe(true);
    expect(t.phases).toEqual(['full-sync', 'streaming', 'reconnecting', 'streaming', 'stopping', 'stopped']);
    expect(t.events[2]!.info).toMatchObject({ side: 'target' });
    expect(t.events[3]!.info).toMatchObject({ resumedFrom: expect.any(Number) });
    expectLoggedOnce(t);
    const st = t.session.status();
    expect(st).toMatchObject({ phase: 'stopped', fullSyncs: 1, partialSyncs: 0, complete: true, skippedCommands: 0 });
    expect(await infoField(src, 'stats', 'sync_full')).toBe(1);
    expect(await infoField(src, 'stats', 'sync_partial_ok')).toBe(0);
    expect(await tgt.get('ctr:0')).toBe('20');
  });

  it('(e) stop() in the middle of the snapshot: full-sync → stopping → stopped; run() rejects with IncompleteCopyError (exit 9)', async () => {
    const source = await server(SOURCE_ARGS);
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    // 4 MB of incompressible values behind a 256 KB/s proxy: the snapshot takes ~16 s.
    const p = src.pipeline();
    for (let i = 0; i < 256; i++) p.set(`random:${i}`, randomBytes(16 * 1024));
    await p.exec();
    const proxy = await proxyTo(source);
    proxy.slow('down', 256 * 1024);
    const t = track({ source: proxy.url, target: target.url });
    await waitFor(() => {
      const st = t.session.status();
      return st.phase === 'full-sync' && (st.rdb?.bytes ?? 0) > 256 * 1024;
    }, 'the snapshot to be under way', 60_000, 20);
    const out = await t.stop();

    expect(t.phases).toEqual(['full-sync', 'stopping', 'stopped']);
    expectLoggedOnce(t);
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.error).toBeInstanceOf(IncompleteCopyError);
      const e = out.error as IncompleteCopyError<{ appliedOffset: number | null }>;
      expect(e.exitCode).toBe(ExitCode.INCOMPLETE);
      expect(e.exitCode).toBe(9);
      expect(e.shortfall.snapshotUnfinished).toBe(true);
      expect(e.shortfall.rdbBytes).toBeGreaterThan(256 * 1024);
      expect(e.message).toMatch(/stopped during the full sync/);
      expect(e.result.appliedOffset).toBeNull();
    }
    const st = t.session.status();
    expect(st).toMatchObject({ phase: 'stopped', fullSyncs: 1, partialSyncs: 0, complete: false, skippedCommands: 0, appliedOffset: null });
    // The checkpoint on the target still says full-sync: the next run copies again.
    const cpKeys = await tgt.keys('__replicant:checkpoint:*');
    expect(cpKeys).toHaveLength(1);
    expect(JSON.parse((await tgt.get(cpKeys[0]!))!)).toMatchObject({ state: 'full-sync' });
    expect(await tgt.dbsize()).toBeLessThan(256 + 3);
  });

  it('(f) EXECABORT under onError skip: keeps streaming, counts the skipped command, no reconnect; stop reports incomplete', async () => {
    const source = await server(SOURCE_ARGS);
    // A target user that may write a* keys (and Replicant's) only: b* writes get NOPERM while queuing (EXECABORT).
    const target = await server(['--user', 'limited', 'on', '>pw', '~a*', '~__replicant*', '+@all']);
    const src = source.client();
    const tgt = target.client();
    await src.set('a0', '0');
    const t = track({ source: source.url, target: `redis://limited:pw@127.0.0.1:${target.port}`, onError: 'skip' });
    await streaming(t);
    await src.multi().set('a1', '1').set('b1', 'x').set('a2', '2').exec();
    await caughtUp(t, src);
    await src.set('a3', '3');
    await caughtUp(t, src);
    expect(await tgt.mget('a0', 'a1', 'a2', 'a3', 'b1')).toEqual(['0', '1', '2', '3', null]);
    const live = t.session.status();
    expect(live).toMatchObject({ phase: 'streaming', skippedCommands: 1, complete: false, fullSyncs: 1, partialSyncs: 0 });
    // It was the abort path (the target refused while queuing), not the command table.
    expect(t.lines.find((l) => l['command'] === 'SET' && l['key'] === 'b1')?.['reply']).toMatch(/NOPERM/);
    const out = await t.stop();

    expect(t.phases).toEqual(['full-sync', 'streaming', 'stopping', 'stopped']);
    expect(t.phases).not.toContain('reconnecting');
    expectLoggedOnce(t);
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.error).toBeInstanceOf(IncompleteCopyError);
      expect((out.error as IncompleteCopyError).exitCode).toBe(9);
      expect((out.error as IncompleteCopyError).shortfall).toMatchObject({ snapshotUnfinished: false, skippedCommands: 1, lostKeys: 0 });
    }
    const st = t.session.status();
    expect(st).toMatchObject({ phase: 'stopped', fullSyncs: 1, partialSyncs: 0, complete: false, skippedCommands: 1, lostKeys: 0 });
    expect(st.commandsApplied).toBeGreaterThan(0);
  });
});
