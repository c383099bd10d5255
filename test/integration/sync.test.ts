/**
 * Live sync against real servers: a source with every type and a concurrent writer of
 * non-idempotent commands during and after the full sync; the target must end with the
 * same DEBUG DIGEST and FUNCTION LIST.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { populate, startLoad } from '../helpers/dataset.js';
import { targetCheckpoint, digestWithoutReserved, functionList, masterOffset, runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';
import type { SyncOptions } from '../../src/sync/session.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
afterEach(async () => {
  await Promise.all(syncs.splice(0).map((s) => s.stop().catch(() => {})));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function server(opts: Parameters<typeof startRedis>[0] = {}): Promise<RedisServer> {
  const s = await startRedis(opts);
  servers.push(s);
  return s;
}

async function syncWithLoad(source: RedisServer, target: RedisServer, sourceUrl: string, extra: Partial<SyncOptions>): Promise<RunningSync> {
  const src = source.client();
  await populate(src, { seed: 3 });
  const load = startLoad(source.client(), { delayMs: 2 });
  const sync = runSync({ source: sourceUrl, target: target.url, ...extra });
  syncs.push(sync);
  await new Promise<void>((resolve, reject) => {
    sync.session.once('fullSyncDone', () => resolve());
    sync.done.then(() => reject(new Error('sync ended before the full sync finished')), reject);
  });
  // Keep writing after the snapshot too.
  await new Promise((r) => setTimeout(r, 700));
  const sent = await load.stop();
  expect(sent).toBeGreaterThan(100);
  await waitCaughtUp(sync.session, src);
  return sync;
}

describe('replicant sync', () => {
  it('copies every type and keeps up with a non-idempotent writer (auto mode, checkpoint on the target)', async () => {
    const source = await server({ args: ['--repl-diskless-sync', 'no'] });
    const target = await server();
    const src = source.client();
    const sync = await syncWithLoad(source, target, source.url, {});
    // While running, the source lists us as a replica whose offset follows the master's.
    await waitFor(async () => {
      const info = (await src.info('replication')) as string;
      const m = /slave0:.*offset=(\d+)/.exec(info);
      return m !== null && Number(m[1]) === (await masterOffset(src));
    }, 'the source to list the replica at its own offset', 10_000);
    await sync.stop();
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(src));
    expect(await functionList(target.client())).toEqual(await functionList(src));
    // The checkpoint is on the target, at the offset the source reached.
    const cp = (await targetCheckpoint(target.client()))!;
    expect(cp.offset).toBe(await masterOffset(src));
    expect(cp.state).toBe('streaming');
  });

  it('write-mode restore from a diskless source with a password', async () => {
    const source = await server({ password: 's3cret', args: ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'] });
    const target = await server();
    const sync = await syncWithLoad(source, target, source.url, { writeMode: 'restore', checkpoint: { kind: 'none' } });
    await sync.stop();
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(source.client()));
    expect(await functionList(target.client())).toEqual(await functionList(source.client()));
  });

  it('write-mode commands with an ACL user on the source and a file checkpoint', async () => {
    const source = await server({ args: ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'] });
    await source.client().call('ACL', 'SETUSER', 'repl', 'on', '>replpw', '+psync', '+replconf', '+ping');
    const target = await server();
    const url = `redis://repl:replpw@127.0.0.1:${source.port}`;
    const sync = await syncWithLoad(source, target, url, { writeMode: 'commands', checkpoint: { kind: 'file', path: `${target.dir}/cp.json` } });
    await sync.stop();
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(source.client()));
    expect(await functionList(target.client())).toEqual(await functionList(source.client()));
  });

  it('a target slower than the source does not cost the link (client-output-buffer-limit replica 2mb 1mb 10)', async () => {
    const source = await server({ args: ['--client-output-buffer-limit', 'replica 2mb 1mb 10', '--repl-diskless-sync', 'no'] });
    const target = await server();
    const src = source.client();
    await src.set('before', '1');
    const sync = runSync({ source: source.url, target: target.url, checkpoint: { kind: 'none' }, maxInflightBytes: 256 * 1024 });
    syncs.push(sync);
    await new Promise<void>((resolve) => sync.session.once('fullSyncDone', () => resolve()));
    // Freeze the target's writes, then burst far more than the replica buffer limit.
    await target.client().call('CLIENT', 'PAUSE', '4000', 'WRITE');
    const value = 'v'.repeat(1000);
    for (let round = 0; round < 20; round++) {
      const p = src.pipeline();
      for (let i = 0; i < 1000; i++) p.set(`burst:${round}:${i}`, value);
      await p.exec();
    }
    const info = (await src.info('stats')) as string;
    expect(/sync_full:(\d+)/.exec(info)![1]).toBe('1');
    await waitCaughtUp(sync.session, src, 60_000);
    const after = (await src.info('stats')) as string;
    expect(/sync_full:(\d+)/.exec(after)![1]).toBe('1');
    expect(/connected_slaves:(\d+)/.exec((await src.info('replication')) as string)![1]).toBe('1');
    await sync.stop();
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(src));
  });
});
