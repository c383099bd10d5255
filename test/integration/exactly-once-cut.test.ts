/**
 * The deterministic exactly-once proof for a standalone target (checkpoint written inside the
 * same MULTI…EXEC as the batch it covers). A FaultProxy sits between Replicant and the TARGET.
 * While streaming, with the writer idle (everything applied), a reset is armed to fire after
 * `n` bytes, `n` smaller than the smallest unit Replicant sends (a unit always carries the
 * checkpoint GETSET, whose value alone is longer), then a burst of INCRs is written to the
 * source. The first unit of the burst is therefore cut in its middle:
 *
 * - reset('up', n): the target gets MULTI and part of the unit, never its EXEC: nothing of it
 *   is applied, and Replicant must resend it;
 * - reset('down', n): the replies are cut before EXEC's reply arrives; whether the target got
 *   (and applied) the whole unit before the RST depends on timing, and Replicant cannot tell:
 *   it must ask the checkpoint on the target and resend the unit only if it is not applied.
 *
 * Repeated several times in one session (bounded). At the end the INCR counters on the target
 * equal the source's and the generator's counts exactly, and DEBUG DIGEST of the target (without
 * Replicant's own keys) equals the source's: nothing lost, nothing applied twice.
 */
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { infoField, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { caughtUp, digestWithoutReplicantKeys, masterOffset, streaming, trackSession, type TrackedSession } from '../helpers/tracked-session.js';

const servers: RedisServer[] = [];
const sessions: TrackedSession[] = [];
const proxies: FaultProxy[] = [];
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.stop()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

const COUNTERS = 8;
/** Cuts that must land on the data connection (half up, half down). */
const CUTS = 8;
/** Bounded: a reset that hits the control (lease) connection instead is retried, a few times at most. */
const MAX_ATTEMPTS = CUTS * 2;

async function counters(c: Redis): Promise<number[]> {
  const v = await c.mget(...Array.from({ length: COUNTERS }, (_, i) => `ctr:${i}`));
  return v.map((x) => Number(x ?? 0));
}

describe('exactly once across target connection cuts in the middle of a unit', () => {
  it('cut mid-unit (up: EXEC never sent; down: replies cut before the EXEC reply) repeatedly: counters exact, digests equal', async () => {
    const source = await startRedis({ args: ['--repl-backlog-size', '64mb'] });
    const target = await startRedis();
    servers.push(source, target);
    const src = source.client();
    const tgt = target.client();
    const writer = source.client();
    const proxy = await FaultProxy.start({ target: { host: target.host, port: target.port } });
    proxies.push(proxy);
    await src.set('seed', '1');
    // A long lease: its renewals (on the control connection, through the same proxy) are then
    // rare and seldom take the armed reset's bytes.
    const t = trackSession({ source: source.url, target: proxy.url, leaseTtlMs: 120_000 });
    sessions.push(t);
    await streaming(t);
    await src.incr('ctr:0');
    await caughtUp(t, src);

    // The smallest unit is longer than the checkpoint value it carries (GETSET key <value>).
    const cpKey = (await tgt.keys('__replicant:checkpoint:*'))[0]!;
    const cpBytes = Buffer.byteLength((await tgt.get(cpKey))!);
    expect(cpBytes).toBeGreaterThan(160);

    const counts = new Array<number>(COUNTERS).fill(0);
    counts[0] = 1;
    let written = 0;
    const burst = async (size: number): Promise<void> => {
      const p = writer.pipeline();
      const which: number[] = [];
      for (let i = 0; i < size; i++) {
        const k = (written + i) % COUNTERS;
        which.push(k);
        p.incr(`ctr:${k}`);
      }
      const res = await p.exec();
      res?.forEach(([err], i) => {
        if (err === null) counts[which[i]!]!++;
      });
      written += size;
    };

    const done = { up: 0, down: 0 };
    let attempts = 0;
    while (done.up + done.down < CUTS && attempts < MAX_ATTEMPTS) {
      attempts++;
      const dir: 'up' | 'down' = done.up <= done.down ? 'up' : 'down';
      // Up: within MULTI…GETSET (never up to EXEC). Down: within the +OK/+QUEUED replies before EXEC's.
      const n = dir === 'up' ? 5 + ((attempts * 37) % 150) : 1 + ((attempts * 7) % 12);
      expect(n).toBeLessThan(cpBytes);
      // Idle writer: the first bytes after arming are the start of the burst's first unit.
      await caughtUp(t, src);
      const bridgesBefore = t.events.filter((e) => e.phase === 'reconnecting').length;
      const resetsBefore = proxy.stats.reset;
      const fired = proxy.reset(dir, n);
      await burst(200 + attempts * 13);
      await Promise.race([fired, new Promise((_, reject) => setTimeout(() => reject(new Error(`reset(${dir}, ${n}) did not fire`)), 30_000))]);
      expect(proxy.stats.reset).toBe(resetsBefore + 1);
      // The data connection was cut: the session bridges (reconnecting, then streaming again).
      const bridged = await waitFor(
        () => t.events.filter((e) => e.phase === 'reconnecting').length > bridgesBefore && t.session.status().phase === 'streaming',
        'the bridge',
        15_000,
        20,
      ).then(
        () => true,
        () => false,
      );
      if (bridged) done[dir]++;
      await caughtUp(t, src);
      // After every cut the target holds exactly what the source acknowledged so far.
      expect(await counters(tgt), `counters after cut ${attempts} (${dir}, ${n} bytes)`).toEqual(counts);
    }
    expect(done.up).toBeGreaterThanOrEqual(CUTS / 2);
    expect(done.down).toBeGreaterThanOrEqual(CUTS / 2);

    // The load is over: Replicant's applied offset reaches the source's offset.
    await waitFor(async () => t.session.status().appliedOffset === (await masterOffset(src)), 'the applied offset to equal master_repl_offset', 60_000, 50);
    expect(await counters(src)).toEqual(counts);
    expect(await counters(tgt)).toEqual(counts);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(written + 1);
    const st = t.session.status();
    expect(st).toMatchObject({ fullSyncs: 1, partialSyncs: 0, complete: true, skippedCommands: 0 });
    expect(proxy.stats.reset).toBeGreaterThanOrEqual(CUTS);
    expect(proxy.stats.reset).toBe(attempts);
    // A cut before EXEC means a resend of the unit; the log says how many units were resent.
    const resends = t.lines.filter((l) => /target reconnected: resending/.test(String(l['msg']))).map((l) => Number(l['units']));
    expect(resends.length).toBe(done.up + done.down);
    expect(resends.some((u) => u >= 1)).toBe(true);
    expect(await infoField(src, 'stats', 'sync_full')).toBe(1);

    const out = await t.stop();
    expect(out.ok).toBe(true);
    expect(await digestWithoutReplicantKeys(tgt)).toBe(await src.call('DEBUG', 'DIGEST'));
  });
});

/**
 * FOUND BUG (reported; src/ not changed): when the target connection is cut after a unit was
 * applied but before its reply arrived, bridgeTargetOutage (src/sync/session.ts) reads the
 * target's checkpoint (`from = cp.offset`) and resends nothing, but does not move `applied`
 * (nor the offset ACKed to the source) to it: until the next unit is applied, status() and the
 * REPLCONF ACK stay at the old offset. If the SOURCE link drops in that window, the run loop
 * resumes with PSYNC from that stale offset: the source sends the applied unit again, its
 * commands run again inside MULTI, and its GETSET then finds a newer checkpoint, which is taken
 * for a target that lost its data: a full resync (flush + copy again) repairs it by default,
 * while under --on-full-resync fail (or a target with foreign keys) the doubled writes stay.
 * Enabled by the fix of the applied offset after a bridge that resends nothing.
 */
describe('exactly once: a source drop right after a bridge that resent nothing', () => {
  it.each(['flush', 'fail'] as const)('resumes from the offset the target holds: partial resync, no full resync, counters exact (onFullResync %s)', async (onFullResync) => {
    const source = await startRedis({ args: ['--repl-backlog-size', '64mb'] });
    const target = await startRedis();
    servers.push(source, target);
    const src = source.client();
    const tgt = target.client();
    const srcProxy = await FaultProxy.start({ target: { host: source.host, port: source.port } });
    const tgtProxy = await FaultProxy.start({ target: { host: target.host, port: target.port } });
    proxies.push(srcProxy, tgtProxy);
    const t = trackSession({ source: srcProxy.url, target: tgtProxy.url, leaseTtlMs: 120_000, onFullResync });
    sessions.push(t);
    await streaming(t);
    await src.incr('ctr:0');
    await caughtUp(t, src);
    const cpKey = (await tgt.keys('__replicant:checkpoint:*'))[0]!;
    const targetOffset = async () => (JSON.parse((await tgt.get(cpKey))!) as { offset: number }).offset;
    let count = 1;
    let exposed = false;
    // Bounded: a down cut that lands before the target got the whole unit is resent instead.
    for (let attempt = 0; attempt < 10 && !exposed; attempt++) {
      await caughtUp(t, src);
      const bridges = t.events.filter((e) => e.phase === 'reconnecting').length;
      const fired = tgtProxy.reset('down', 3);
      const p = src.pipeline();
      for (let i = 0; i < 100; i++) p.incr('ctr:0');
      await p.exec();
      count += 100;
      await fired;
      await waitFor(() => t.events.filter((e) => e.phase === 'reconnecting').length > bridges && t.session.status().phase === 'streaming', 'the bridge', 30_000, 5);
      // The target holds everything the source wrote, and nothing was in flight to resend.
      exposed = (await targetOffset()) === (await masterOffset(src));
    }
    expect(exposed).toBe(true);
    // What the session reports right after the bridge must be what the target holds.
    expect.soft(t.session.status().appliedOffset, "the applied offset right after the bridge").toBe(await masterOffset(src));
    const full = t.session.status().fullSyncs;
    const partial = t.session.status().partialSyncs;
    expect(srcProxy.cut()).toBeGreaterThanOrEqual(1);
    let ended = false;
    void t.outcome.then(() => (ended = true));
    await waitFor(() => ended || (t.session.status().partialSyncs + t.session.status().fullSyncs > partial + full && t.session.status().phase === 'streaming'), 'the source to be resumed', 60_000, 20);
    // (Today, under fail, the sync stops here with exit 7 and the last 100 INCRs applied twice.)
    expect(await tgt.get('ctr:0')).toBe(String(count));
    expect(ended).toBe(false);
    await src.incr('ctr:0');
    count++;
    await caughtUp(t, src);
    expect(await tgt.get('ctr:0')).toBe(String(count));
    expect(t.session.status()).toMatchObject({ fullSyncs: full, partialSyncs: partial + 1 });
    expect(t.lines.some((l) => /the target lost what it had applied/.test(String(l['msg'])))).toBe(false);
    expect((await t.stop()).ok).toBe(true);
  });
});
