/**
 * `replicant cutover` against a live sync and real servers: under a concurrent writer the
 * proof holds (the applied offset equals the paused source's), no acknowledged write is lost
 * and the target ends equal; left paused, the source blocks writes until CLIENT UNPAUSE; when
 * the sync cannot catch up within --max-pause it exits 11 and the source takes writes again; a
 * second cutover against a source where one is running refuses before pausing anything.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli, startCli } from '../helpers/cli.js';
import { digestWithoutReserved, masterOffset, runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';
import { startMetricsServer, type MetricsServer } from '../../src/observe/metrics.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
const endpoints: MetricsServer[] = [];
beforeAll(ensureBuilt, 120_000);
afterEach(async () => {
  await Promise.all(endpoints.splice(0).map((m) => m.close()));
  await Promise.all(syncs.splice(0).map((s) => s.stop().catch(() => {})));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function pair(): Promise<{ source: RedisServer; target: RedisServer; src: Redis }> {
  const source = await startRedis();
  const target = await startRedis();
  servers.push(source, target);
  const src = source.client();
  await src.call('DEBUG', 'POPULATE', 3000, 'pre', 20);
  return { source, target, src };
}

/** A sync that ran and stopped, then a write: its checkpoint stays behind the source for good. */
async function stalledSync(source: RedisServer, target: RedisServer, src: Redis): Promise<void> {
  const sync = runSync({ source: source.url, target: target.url });
  await waitCaughtUp(sync.session, src);
  await sync.stop();
  await src.set('late', 'x');
}

/** The source is not paused: a write is answered (a paused one waits for seconds). */
async function expectTakesWrites(src: Redis): Promise<void> {
  const answered = await Promise.race([src.set('after-cutover', '1').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
  expect(answered).toBe(true);
}

/** Pipelined writes until stopped; `acked` counts the INCRs the source confirmed. */
function writer(c: Redis): { stop: () => Promise<number> } {
  let running = true;
  let acked = 0;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const p = c.pipeline();
      for (let j = 0; j < 50; j++) p.incr('counter').set(`w:${(i * 50 + j) % 5000}`, String(i)).hincrby('h', `f${j}`, 1);
      const res = await p.exec();
      acked += (res ?? []).filter(([err], k) => err === null && k % 3 === 0).length;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return acked;
    },
  };
}

interface Proof {
  sourceOffset: number;
  appliedOffset: number;
  pausedMs: number;
  unpaused: boolean;
  verify: { compared: number; differences: number };
  sourceKeys: number;
  targetKeys: number;
}

