/**
 * The lease that keeps a second instance of a sync out (src/checkpoint/lease.ts), against a
 * real redis-server. A waiting instance must tell a live holder (its lease value changes as it
 * renews) from a lease that exists but is not renewed:
 * - a live holder keeps a second instance out (LeaseError, ExitCode.LOCKED = 10);
 * - a dead holder's lease (value unchanged, left to expire) is taken over once it expires, and
 *   the old holder's connections (client name with the sync's prefix) are fenced (killed);
 * - a lease kept alive by someone refreshing its TTL without changing its value: today the
 *   waiter gives up with LeaseError ("its lease does not expire") after 2 × TTL + 1 s and
 *   fences nothing. The brief expects a take-over instead: that expectation is in the skipped
 *   block at the end (reported, src/ not changed).
 * SyncLease is used directly (src/checkpoint/lease.ts is not part of the session refactor), and
 * through two SyncSessions of the same name (public API).
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode, ReplicantError } from '../../src/index.js';
import { LeaseError, SyncLease, type NodeCall } from '../../src/checkpoint/lease.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { caughtUp, streaming, trackSession, type TrackedSession } from '../helpers/tracked-session.js';

const servers: RedisServer[] = [];
const sessions: TrackedSession[] = [];
const proxies: FaultProxy[] = [];
const clients: Redis[] = [];
const leases: SyncLease[] = [];
const timers: NodeJS.Timeout[] = [];
afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t);
  for (const l of leases.splice(0)) l.stop();
  await Promise.all(sessions.splice(0).map((s) => s.stop()));
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function server(): Promise<RedisServer> {
  const s = await startRedis();
  servers.push(s);
  return s;
}

/** A connection to `s`, optionally carrying a client name (as a sync's connections do). */
async function conn(s: RedisServer, name?: string): Promise<Redis> {
  const c = new Redis({ port: s.port, host: s.host, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(name ? { connectionName: name } : {}) });
  c.on('error', () => {});
  clients.push(c);
  await c.ping();
  return c;
}

const callOn = (c: Redis): NodeCall => (args) => c.call(String(args[0]), ...args.slice(1));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function lease(ttlMs: number, lines?: Array<Record<string, unknown>>): SyncLease {
  const logger = lines ? pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) }) : pino({ level: 'silent' });
  const l = new SyncLease({ key: '__replicant:lease:test', id: 'test', clientPrefix: 'replicant-testprefix-', ttlMs, logger });
  leases.push(l);
  return l;
}

/** Client names connected to the server now. */
async function clientNames(c: Redis): Promise<string[]> {
  const list = String(await c.call('CLIENT', 'LIST'));
  return list.split('\n').map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '').filter((n) => n !== '');
}

/** The lease value a dead holder left (the shape SyncLease writes). */
function deadHolderValue(token: string): string {
  return JSON.stringify({ token, host: 'gone-host', pid: 4242, since: Date.now() - 60_000, renewedAt: Date.now() - 1000 });
}

describe('SyncLease against a real redis-server', () => {
  it('(i) a live holder (its value changes as it renews) keeps a second instance out: LeaseError, exit 10; nothing fenced', async () => {
    const s = await server();
    const ttl = 1500;
    const holder = lease(ttl);
    const holderConn = await conn(s, holder.clientName);
    expect(await holder.acquire(callOn(holderConn), [callOn(holderConn)], sleep, () => false)).toBe(true);
    let lost: Error | null = null;
    holder.startRenewing(() => callOn(holderConn), (e) => (lost = e));
    const watcher = await conn(s);

    const waiter = lease(ttl);
    const waiterConn = await conn(s, waiter.clientName);
    const err = await waiter.acquire(callOn(waiterConn), [callOn(waiterConn)], sleep, () => false).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LeaseError);
    expect(err).toBeInstanceOf(ReplicantError);
    expect((err as LeaseError).exitCode).toBe(ExitCode.LOCKED);
    expect((err as LeaseError).exitCode).toBe(10);
    expect((err as LeaseError).message).toMatch(/sync "test" is already running .*it renewed its lease just now/);
    // The holder is untouched: still the lease's owner, its connection alive, renewing.
    expect(JSON.parse((await watcher.get('__replicant:lease:test'))!)).toMatchObject({ token: holder.token });
    expect(await clientNames(watcher)).toContain(holder.clientName);
    expect(await holderConn.ping()).toBe('PONG');
    await sleep(ttl);
    expect(lost).toBeNull();
    expect(JSON.parse((await watcher.get('__replicant:lease:test'))!)).toMatchObject({ token: holder.token });
  });

  it('(ii) a dead holder (value unchanged, left to expire) is taken over after its TTL; its connections are fenced', async () => {
    const s = await server();
    const ttl = 1500;
    const watcher = await conn(s);
    const oldToken = 'deadbeefdeadbeef';
    await watcher.set('__replicant:lease:test', deadHolderValue(oldToken), 'PX', ttl);
    // The dead holder's connections are still open (a hung process): they carry its client name.
    const oldConns = [await conn(s, `replicant-testprefix-${oldToken}`), await conn(s, `replicant-testprefix-${oldToken}`)];
    // Another sync's connection (another prefix) must not be touched.
    const otherSync = await conn(s, 'replicant-otherprefix-0123456789abcdef');
    const lines: Array<Record<string, unknown>> = [];
    const waiter = lease(ttl, lines);
    const waiterConn = await conn(s, waiter.clientName);

    expect(await waiter.acquire(callOn(waiterConn), [callOn(waiterConn)], sleep, () => false)).toBe(true);
    expect(JSON.parse((await watcher.get('__replicant:lease:test'))!)).toMatchObject({ token: waiter.token });
    const pttl = await watcher.pttl('__replicant:lease:test');
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(ttl);
    const names = await clientNames(watcher);
    expect(names).not.toContain(`replicant-testprefix-${oldToken}`);
    expect(names).toContain(waiter.clientName);
    expect(names).toContain('replicant-otherprefix-0123456789abcdef');
    for (const c of oldConns) await expect(c.ping()).rejects.toThrow();
    expect(await otherSync.ping()).toBe('PONG');
    expect(lines.some((l) => /waiting to see whether it is alive/.test(String(l['msg'])))).toBe(true);
    expect(lines.find((l) => /fenced an earlier instance/.test(String(l['msg'])))?.['connections']).toBe(2);
    // The new holder renews; the old token is gone for good.
    expect(await waiter.renew(callOn(waiterConn))).toBe(false);
    expect(JSON.parse((await watcher.get('__replicant:lease:test'))!)).toMatchObject({ token: waiter.token });
  });

});

