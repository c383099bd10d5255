/**
 * A target that takes no writes for a while, whatever the command, against real servers: its error
 * replies are never skipped under --on-error skip (before, every write while the state lasted was
 * "skipped" and counted, and the file checkpoint moved past them: lost).
 * - a script keeps the target BUSY for ~2 s (a state that passes): the sync waits and resends,
 *   every INCR arrives exactly once, with a file checkpoint and with the default target checkpoint;
 * - the target demoted to a read-only replica (READONLY, which needs an operator): the sync stops
 *   (exit 5) naming the state, nothing skipped, the file checkpoint not past the last applied write;
 * - the target's ACL narrowed to the application's keys while the sync streams (its data writes still
 *   pass, its lease can no longer be renewed): the sync stops with exit 10 within a renewal period,
 *   instead of writing on with an expired lease that a second instance could take over;
 * - Replicant started while the target still loads its data set (-LOADING to every write): it waits,
 *   saying how far the target is, then copies (it used to exit 5 at its first write, the lease);
 * - the target's password rotated, then its connections killed: the reconnect is refused (WRONGPASS),
 *   and the sync stops with exit 5 saying so (it used to retry the same password for ever, logging
 *   "target unreachable").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { Redis as RedisClient } from 'ioredis';
import { freePort, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { captureLogger, runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';
import type { CheckpointSpec } from '../../src/checkpoint/store.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
const dirs: string[] = [];
const spawned: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(syncs.splice(0).map((s) => s.stop().catch(() => {})));
  for (const p of spawned.splice(0)) p.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function server(args: string[] = []): Promise<RedisServer> {
  const s = await startRedis({ args });
  servers.push(s);
  return s;
}

function fileCheckpoint(): { kind: 'file'; path: string } {
  const d = mkdtempSync(join(tmpdir(), 'replicant-target-states-'));
  dirs.push(d);
  return { kind: 'file', path: join(d, 'checkpoint.json') };
}

async function streaming(sync: RunningSync): Promise<void> {
  await waitFor(() => sync.session.status().phase === 'streaming', 'streaming', 30_000, 20);
}

/** `n` INCRs of `key` on the source, one every `gapMs`. */
async function incrs(src: Redis, key: string, n: number, gapMs: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await src.incr(key);
    await new Promise((r) => setTimeout(r, gapMs));
  }
}

/** A Lua loop that keeps `c`'s server busy for `ms` (BUSY replies to others after busy-reply-threshold). */
function busyFor(c: Redis, ms: number): Promise<unknown> {
  return c.eval(`local t = redis.call('TIME') while true do local n = redis.call('TIME') if (n[1]-t[1])*1000000 + (n[2]-t[2]) > ${ms * 1000} then break end end return 1`, 0);
}

