/** `replicant sync` as users run it: exit codes, one-line errors, graceful stop, logs without secrets. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli, startCli } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
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
    // A lease of a few milliseconds (`--lease-ttl 100`, meant as seconds) would lapse all the time.
    const short = cli(['sync', '--source', 'redis://127.0.0.1:1', '--target', 'redis://127.0.0.1:2', '--lease-ttl', '100']);
    expect(await short.code).toBe(2);
    expect(short.stderr()).toMatch(/--lease-ttl \(leaseTtlMs\) 100 ms is below 1 s/);
  });

  it('--read-timeout not above the source\'s repl-ping-replica-period: exit 2 before PSYNC; above it, the sync runs', async () => {
    const source = await startRedis();
    const target = await startRedis();
    servers.push(source, target);
    // A quiet source pings its replicas every 10 s (the default): a 3 s read timeout would drop the link at every pause.
    const r = cli(['sync', '--source', source.url, '--target', target.url, '--no-progress', '--read-timeout', '3s']);
    expect(await r.code).toBe(2);
    expect(r.stderr()).toMatch(/--read-timeout 3000 ms is not above the source's repl-ping-replica-period \(10 s\)/);
    expect(r.stderr()).not.toMatch(/PSYNC sent/);
    expect(await target.client().dbsize()).toBe(0);
    await source.client().config('SET', 'repl-ping-replica-period', '1');
    const ok = cli(['sync', '--source', source.url, '--target', target.url, '--no-progress', '--read-timeout', '3s']);
    await waitFor(() => /phase: streaming/.test(ok.stderr()), 'streaming', 20_000);
    ok.kill('SIGTERM');
    expect(await ok.code).toBe(0);
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

describe('replicant sync: incomplete copies (exit 9)', () => {
  it('names every snapshot key a rejected write lost (only the refused keys of a rejected MSET, with their db) in the log and the --report file', async () => {
    const source = await startRedis();
    // Keys outside a* (and the checkpoint) are refused with NOPERM.
    const target = await startRedis({ args: ['--user', 'limited', 'on', '>pw', '~a*', '~__replicant*', '+@all'] });
    servers.push(source, target);
    const src = source.client();
    const pipe = src.pipeline();
    for (let i = 0; i < 600; i++) pipe.set(`a${i}`, String(i));
    pipe.set('b1', 'x').set('b2', 'y').hset('bhash', 'f', 'v').hset('ahash', 'f', 'v').set('gone', 'x', 'PX', 1);
    await pipe.exec();
    await source.client(2).set('bdb2', 'z');
    await new Promise((r) => setTimeout(r, 20));
    const dir = mkdtempSync(join(tmpdir(), 'replicant-report-'));
    try {
      const report = join(dir, 'lost.txt');
      const r = cli(['sync', '--source', source.url, '--target', `redis://limited:pw@127.0.0.1:${target.port}`, '--on-error', 'skip', '--exit-after-full-sync', '--report', report, '--no-progress']);
      expect(await r.code, r.stderr()).toBe(9);
      const t = target.client();
      const present = new Set([...(await t.keys('*')), ...(await target.client(2).keys('*')).map((k) => `db2:${k}`)]);
      const all = [...Array.from({ length: 600 }, (_, i) => `a${i}`), 'b1', 'b2', 'bhash', 'ahash'];
      const missing = [...all.filter((k) => !present.has(k)), ...(present.has('db2:bdb2') ? [] : ['db2:bdb2'])];
      const lines = readFileSync(report, 'utf8').trim().split('\n').map((l) => l.split('\t'));
      const listed = lines.map(([db, key]) => (db === '0' ? key! : `db${db}:${key}`));
      expect(new Set(listed)).toEqual(new Set(missing));
      expect(listed).toHaveLength(missing.length);
      // Exactly the refused keys: a rejected MSET is retried key by key, so no a* key shares its fate;
      // the expired key is not lost.
      expect(new Set(missing)).toEqual(new Set(['b1', 'b2', 'bhash', 'db2:bdb2']));
      expect(present.has('ahash')).toBe(true);
      expect(listed).not.toContain('gone');
      for (const [, , reason] of lines) expect(reason).toMatch(/NOPERM/);
      const err = r.stderr();
      expect(err).toContain(`"lostKeys":${missing.length}`);
      expect(err).toMatch(/"msg":"full sync applied"[^\n]*"complete":false|"complete":false[^\n]*"msg":"full sync applied"/);
      expect(err).toContain(`the copy is incomplete: ${missing.length} keys of the snapshot were not written to the target; the full list is in ${report}`);
      expect(err).toMatch(/replicant: the copy is incomplete/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM during the full sync says the copy is incomplete and that the next run copies again (exit 9)', async () => {
    const source = await startRedis();
    const target = await startRedis();
    servers.push(source, target);
    await source.client().call('DEBUG', 'POPULATE', '30000', 'key', '100');
    // A slow target keeps the snapshot going long enough to be interrupted.
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: target.port } });
    try {
      proxy.slow('up', 512 * 1024);
      const r = cli(['sync', '--source', source.url, '--target', proxy.url, '--no-progress']);
      const t = target.client();
      await waitFor(async () => (await t.dbsize()) > 100, 'the first keys on the target', 20_000);
      r.kill('SIGTERM');
      expect(await r.code, r.stderr()).toBe(9);
      expect(r.stderr()).toMatch(/replicant: the copy is incomplete: stopped during the full sync \(\d+ keys, \d+ RDB bytes read from the source, not all of them applied\).*the next run copies the snapshot again/);
      // (dbsize counts the checkpoint key too.)
      expect(await t.dbsize()).toBeLessThan(30_000);
      const cp = (await targetCheckpoint(t))! as { state: string };
      expect(cp.state).toBe('full-sync');
    } finally {
      await proxy.close();
    }
  });
});
