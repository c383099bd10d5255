/**
 * --on-error skip while streaming: a command the target refuses while queuing (NOPERM, a renamed
 * command) costs that command only, counted and logged; under fail the sync stops naming it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { SyncOptions } from '../../src/sync/session.js';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of syncs.splice(0)) await s.stop().catch(() => undefined);
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A target user that may write a* keys (and the checkpoint) only: b* writes get NOPERM, at queue time. */
const LIMITED = ['--user', 'limited', 'on', '>pw', '~a*', '~__replicant*', '+@all'];

async function setup(targetArgs: string[], opts: Partial<SyncOptions> = {}, user = 'limited:pw@') {
  const source = await startRedis();
  const target = await startRedis({ args: targetArgs });
  servers.push(source, target);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const start = (more: Partial<SyncOptions> = {}) => {
    const s = runSync({ source: source.url, target: `redis://${user}127.0.0.1:${target.port}`, onError: 'skip', logger, ...opts, ...more });
    syncs.push(s);
    return s;
  };
  const sync = start();
  await waitFor(() => sync.session.status().phase === 'streaming', 'streaming', 20_000);
  return { src: source.client(), tgt: target.client(), sync, lines, start };
}

describe('--on-error skip while streaming (checkpoint on the target: atomic units)', () => {
  it('a command refused while queuing is skipped, counted and logged; the rest of its unit is applied; a restart goes on', async () => {
    const { src, tgt, sync, lines, start } = await setup(LIMITED);
    await src.multi().set('a1', '1').set('b1', 'x').set('a2', '2').exec();
    await waitCaughtUp(sync.session, src);
    await src.set('a3', '3');
    await waitCaughtUp(sync.session, src);
    expect(await tgt.mget('a1', 'a2', 'a3', 'b1')).toEqual(['1', '2', '3', null]);
    expect(sync.session.status()).toMatchObject({ skippedCommands: 1, complete: false });
    const logged = lines.find((l) => l['command'] === 'SET' && l['key'] === 'b1');
    expect(logged?.['reply']).toMatch(/NOPERM/);
    expect(logged?.['offset']).toEqual(expect.any(Number));
    // Stopping a sync that skipped commands reports an incomplete copy (exit 9).
    await expect(sync.stop()).rejects.toMatchObject({ exitCode: 9, message: expect.stringMatching(/1 commands of the stream were left out/) });
    // The checkpoint moved past the aborted unit: the next run resumes and does not meet it again.
    const again = start();
    await src.set('a4', '4');
    await waitCaughtUp(again.session, src);
    expect(await tgt.get('a4')).toBe('4');
    expect(again.session.status()).toMatchObject({ partialSyncs: 1, fullSyncs: 0, skippedCommands: 0 });
  });

  it('under a pipelined burst, every write missing on the target is counted as skipped; after an abort, units go one at a time and later aborts are exact', async () => {
    const { src, tgt, sync, lines } = await setup(LIMITED);
    const burst = async (prefix: string) => {
      const p = src.pipeline();
      const bKeys: string[] = [];
      for (let i = 0; i < 3000; i++) {
        p.set(`a${prefix}${i}`, String(i));
        if (i % 1000 === 300) {
          bKeys.push(`b${prefix}${i}`);
          p.set(`b${prefix}${i}`, 'x');
        }
      }
      await p.exec();
      await waitCaughtUp(sync.session, src);
      const values = await tgt.mget(...Array.from({ length: 3000 }, (_, i) => `a${prefix}${i}`));
      expect(await tgt.exists(...bKeys)).toBe(0);
      return { rejected: bKeys.length, missing: values.filter((v) => v === null).length };
    };
    // Units in flight when the first abort arrives are applied: the aborted unit's other writes
    // are lost with it, but every one of them is counted (and the first ones named).
    const first = await burst('x');
    expect(sync.session.status().skippedCommands).toBe(first.rejected + first.missing);
    if (first.missing > 0) expect(lines.some((l) => /can no longer be applied in order/.test(String(l['msg'])))).toBe(true);
    // From now on one unit is in flight at a time: an abort costs the rejected commands only.
    const before = sync.session.status().skippedCommands;
    const second = await burst('y');
    expect(second.missing).toBe(0);
    expect(sync.session.status().skippedCommands).toBe(before + second.rejected);
  });

  // (HSET would not do: Replicant itself needs it for its registry of syncs.)
  it('a command renamed on the target is left out before its transaction (no abort): only it is skipped', async () => {
    const { src, tgt, sync, lines } = await setup(['--rename-command', 'SADD', 'sadd_renamed'], {}, '');
    await src.multi().set('a1', '1').sadd('h', 'v').set('a2', '2').exec();
    await waitCaughtUp(sync.session, src);
    expect(await tgt.mget('a1', 'a2')).toEqual(['1', '2']);
    expect(await tgt.exists('h')).toBe(0);
    expect(sync.session.status().skippedCommands).toBe(1);
    expect(lines.find((l) => l['command'] === 'SADD' && l['key'] === 'h')?.['reason']).toMatch(/does not know SADD/);
    expect(lines.some((l) => /aborted/.test(String(l['msg'])))).toBe(false);
  });

  it('under fail, a renamed command stops the sync naming the command, key and offset', async () => {
    const { src, sync } = await setup(['--rename-command', 'SADD', 'sadd_renamed'], { onError: 'fail' }, '');
    await src.sadd('h', 'v');
    await expect(sync.done).rejects.toMatchObject({ exitCode: 5, message: expect.stringMatching(/cannot run source command SADD \(key "h"\) at offset \d+: the target does not know SADD.*--on-error skip/) });
  });

  it('under fail, a command refused while queuing stops the sync naming it, its key and reply, and what to do', async () => {
    const { src, sync } = await setup(LIMITED, { onError: 'fail' });
    await src.set('b1', 'x');
    await expect(sync.done).rejects.toMatchObject({ exitCode: 5, message: expect.stringMatching(/SET \(key "b1"\): NOPERM.*--on-error skip/) });
  });

  it('a target out of memory rejects the checkpoint write too: the sync stops and says what to fix', async () => {
    const { src, tgt, sync } = await setup([], {}, '');
    await tgt.config('SET', 'maxmemory', '1');
    await src.set('a1', '1');
    await expect(sync.done).rejects.toMatchObject({ exitCode: 5, message: expect.stringMatching(/rejected the checkpoint write .*OOM.*maxmemory/) });
  });
});

describe('--on-error skip while streaming (file checkpoint: plain units)', () => {
  it('skips the rejected command of a plain unit and of a source transaction, applying the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'replicant-skip-'));
    dirs.push(dir);
    const { src, tgt, sync } = await setup(LIMITED, { checkpoint: { kind: 'file', path: join(dir, 'cp.json') } });
    await src.set('a1', '1');
    await src.set('b1', 'x');
    await src.set('a2', '2');
    await src.multi().set('a3', '3').set('b2', 'x').set('a4', '4').exec();
    await waitCaughtUp(sync.session, src);
    expect(await tgt.mget('a1', 'a2', 'a3', 'a4', 'b1', 'b2')).toEqual(['1', '2', '3', '4', null, null]);
    expect(sync.session.status().skippedCommands).toBe(2);
  });
});