describe('replicant cutover', () => {
  it('under a concurrent writer: proves the target caught up, loses nothing, unpauses', async () => {
    const { source, target, src } = await pair();
    const sync = runSync({ source: source.url, target: target.url });
    syncs.push(sync);
    const metrics = await startMetricsServer(sync.session, { port: 0 });
    endpoints.push(metrics);
    await waitCaughtUp(sync.session, src);
    const w = writer(source.client());
    await new Promise((r) => setTimeout(r, 500));
    const r = await runCli(['cutover', '-s', source.url, '-t', target.url, '--status-url', `http://127.0.0.1:${metrics.port}/status`, '--max-pause', '5s', '--unpause', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const proof = JSON.parse(r.stdout.toString()) as Proof;
    expect(proof.appliedOffset).toBe(proof.sourceOffset);
    expect(proof.verify.differences).toBe(0);
    expect(proof.verify.compared).toBeGreaterThanOrEqual(3000);
    expect(proof.targetKeys).toBe(proof.sourceKeys);
    expect(proof.unpaused).toBe(true);
    expect(proof.pausedMs).toBeLessThan(5000);
    // Writes resumed: the writer goes on after the cutover, then everything still arrives.
    const acked = await w.stop();
    expect(acked).toBeGreaterThan(0);
    expect(await masterOffset(src)).toBeGreaterThan(proof.sourceOffset);
    await waitCaughtUp(sync.session, src);
    const tgt = target.client();
    expect(Number(await tgt.get('counter'))).toBe(acked);
    expect(Number(await src.get('counter'))).toBe(acked);
    expect(await digestWithoutReserved(tgt)).toBe(await digestWithoutReserved(src));
  }, 60_000);

  it('by the checkpoint key: leaves the source paused and says how to undo', async () => {
    const { source, target, src } = await pair();
    const sync = runSync({ source: source.url, target: target.url, name: 'mig1' });
    syncs.push(sync);
    await waitCaughtUp(sync.session, src);
    const w = writer(source.client());
    await new Promise((r) => setTimeout(r, 300));
    const r = await runCli(['cutover', '-s', source.url, '-t', target.url, '--name', 'mig1', '--max-pause', '20s', '--sample', '500']);
    const acked = await Promise.race([w.stop(), new Promise<null>((res) => setTimeout(() => res(null), 300))]);
    expect(r.code).toBe(0);
    const out = r.stdout.toString();
    expect(out).toMatch(/STILL PAUSED/);
    expect(out).toContain(`redis-cli -h 127.0.0.1 -p ${source.port} CLIENT UNPAUSE`);
    const m = /source offset +(\d+)/.exec(out);
    expect(m).not.toBeNull();
    expect(out).toMatch(new RegExp(`applied offset +${m![1]} `));
    // Still paused: the writer's pipeline is stuck, a new write does not complete.
    expect(acked).toBeNull();
    const probe = source.client();
    const pending = probe.set('after', '1');
    const early = await Promise.race([pending.then(() => 'done'), new Promise((res) => setTimeout(() => res('blocked'), 300))]);
    expect(early).toBe('blocked');
    expect(await masterOffset(src)).toBe(Number(m![1]));
    await source.client().call('CLIENT', 'UNPAUSE');
    await pending;
    await w.stop();
    await waitCaughtUp(sync.session, src);
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(src));
  }, 60_000);

  it('exits 11 and unpauses when the sync cannot catch up within --max-pause', async () => {
    const { source, target, src } = await pair();
    await stalledSync(source, target, src);
    const r = await runCli(['cutover', '-s', source.url, '-t', target.url, '--max-pause', '400ms']);
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(/cutover aborted: the pause budget \(--max-pause 400 ms\) ran out: the sync applied offset \d+ of \d+; writes resumed on the source/);
    await expectTakesWrites(src);
  }, 60_000);

  it('Ctrl-C while paused: unpauses and exits 11', async () => {
    const { source, target, src } = await pair();
    await stalledSync(source, target, src);
    const run = startCli(['cutover', '-s', source.url, '-t', target.url, '--max-pause', '30s']);
    // Paused once a write from another client waits.
    const probe = source.client();
    await waitFor(async () => {
      const done = await Promise.race([probe.set('probe', '1').then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 100))]);
      return done;
    }, 'the source to be paused', 10_000, 50);
    run.kill('SIGINT');
    expect(await run.code).toBe(11);
    expect(run.stderr()).toMatch(/cutover aborted: interrupted by SIGINT; writes resumed on the source/);
    await expectTakesWrites(src);
  }, 60_000);

  it('exits 11 and unpauses when the verify finds differences (full, and by random keys)', async () => {
    const { source, target, src } = await pair();
    const sync = runSync({ source: source.url, target: target.url });
    syncs.push(sync);
    await waitCaughtUp(sync.session, src);
    // Changed behind the sync's back: only the target differs.
    const tgt = target.client();
    await tgt.set('pre:17', 'tampered');
    const full = await runCli(['cutover', '-s', source.url, '-t', target.url, '--max-pause', '5s']);
    expect(full.code).toBe(11);
    expect(full.stderr).toMatch(/cutover aborted: verify found 1 differences among \d+ keys compared \(db 0 key "pre:17": different value .*\); writes resumed on the source after \d+ ms/);
    // A third of the keys gone from the target: 200 random keys per side cannot all miss them.
    await tgt.del(...Array.from({ length: 1000 }, (_, i) => `pre:${i * 3}`));
    const sampled = await runCli(['cutover', '-s', source.url, '-t', target.url, '--max-pause', '5s', '--sample', '200']);
    expect(sampled.code).toBe(11);
    expect(sampled.stderr).toMatch(/verify found \d+ differences among \d+ keys compared \(db 0 key "pre:\d+": missing \(string only on source\)/);
    await expectTakesWrites(src);
  }, 60_000);

  it('exits 11 and unpauses when the verify outlasts the pause budget', async () => {
    const { source, target, src } = await pair();
    await src.call('DEBUG', 'POPULATE', 60000, 'many', 20);
    const sync = runSync({ source: source.url, target: target.url });
    syncs.push(sync);
    await waitCaughtUp(sync.session, src);
    // Every one of 63,000 keys compared on both sides does not fit in 300 ms.
    const r = await runCli(['cutover', '-s', source.url, '-t', target.url, '--max-pause', '300ms']);
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(/cutover aborted: the pause budget \(--max-pause 300 ms\) ran out during the verify; writes resumed on the source/);
    await expectTakesWrites(src);
  }, 60_000);

  it('refuses a sync of another source before pausing anything', async () => {
    const { source, target, src } = await pair();
    const other = await startRedis();
    servers.push(other);
    const sync = runSync({ source: other.url, target: target.url, name: 'other' });
    syncs.push(sync);
    await waitCaughtUp(sync.session, other.client());
    const r = await runCli(['cutover', '-s', source.url, '-t', target.url, '--name', 'other']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/follows replication id [0-9a-f]{40} .* it is not this source's sync/);
    await expectTakesWrites(src);
  }, 60_000);

  it('refuses to start beside another cutover of the same source (exit 11, nothing paused)', async () => {
    const { source, target, src } = await pair();
    const sync = runSync({ source: source.url, target: target.url });
    syncs.push(sync);
    await waitCaughtUp(sync.session, src);
    // A cutover in progress elsewhere, as the source sees it: a connection with a cutover's name.
    const first = source.client();
    await first.call('CLIENT', 'SETNAME', 'replicant-cutover-4242-deadbeef');
    const r = await runCli(['cutover', '-s', source.url, '-t', target.url, '--max-pause', '5s', '--unpause']);
    expect(r.code).toBe(11);
    expect(r.stderr.toString()).toMatch(/another cutover is running against source .* \(client replicant-cutover-4242-deadbeef from 127\.0\.0\.1:\d+\); one cutover at a time \(nothing was paused\)/);
    await expectTakesWrites(src);
    // Once it is gone, a cutover runs.
    await first.call('CLIENT', 'SETNAME', 'app');
    const ok = await runCli(['cutover', '-s', source.url, '-t', target.url, '--max-pause', '5s', '--unpause']);
    expect(ok.code, ok.stderr.toString()).toBe(0);
  }, 60_000);
});
