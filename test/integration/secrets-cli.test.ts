/**
 * Passwords outside argv (environment, files) for sync and verify, against redis-server with
 * requirepass and an ACL user; and no password of a sentinel:// URL ever reaches the logs.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startSentinel, type SentinelProcess } from '../helpers/sentinel.js';

const stoppable: Array<RedisServer | SentinelProcess> = [];
let dir: string;
afterEach(async () => {
  await Promise.all(stoppable.splice(0).map((s) => s.stop()));
});
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'replicant-secrets-cli-'));
  await ensureBuilt();
}, 180_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function secretFile(name: string, text: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

/** A source with requirepass and a target whose writes go through an ACL user. */
async function protectedPair(): Promise<{ source: RedisServer; target: RedisServer }> {
  const source = await startRedis({ password: 'src-Secret-1' });
  const target = await startRedis();
  stoppable.push(source, target);
  await target.client().call('ACL', 'SETUSER', 'writer', 'on', '>tgt-Secret-2', '~*', '&*', '+@all');
  await target.client().call('ACL', 'SETUSER', 'default', 'off');
  const sc = source.client();
  await sc.set('a', '1');
  await sc.hset('h', 'f', 'v');
  return { source, target };
}

describe('passwords outside argv', () => {
  it('sync and verify take the passwords from the environment', async () => {
    const { source, target } = await protectedPair();
    const env = { REPLICANT_SOURCE_PASSWORD: 'src-Secret-1', REPLICANT_TARGET_PASSWORD: 'tgt-Secret-2' };
    const args = ['--source', `redis://127.0.0.1:${source.port}`, '--target', `redis://writer@127.0.0.1:${target.port}`, '--no-progress'];
    const s = await runCli(['sync', ...args, '--exit-after-full-sync'], { env, timeoutMs: 30_000 });
    expect(s.code, s.stderr).toBe(0);
    const v = await runCli(['verify', ...args], { env, timeoutMs: 30_000 });
    expect(v.code, v.stderr + v.stdout.toString()).toBe(0);
    for (const out of [s.stderr, v.stderr, v.stdout.toString()]) {
      expect(out).not.toContain('src-Secret-1');
      expect(out).not.toContain('tgt-Secret-2');
    }
  });

  it('sync and verify take the passwords from files (0600); a file readable by others is refused (exit 2)', async () => {
    const { source, target } = await protectedPair();
    const sf = secretFile('source.pw', 'src-Secret-1\n');
    const tf = secretFile('target.pw', 'tgt-Secret-2\n');
    const args = ['--source', `redis://127.0.0.1:${source.port}`, '--target', `redis://writer@127.0.0.1:${target.port}`, '--source-password-file', sf, '--target-password-file', tf, '--no-progress'];
    const s = await runCli(['sync', ...args, '--exit-after-full-sync'], { timeoutMs: 30_000 });
    expect(s.code, s.stderr).toBe(0);
    const v = await runCli(['verify', ...args], { timeoutMs: 30_000 });
    expect(v.code, v.stderr + v.stdout.toString()).toBe(0);
    const open = secretFile('open.pw', 'tgt-Secret-2\n', 0o644);
    const bad = await runCli(['sync', '--source', `redis://127.0.0.1:${source.port}`, '--target', `redis://writer@127.0.0.1:${target.port}`, '--target-password-file', open]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/readable by group or others.*chmod 600/);
  });

  it('a wrong password from the environment is an authentication failure (exit 4), not a hang', async () => {
    const { source, target } = await protectedPair();
    const r = await runCli(['sync', '--source', `redis://127.0.0.1:${source.port}`, '--target', `redis://writer:tgt-Secret-2@127.0.0.1:${target.port}`, '--no-progress'], {
      env: { REPLICANT_SOURCE_PASSWORD: 'not-it' },
      timeoutMs: 30_000,
    });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/WRONGPASS/);
  });

  it('a target password left out is named with the ways to give it (exit 5)', async () => {
    const { source } = await protectedPair();
    const target = await startRedis({ password: 'tgt-Secret-5' });
    stoppable.push(target);
    const r = await runCli(['sync', '--source', `redis://:src-Secret-1@127.0.0.1:${source.port}`, '--target', `redis://127.0.0.1:${target.port}`, '--no-progress'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/NOAUTH.*it requires a password: redis:\/\/\[user\]:PASSWORD@host:port, --target-password-file, or REPLICANT_TARGET_PASSWORD/);
  });
});

describe('sentinel authentication', () => {
  it('a wrong or missing sentinel password says authentication failed, naming the sentinel (exit 4, at once)', async () => {
    const master = await startRedis();
    const target = await startRedis();
    stoppable.push(master, target);
    const sentinel = await startSentinel({ masterName: 'mymaster', masterPort: master.port, password: 'sentinel-Secret-6' });
    stoppable.unshift(sentinel);
    for (const query of ['?sentinelPassword=not-it', '']) {
      const started = Date.now();
      const r = await runCli(['sync', '--source', `sentinel://127.0.0.1:${sentinel.port}/mymaster${query}`, '--target', target.url, '--no-progress', '--connect-timeout', '20s'], { timeoutMs: 40_000 });
      expect(r.code, r.stderr).toBe(4);
      expect(Date.now() - started).toBeLessThan(10_000);
      const last = r.stderr.trim().split('\n').at(-1)!;
      expect(last).not.toContain('Connection is closed');
      expect(last).toContain(`sentinel 127.0.0.1:${sentinel.port}: authentication failed`);
      expect(last).toMatch(query === '' ? /requires a password.*sentinelPassword=.*--sentinel-password-file.*REPLICANT_SENTINEL_PASSWORD/ : /WRONGPASS.*sentinelPassword=.*--sentinel-password-file.*REPLICANT_SENTINEL_PASSWORD/);
      expect(r.stderr).not.toContain('not-it');
    }
  });
});

describe('sentinel URLs in the logs', () => {
  it('neither the node password nor sentinelPassword appears in the output of sync or verify (debug level)', async () => {
    const master = await startRedis({ password: 'node-Secret-3' });
    const target = await startRedis();
    stoppable.push(master, target);
    const sentinel = await startSentinel({ masterName: 'mymaster', masterPort: master.port, password: 'sentinel-Secret-4', masterPassword: 'node-Secret-3' });
    stoppable.unshift(sentinel);
    await master.client().set('k', 'v');
    const url = `sentinel://:node-Secret-3@127.0.0.1:${sentinel.port}/mymaster?sentinelPassword=sentinel-Secret-4`;
    const s = await runCli(['sync', '--source', url, '--target', target.url, '--no-progress', '--exit-after-full-sync', '--log-level', 'debug'], { timeoutMs: 30_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toContain('sentinelPassword=***');
    const v = await runCli(['verify', '--source', url, '--target', target.url, '--no-progress', '--log-level', 'debug'], { timeoutMs: 30_000 });
    expect(v.code, v.stderr).toBe(0);
    // The sentinel password from the environment instead of the URL works too.
    const e = await runCli(['verify', '--source', `sentinel://:node-Secret-3@127.0.0.1:${sentinel.port}/mymaster`, '--target', target.url, '--no-progress'], {
      env: { REPLICANT_SENTINEL_PASSWORD: 'sentinel-Secret-4' },
      timeoutMs: 30_000,
    });
    expect(e.code, e.stderr).toBe(0);
    for (const out of [s.stderr, s.stdout.toString(), v.stderr, v.stdout.toString(), e.stderr]) {
      expect(out).not.toContain('node-Secret-3');
      expect(out).not.toContain('sentinel-Secret-4');
    }
  });
});
