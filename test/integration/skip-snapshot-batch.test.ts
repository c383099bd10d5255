/**
 * --on-error skip during the snapshot: plain strings go to the target in batches (MSET). A key the
 * target refuses must cost that key only, not the batch it was gathered into.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { runSync, type RunningSync } from '../helpers/sync.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of syncs.splice(0)) await s.stop().catch(() => undefined);
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('--on-error skip with batched snapshot strings', () => {
  it('51 forbidden keys among 1,000 allowed ones: exactly the 51 are lost and reported, every allowed key is copied', async () => {
    const source = await startRedis();
    // A target user that may write a* keys (and Replicant's own) only: b* writes get NOPERM.
    const target = await startRedis({ args: ['--user', 'limited', 'on', '>pw', '~a*', '~__replicant:*', '+@all'] });
    servers.push(source, target);
    const src = source.client();
    const p = src.pipeline();
    for (let i = 0; i < 1000; i++) p.set(`a:${i}`, `v${i}`);
    for (let i = 0; i < 51; i++) p.set(`b:${i}`, `x${i}`);
    await p.exec();
    const dir = mkdtempSync(join(tmpdir(), 'replicant-skip-batch-'));
    dirs.push(dir);
    const report = join(dir, 'lost.txt');
    const sync = runSync({ source: source.url, target: `redis://limited:pw@127.0.0.1:${target.port}`, onError: 'skip', report });
    syncs.push(sync);
    await waitFor(() => sync.session.status().phase === 'streaming', 'streaming', 30_000);
    const tgt = target.client();
    const values = await tgt.mget(...Array.from({ length: 1000 }, (_, i) => `a:${i}`));
    expect(values.filter((v, i) => v !== `v${i}`)).toEqual([]);
    expect(await tgt.exists(...Array.from({ length: 51 }, (_, i) => `b:${i}`))).toBe(0);
    expect(sync.session.status().lostKeys).toBe(51);
    const listed = readFileSync(report, 'utf8').trim().split('\n').map((l) => l.split('\t')[1]).sort();
    expect(listed).toEqual(Array.from({ length: 51 }, (_, i) => `b:${i}`).sort());
  });
});
