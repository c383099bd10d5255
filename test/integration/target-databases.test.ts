/**
 * A target with fewer databases than the source uses: refused before the copy when the source's
 * keyspace shows it (exit 5, naming the dbs and the fixes), and in the stream (a db created after
 * the sync started) the commands of a db the target lacks never run in another db: they are
 * left out and counted (--on-error skip: exit 9 at the end), or stop the sync (fail: exit 5).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli, startCli, type BackgroundCli } from '../helpers/cli.js';

const servers: RedisServer[] = [];
const procs: BackgroundCli[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

async function server(databases: number): Promise<RedisServer> {
  const s = await startRedis({ args: ['--databases', String(databases)] });
  servers.push(s);
  return s;
}

describe('a target with fewer databases', () => {
  it('preflight refuses (exit 5) naming the source dbs the target lacks and the fixes; --db or --db-map that fit pass', async () => {
    const source = await server(16);
    const target = await server(4);
    await source.client(0).set('k0', 'v');
    await source.client(5).set('k5', 'v');
    await source.client(15).set('k15', 'v');
    const base = ['sync', '-s', source.url, '-t', target.url, '--no-progress', '--exit-after-full-sync', '--lease-ttl', '2s'];
    for (const policy of ['fail', 'skip']) {
      const r = await runCli([...base, '--on-error', policy], { timeoutMs: 30_000 });
      expect(r.code, r.stderr).toBe(5);
      const last = r.stderr.trim().split('\n').at(-1)!;
      expect(last).toMatch(/has 4 databases \(0-3\)/);
      expect(last).toMatch(/source db 5 \(1 keys\) → target db 5, source db 15 \(1 keys\) → target db 15/);
      expect(last).toMatch(/raise `databases`.*--db-map.*--db/);
      expect(await target.client().dbsize()).toBe(0);
    }
    const mapped = await runCli([...base, '--db', '0', '5', '15', '--db-map', '5:1,15:2'], { timeoutMs: 30_000 });
    expect(mapped.code, mapped.stderr).toBe(0);
    expect(await target.client(1).get('k5')).toBe('v');
    expect(await target.client(2).get('k15')).toBe('v');
    // A second sync of the same source whose selection (db 0) overlaps the first one's is refused
    // unless told otherwise; here only its preflight is in question.
    const only0 = await runCli([...base, '--db', '0', '--name', 'only0', '--existing', 'replace', '--allow-overlap'], { timeoutMs: 30_000 });
    expect(only0.code, only0.stderr).toBe(0);
  });

  for (const policy of ['skip', 'fail'] as const) {
    it(`stream: a source db the target lacks (created after the start) never lands in another db (--on-error ${policy})`, async () => {
      const source = await server(32);
      const target = await server(4);
      const s0 = source.client(0);
      await s0.set('before', '1');
      const run = startCli(['sync', '-s', source.url, '-t', target.url, '--no-progress', '--lease-ttl', '2s', '--on-error', policy], 60_000);
      procs.push(run);
      await waitFor(() => /phase: streaming/.test(run.stderr()), 'the sync to stream', 30_000);
      const s10 = source.client(10);
      await s10.set('in10', 'x');
      await s10.set('also10', 'y');
      await s0.set('after', '2');
      const tc = target.client(0);
      if (policy === 'fail') {
        expect(await run.code).toBe(5);
        expect(run.stderr()).toMatch(/db 10.*target .* has 4 databases/);
      } else {
        await waitFor(async () => (await tc.get('after')) === '2', 'the write after the out-of-range db', 20_000, 50);
        run.kill('SIGTERM');
        expect(await run.code).toBe(9);
        expect(run.stderr()).toMatch(/"skippedCommands":2/);
      }
      for (const db of [0, 1, 2, 3]) {
        const c = target.client(db);
        expect(await c.exists('in10', 'also10')).toBe(0);
      }
    });
  }
});
