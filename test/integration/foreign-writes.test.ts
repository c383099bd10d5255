/**
 * A full resync under the default `--on-full-resync flush` flushes the target only when it holds
 * nothing this sync did not write: a key another client SET directly on the target (while the
 * sync streams, or while it is stopped) makes it exit 7 with the target untouched. The source
 * "restarts without persistence": a fresh redis-server on the same port (new replication id),
 * so PSYNC gets +FULLRESYNC.
 */
import { describe, expect, it } from 'vitest';
import { waitFor, type RedisServer } from '../helpers/redis.js';
import { startCli, type BackgroundCli } from '../helpers/cli.js';
import { realProcesses } from '../helpers/lifecycle.js';

const { server, track } = realProcesses();

function sync(source: RedisServer, target: RedisServer): BackgroundCli {
  return track(startCli(['sync', '-s', source.url, '-t', target.url, '--no-progress', '--lease-ttl', '2s'], 45_000));
}

const streams = (r: BackgroundCli, n = 1) => waitFor(() => (r.stderr().match(/phase: streaming/g) ?? []).length >= n, 'the sync to stream', 30_000);

/** Source data, a sync streaming it, and a few stream batches applied. */
async function streamingPair(): Promise<{ source: RedisServer; target: RedisServer; run: BackgroundCli }> {
  const source = await server();
  const target = await server();
  const sc = source.client();
  for (let i = 0; i < 50; i++) await sc.set(`k${i}`, String(i));
  const run = sync(source, target);
  await streams(run);
  for (let i = 0; i < 20; i++) await sc.incr('counter');
  const tc = target.client();
  await waitFor(async () => (await tc.get('counter')) === '20', 'the stream to be applied', 20_000, 50);
  return { source, target, run };
}

/** The source restarted without persistence: empty, new replication id, same port. */
async function restartSourceEmpty(source: RedisServer): Promise<void> {
  await source.restart();
  await source.client().set('fresh', '1');
}

describe('a full resync never flushes keys other clients wrote on the target', () => {
  it('(a) a key SET on the target while streaming: the resync exits 7, the key and the copy kept', async () => {
    const { source, target, run } = await streamingPair();
    const tc = target.client();
    await tc.set('foreign', 'mine');
    // More stream batches after the foreign write: it must not be absorbed by them.
    const sc = source.client();
    for (let i = 0; i < 20; i++) await sc.incr('counter');
    await waitFor(async () => (await tc.get('counter')) === '40', 'more batches', 20_000, 50);
    await restartSourceEmpty(source);
    expect(await run.code).toBe(7);
    expect(run.stderr()).toMatch(/other clients created 1 key on it since the last full sync/);
    expect(run.stderr()).toMatch(/--on-full-resync replace.*--on-full-resync flush-all.*--on-full-resync fail/);
    expect(await tc.get('foreign')).toBe('mine');
    expect(await tc.get('k7')).toBe('7');
    expect(await tc.get('fresh')).toBeNull();
  });

  it('(b) a key SET on the target while the sync is stopped: the restarted sync exits 7 at the resync, the key kept', async () => {
    const { source, target, run } = await streamingPair();
    run.kill('SIGTERM');
    expect(await run.code).toBe(0);
    const tc = target.client();
    await tc.set('foreign', 'mine');
    await restartSourceEmpty(source);
    const again = sync(source, target);
    expect(await again.code).toBe(7);
    expect(again.stderr()).toMatch(/other clients/);
    expect(await tc.get('foreign')).toBe('mine');
    expect(await tc.get('k7')).toBe('7');
  });

  it('(c) without foreign writes the resync flushes and copies again, streaming or after a stop', async () => {
    const { source, target, run } = await streamingPair();
    const tc = target.client();
    await restartSourceEmpty(source);
    await streams(run, 2);
    await waitFor(async () => (await tc.get('fresh')) === '1', 'the new snapshot', 20_000, 50);
    expect(await tc.get('k7')).toBeNull();
    run.kill('SIGTERM');
    expect(await run.code).toBe(0);
    await restartSourceEmpty(source);
    await source.client().set('fresh2', '2');
    const again = sync(source, target);
    await streams(again);
    await waitFor(async () => (await tc.get('fresh2')) === '2', 'the newest snapshot', 20_000, 50);
    again.kill('SIGTERM');
    expect(await again.code).toBe(0);
  });

  it('(d) a killed sync whose lease expired, and keys of the copy expiring between batches, are not taken for other clients', async () => {
    const { source, target, run } = await streamingPair();
    const sc = source.client();
    // Keys of the copy that the target expires itself, between batches.
    for (let i = 0; i < 5; i++) await sc.set(`ttl${i}`, 'x', 'PX', 300);
    const tc = target.client();
    await waitFor(async () => Number((await tc.info('stats')).match(/expired_keys:(\d+)/)![1]) >= 5, 'the target to expire the keys', 20_000, 50);
    run.kill('SIGKILL');
    await run.code;
    // The lease expires (the target counts it in expired_keys) before the next instance starts.
    await waitFor(async () => (await tc.keys('__replicant:lease:*')).length === 0, 'the lease to expire', 10_000, 100);
    await restartSourceEmpty(source);
    const again = sync(source, target);
    await streams(again);
    await waitFor(async () => (await tc.get('fresh')) === '1', 'the new snapshot', 20_000, 50);
    expect(await tc.get('k7')).toBeNull();
    again.kill('SIGTERM');
    expect(await again.code).toBe(0);
  });

  it('(e) statistics reset on the target while the sync is stopped: the count is unknown, so the flush is refused', async () => {
    const { source, target, run } = await streamingPair();
    run.kill('SIGTERM');
    expect(await run.code).toBe(0);
    const tc = target.client();
    await tc.config('RESETSTAT');
    await restartSourceEmpty(source);
    const again = sync(source, target);
    expect(await again.code).toBe(7);
    expect(again.stderr()).toMatch(/cannot tell whether other clients wrote to it/);
    expect(again.stderr()).toMatch(/flush-all/);
    expect(await tc.get('k7')).toBe('7');
  });
});