describe('a target that takes no writes for a while', () => {
  for (const [label, checkpoint] of [
    ['a file checkpoint', () => fileCheckpoint()],
    ['the target checkpoint', () => undefined],
  ] as const) {
    it(`BUSY for 2 s under --on-error skip, ${label}: waited for, every write applied once, nothing skipped`, async () => {
      const source = await server();
      const target = await server(['--busy-reply-threshold', '100']);
      const src = source.client();
      const cp: CheckpointSpec | undefined = checkpoint();
      const sync = runSync({ source: source.url, target: target.url, onError: 'skip', ...(cp ? { checkpoint: cp } : {}) });
      syncs.push(sync);
      await streaming(sync);
      await incrs(src, 'counter', 20, 2);
      await waitCaughtUp(sync.session, src);
      const busy = busyFor(target.client(), 2000);
      await new Promise((r) => setTimeout(r, 300));
      await incrs(src, 'counter', 300, 3);
      await busy;
      await waitCaughtUp(sync.session, src, 30_000);

      expect(await target.client().get('counter')).toBe('320');
      const st = sync.session.status();
      expect(st.skippedCommands).toBe(0);
      expect(st.complete).toBe(true);
      expect(st.fullSyncs).toBe(1);
      await sync.stop();
    }, 60_000);
  }

  it('demoted to a read-only replica under --on-error skip with a file checkpoint: stops (exit 5) naming READONLY, nothing skipped', async () => {
    const source = await server();
    const target = await server();
    const other = await server();
    const src = source.client();
    const tgt = target.client();
    const cp = fileCheckpoint();
    const sync = runSync({ source: source.url, target: target.url, onError: 'skip', checkpoint: cp });
    syncs.push(sync);
    await streaming(sync);
    await incrs(src, 'counter', 50, 1);
    await waitCaughtUp(sync.session, src);
    const appliedBefore = sync.session.status().appliedOffset!;
    await tgt.call('REPLICAOF', '127.0.0.1', String(other.port));
    await waitFor(async () => /role:slave/.test((await tgt.info('replication')) as string), 'the target to be a replica', 10_000, 20);
    await incrs(src, 'counter', 50, 1);

    await expect(sync.done).rejects.toMatchObject({ exitCode: 5, message: expect.stringMatching(/READONLY.*point --target at its master.*nothing is skipped/) });
    const st = sync.session.status();
    expect(st.skippedCommands).toBe(0);
    // The checkpoint file did not move past what the target had applied before it turned read-only.
    const saved = JSON.parse(readFileSync(cp.path, 'utf8')) as { offset: number };
    expect(saved.offset).toBeLessThanOrEqual(appliedBefore);
  }, 60_000);

  it('the ACL narrowed to the application keys: the lease cannot be renewed, so the sync stops (exit 10) before it expires', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const admin = target.client();
    await admin.call('ACL', 'SETUSER', 'rep', 'on', '>pw', '~*', '&*', '+@all');
    const url = `redis://rep:pw@127.0.0.1:${target.port}`;
    const sync = runSync({ source: source.url, target: url, checkpoint: fileCheckpoint(), leaseTtlMs: 3000 });
    syncs.push(sync);
    await streaming(sync);
    await incrs(src, 'counter', 20, 1);
    await waitCaughtUp(sync.session, src);
    // The operator keeps Replicant's user to the keys it "needs": the application's.
    await admin.call('ACL', 'SETUSER', 'rep', 'resetkeys', '~counter');
    await expect(sync.done).rejects.toMatchObject({ exitCode: 10, message: expect.stringMatching(/refused to renew this sync's lease \(NOPERM/) });
    // Stopped while its lease still stood: no second instance could have taken over meanwhile.
    expect(await admin.pttl(`__replicant:lease:127.0.0.1:${source.port}`)).toBeGreaterThan(0);
  }, 60_000);

  it('started while the target loads its data set: waits for it, saying how far it is, then copies', async () => {
    const source = await server();
    await source.client().set('from-source', '1');
    // A target whose RDB takes a while to load: 2M keys saved, then a fresh redis-server on that file.
    const dir = mkdtempSync(join(tmpdir(), 'replicant-loading-'));
    dirs.push(dir);
    const seed = await startRedis({ dir });
    await seed.client().call('DEBUG', 'POPULATE', 2_000_000, 'pad', 20);
    await seed.client().call('SAVE');
    await seed.stop({ keepDir: true });
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    spawned.push(proc);
    const probe = new RedisClient({ port, host: '127.0.0.1', lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    probe.on('error', () => {});
    try {
      await waitFor(async () => {
        try {
          if (probe.status !== 'ready') await probe.connect().catch(() => undefined);
          return /loading:1/.test(String(await probe.info('persistence')));
        } catch {
          return false;
        }
      }, 'the target to be loading', 10_000, 10);
      const { logger, lines } = captureLogger();
      const sync = runSync({ source: source.url, target: `redis://127.0.0.1:${port}`, existing: 'replace', exitAfterFullSync: true, logger });
      syncs.push(sync);
      await sync.done;
      expect(lines.some((l) => l['msg'] === 'the target is loading its data set: waiting before writing anything')).toBe(true);
      expect(await probe.get('from-source')).toBe('1');
      expect(await probe.dbsize()).toBeGreaterThan(2_000_000);
    } finally {
      probe.disconnect();
    }
  }, 120_000);

  it('the target password rotated while streaming: the refused reconnect stops the sync (exit 5) instead of retrying for ever', async () => {
    const source = await server();
    const target = await startRedis({ password: 'old' });
    servers.push(target);
    const src = source.client();
    const sync = runSync({ source: source.url, target: `redis://:old@127.0.0.1:${target.port}` });
    syncs.push(sync);
    await streaming(sync);
    await incrs(src, 'counter', 10, 1);
    await waitCaughtUp(sync.session, src);
    const admin = new RedisClient({ port: target.port, host: '127.0.0.1', password: 'old', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    admin.on('error', () => {});
    try {
      await admin.connect();
      await admin.config('SET', 'requirepass', 'new');
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    } finally {
      admin.disconnect();
    }
    await expect(sync.done).rejects.toMatchObject({ exitCode: 5, message: expect.stringMatching(/authentication failed: WRONGPASS.*the sync stops/) });
  }, 60_000);
});