describe('two SyncSessions of the same name', () => {
  it('(i) while the first streams, a second one fails with exit 10 (LOCKED) and the first goes on', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    await src.set('k', 'v');
    const first = trackSession({ source: source.url, target: target.url, name: 'same', leaseTtlMs: 1500 });
    sessions.push(first);
    await streaming(first);
    const second = trackSession({ source: source.url, target: target.url, name: 'same', leaseTtlMs: 1500 });
    sessions.push(second);
    const out = await second.outcome;
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.error).toMatchObject({ exitCode: ExitCode.LOCKED, code: 'LOCKED' });
      expect((out.error as Error).message).toMatch(/sync "same" is already running/);
    }
    expect(second.phases).toEqual(['stopped']);
    expect(second.session.status()).toMatchObject({ phase: 'stopped', fullSyncs: 0, partialSyncs: 0 });
    await src.incr('n');
    await caughtUp(first, src);
    expect(await tgt.get('n')).toBe('1');
    expect(first.session.status().phase).toBe('streaming');
    expect((await first.stop()).ok).toBe(true);
  });

  it('(ii) a first session cut off from the target (its lease not renewed) is taken over and fenced; it then stops with exit 10 and doubles nothing', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    await src.set('n', '0');
    const proxy = await FaultProxy.start({ target: { host: target.host, port: target.port } });
    proxies.push(proxy);
    const first = trackSession({ source: source.url, target: proxy.url, name: 'same', leaseTtlMs: 1500 });
    sessions.push(first);
    await streaming(first);
    for (let i = 0; i < 50; i++) await src.incr('n');
    await caughtUp(first, src);
    // The first instance hangs as far as the target can tell: its connections stay open, nothing gets through.
    proxy.stall('both');
    for (let i = 0; i < 50; i++) await src.incr('n');
    const second = trackSession({ source: source.url, target: target.url, name: 'same', leaseTtlMs: 1500 });
    sessions.push(second);
    await streaming(second);
    expect(second.lines.some((l) => /waiting to see whether it is alive/.test(String(l['msg'])))).toBe(true);
    expect(Number(second.lines.find((l) => /fenced an earlier instance/.test(String(l['msg'])))?.['connections'])).toBeGreaterThanOrEqual(1);
    await caughtUp(second, src);
    expect(await tgt.get('n')).toBe('100');
    // The first wakes up: whatever it held must not reach the target; it stops with exit 10.
    proxy.resume();
    const out = await Promise.race([first.outcome, sleep(60_000).then(() => null)]);
    expect(out).not.toBeNull();
    expect(out?.ok).toBe(false);
    if (out !== null && !out.ok) expect(out.error).toMatchObject({ exitCode: ExitCode.LOCKED });
    expect(first.phases[first.phases.length - 1]).toBe('stopped');
    for (let i = 0; i < 50; i++) await src.incr('n');
    await caughtUp(second, src);
    await sleep(300);
    expect(await tgt.get('n')).toBe('150');
    expect((await second.stop()).ok).toBe(true);
  });
});

/**
 * A lease whose value never changes is not renewed by a live holder, so it is stale even if
 * something keeps refreshing its TTL (a script, a key-TTL "keeper", a restored backup with the
 * key): it is taken over after its TTL with a compare-and-set of the exact value seen, and its
 * holder is fenced. (Before, acquire only ever took the lease with SET NX and refused after
 * 2 × TTL + 1 s: "its lease does not expire".)
 */
describe('SyncLease: a lease refreshed without changing', () => {
  it('is recognised as stale and taken over after the TTL; the old holder is fenced', async () => {
    const s = await server();
    const ttl = 1000;
    const watcher = await conn(s);
    const refresher = await conn(s);
    const oldToken = 'feedfacefeedface';
    await watcher.set('__replicant:lease:test', deadHolderValue(oldToken), 'PX', ttl);
    const oldConn = await conn(s, `replicant-testprefix-${oldToken}`);
    timers.push(setInterval(() => void refresher.pexpire('__replicant:lease:test', ttl).catch(() => undefined), 100));
    const waiter = lease(ttl);
    const waiterConn = await conn(s, waiter.clientName);
    expect(await waiter.acquire(callOn(waiterConn), [callOn(waiterConn)], sleep, () => false)).toBe(true);
    expect(JSON.parse((await watcher.get('__replicant:lease:test'))!)).toMatchObject({ token: waiter.token });
    expect(await clientNames(watcher)).not.toContain(`replicant-testprefix-${oldToken}`);
    await expect(oldConn.ping()).rejects.toThrow();
  });
});
