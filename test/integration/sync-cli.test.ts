/** `replicant sync` as users run it: exit codes, one-line errors, graceful stop, logs without secrets. */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli, startCli } from '../helpers/cli.js';
import { targetCheckpoint } from '../helpers/sync.js';

const servers: RedisServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

const cli = (args: string[]) => startCli(args);

describe('replicant sync (CLI)', () => {
  it('refuses a target that holds keys, naming the flag (exit 5)', async () => {
    const source = await startRedis();
    const target = await startRedis();
    servers.push(source, target);
    await target.client().set('precious', '1');
    const r = cli(['sync', '--source', source.url, '--target', target.url, '--no-progress']);
    expect(await r.code).toBe(5);
    expect(r.stderr()).toMatch(/already holds 1 keys.*--existing/);
    expect(await target.client().get('precious')).toBe('1');
  });

  it('fails on a wrong source password with exit 4 and never logs the password', async () => {
    const source = await startRedis({ password: 'right-pw' });
    const target = await startRedis();
    servers.push(source, target);
    const r = cli(['sync', '--source', `redis://:wrong-pw@127.0.0.1:${source.port}`, '--target', target.url, '--no-progress']);
    expect(await r.code).toBe(4);
    expect(r.stderr()).toMatch(/WRONGPASS|auth/i);
    expect(r.stderr()).not.toContain('wrong-pw');
  });

  it('rejects bad option values with exit 2', async () => {
    const r = cli(['sync', '--source', 'redis://127.0.0.1:1', '--target', 'redis://127.0.0.1:2', '--write-mode', 'fast']);
    expect(await r.code).toBe(2);
    expect(r.stderr()).toMatch(/write-mode/);
  });

  it('SIGTERM stops gracefully: exit 0, applied offset logged, checkpoint stored', async () => {
    const source = await startRedis();
    const target = await startRedis();
    servers.push(source, target);
    const src = source.client();
    for (let i = 0; i < 100; i++) await src.set(`k${i}`, String(i));
    const r = cli(['sync', '--source', source.url, '--target', target.url, '--no-progress']);
    await waitFor(() => /phase: streaming/.test(r.stderr()), 'streaming', 20_000);
    await src.incr('k1');
    await waitFor(async () => (await target.client().get('k1')) === '2', 'the INCR to reach the target', 10_000);
    r.kill('SIGTERM');
    expect(await r.code).toBe(0);
    expect(r.stderr()).toMatch(/"appliedOffset":\d+/);
    const cp = (await targetCheckpoint(target.client()))!;
    expect(cp.state).toBe('streaming');
    expect(cp.offset).toBeGreaterThan(0);
  });
});

describe('replicant demo', () => {
  it('syncs two temporary local servers under live writes and verifies them equal', async () => {
    const r = await runCli(['demo', '--keys', '2000', '--duration', '500ms'], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toContain('EQUAL');
    expect(r.stderr).toMatch(/snapshot copied: 2004 keys/);
  });
});
