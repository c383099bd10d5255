/**
 * `replicant sync` checks the target before asking the source for its RDB (exit 5 with what is
 * missing and what to do), and gives up on a source that never answers (exit 4).
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { freePort, infoField, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { readServerInfo } from '../../src/replication/server-info.js';

const servers: RedisServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

async function pair(): Promise<{ source: RedisServer; target: RedisServer }> {
  const source = await startRedis();
  const target = await startRedis();
  servers.push(source, target);
  const sc = source.client();
  await sc.set('s', 'v');
  await sc.hset('h', 'f', '1', 'g', '2');
  await sc.rpush('l', 'a', 'b');
  return { source, target };
}

function sync(source: RedisServer, targetUrl: string, extra: string[] = []) {
  return runCli(['sync', '--source', source.url, '--target', targetUrl, '--no-progress', '--exit-after-full-sync', '--connect-timeout', '5s', ...extra], { timeoutMs: 30_000 });
}

function userUrl(target: RedisServer, user: string): string {
  return `redis://${user}:pw@127.0.0.1:${target.port}`;
}

describe('target preflight', () => {
  it('a user without RESTORE is refused before the RDB transfer, naming the grant and --write-mode commands; with commands mode the copy works', async () => {
    const { source, target } = await pair();
    const tc = target.client();
    await tc.call('ACL', 'SETUSER', 'norestore', 'on', '>pw', '~*', '&*', '+@all', '-restore');
    const r = await sync(source, userUrl(target, 'norestore'));
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/RESTORE is not allowed by the ACL.*grant \+restore to user norestore or use --write-mode commands/);
    // The source was never asked for its RDB, and nothing was written.
    expect(await infoField(source.client(), 'stats', 'sync_full')).toBe(0);
    expect(await tc.dbsize()).toBe(0);
    const ok = await sync(source, userUrl(target, 'norestore'), ['--write-mode', 'commands']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await tc.hgetall('h')).toEqual({ f: '1', g: '2' });
    expect(await tc.lrange('l', 0, -1)).toEqual(['a', 'b']);
  });

  it('without ACL DRYRUN (no +acl), a user lacking MULTI and EXEC is found by trying them; nothing is left on the target', async () => {
    const { source, target } = await pair();
    const tc = target.client();
    await tc.call('ACL', 'SETUSER', 'nomulti', 'on', '>pw', '~*', '&*', '+@all', '-acl', '-multi', '-exec');
    const r = await sync(source, userUrl(target, 'nomulti'));
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/MULTI is not allowed by the ACL .*grant \+multi to user nomulti/);
    expect(r.stderr).toMatch(/EXEC is not allowed by the ACL/);
    expect(r.stderr).not.toMatch(/EXECABORT/);
    expect(await infoField(source.client(), 'stats', 'sync_full')).toBe(0);
    expect(await tc.dbsize()).toBe(0);
  });

  it('the try path lets a user with every needed command through and removes its probe key', async () => {
    const { source, target } = await pair();
    const tc = target.client();
    await tc.call('ACL', 'SETUSER', 'noacl', 'on', '>pw', '~*', '&*', '+@all', '-acl');
    const r = await sync(source, userUrl(target, 'noacl'), ['--log-level', 'debug']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/"aclDryRun":false.*target checked/);
    expect(await tc.exists('__replicant:preflight')).toBe(0);
    expect(await tc.get('s')).toBe('v');
  });

  it('a user without access to the __replicant keys is told which key pattern to grant', async () => {
    const { source, target } = await pair();
    await target.client().call('ACL', 'SETUSER', 'appkeys', 'on', '>pw', '~app:*', '&*', '+@all');
    const r = await sync(source, userUrl(target, 'appkeys'));
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/SET is not allowed on the key __replicant:preflight by the ACL .*grant user appkeys the keys ~__replicant\* \(or ~\*\)/);
  });

  it('a source with function libraries needs FUNCTION on the target', async () => {
    const { source, target } = await pair();
    await source.client().call('FUNCTION', 'LOAD', "#!lua name=lib1\nredis.register_function('f1', function() return 1 end)");
    const tc = target.client();
    await tc.call('ACL', 'SETUSER', 'nofunc', 'on', '>pw', '~*', '&*', '+@all', '-function');
    const r = await sync(source, userUrl(target, 'nofunc'));
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/FUNCTION is not allowed by the ACL \(the source has 1 function libraries, copied with FUNCTION LOAD\)/);
  });

  it('a replica target is refused, naming its master', async () => {
    const { source, target } = await pair();
    const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(target.port)] });
    servers.push(replica);
    const rc = replica.client();
    await waitFor(async () => /master_link_status:up/.test((await rc.info('replication')) as string), 'the replica link');
    const r = await sync(source, replica.url);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toContain(`it is a replica of 127.0.0.1:${target.port} and refuses writes: point --target at its master`);
    expect(await infoField(source.client(), 'stats', 'sync_full')).toBe(0);
  });

  it('maxmemory below what the source uses is a warning, not a failure', async () => {
    const { source, target } = await pair();
    const tc = target.client();
    const used = await infoField(tc, 'memory', 'used_memory');
    await tc.config('SET', 'maxmemory', String(used + 600_000));
    const r = await sync(source, target.url);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/"level":40.*maxmemory .* leaves .* free, the source uses .*raise maxmemory on the target/);
    expect(await tc.get('s')).toBe('v');
  });

  it('an allkeys-* eviction policy is a warning: the copy could lose keys silently', async () => {
    const { source, target } = await pair();
    const tc = target.client();
    await tc.config('SET', 'maxmemory', '1gb');
    await tc.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const r = await sync(source, target.url);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/"level":40.*maxmemory-policy allkeys-lru with maxmemory 1024.0 MB: once full, the target evicts keys of the copy/);
    await tc.config('SET', 'maxmemory-policy', 'volatile-lru');
    const quiet = await sync(source, target.url);
    expect(quiet.stderr).not.toMatch(/maxmemory-policy/);
  });
});

describe('first connection to the source', () => {
  it('a closed port: exit 4 after --connect-timeout, naming the source once, one warning', async () => {
    const target = await startRedis();
    servers.push(target);
    const port = await freePort();
    const started = Date.now();
    const r = await runCli(['sync', '--source', `redis://:pw-xyz@127.0.0.1:${port}`, '--target', target.url, '--no-progress', '--connect-timeout', '1s'], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(4);
    expect(Date.now() - started).toBeLessThan(15_000);
    const last = r.stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(new RegExp(`^replicant: source 127\\.0\\.0\\.1:${port} unreachable for 1 s \\(\\d+ attempts; last error: ECONNREFUSED\\)`));
    expect(last.split(`127.0.0.1:${port}`).length - 1).toBe(1);
    expect(r.stderr.match(/source unreachable; retrying/g)?.length).toBe(1);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stderr).not.toContain('pw-xyz');
  });

  it('a source that answers INFO but never grants a first replication link (NOMASTERLINK) also ends with exit 4', async () => {
    const source = await startRedis({ args: ['--replicaof', '127.0.0.1', String(await freePort())] });
    const target = await startRedis();
    servers.push(source, target);
    const r = await runCli(['sync', '--source', source.url, '--target', target.url, '--no-progress', '--connect-timeout', '1s'], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/NOMASTERLINK.*gave up after --connect-timeout 1 s without a first replication link/);
  });

  it('a wrong source password fails at once (exit 4), without waiting for --connect-timeout', async () => {
    const source = await startRedis({ password: 'right' });
    const target = await startRedis();
    servers.push(source, target);
    const started = Date.now();
    const r = await runCli(['sync', '--source', `redis://:wrong@127.0.0.1:${source.port}`, '--target', target.url, '--no-progress', '--connect-timeout', '20s'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(4);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.stderr).toMatch(/WRONGPASS/);
  });
});

describe('first connection to the target', () => {
  it('a target that accepts but never answers: exit 5 after --connect-timeout (not 10 s, not twice), and the message states that wait', async () => {
    const source = await startRedis();
    servers.push(source);
    // Accepts connections and says nothing: connect succeeds, AUTH/probe never answer.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as AddressInfo).port;
    try {
      const started = Date.now();
      const r = await runCli(['sync', '--source', source.url, '--target', `redis://127.0.0.1:${port}`, '--no-progress', '--connect-timeout', '2s'], { timeoutMs: 40_000 });
      const took = Date.now() - started;
      expect(r.code, r.stderr).toBe(5);
      expect(took).toBeLessThan(4_500);
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`target 127\\.0\\.0\\.1:${port}: no connection \\(connect, AUTH and probe\\) within 2 s \\(--connect-timeout\\)`));
    } finally {
      silent.close();
    }
  });
});

describe('readServerInfo', () => {
  it('reads identity, replication ids, memory and keys per db over a plain connection with AUTH', async () => {
    const server = await startRedis({ password: 'pw' });
    servers.push(server);
    const c = server.client();
    await c.set('a', '1');
    await c.select(3);
    await c.set('b', '1');
    await c.set('c', '1');
    const info = await readServerInfo({ host: '127.0.0.1', port: server.port, password: 'pw' });
    const raw = (await c.info()) as string;
    expect(info).not.toBeNull();
    expect(info!.runId).toBe(/run_id:(\w+)/.exec(raw)![1]);
    expect(info!.runId).toMatch(/^[0-9a-f]{40}$/);
    expect(info!.masterReplid).toBe(/master_replid:(\w+)/.exec(raw)![1]);
    expect(info!.masterReplid2).toBe('0000000000000000000000000000000000000000');
    expect(info!.role).toBe('master');
    expect(info!.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(info!.usedMemory).toBeGreaterThan(0);
    expect([...info!.keys]).toEqual([[0, 1], [3, 2]]);
    await expect(readServerInfo({ host: '127.0.0.1', port: server.port, password: 'nope' })).rejects.toThrow(/WRONGPASS/);
  });
});

describe('command-line checks', () => {
  it('--log-level bogus, --read-timeout 0 and a /db in the target URL are usage errors (exit 2, one line)', async () => {
    const base = ['sync', '--source', 'redis://127.0.0.1:1', '--target', 'redis://127.0.0.1:2'];
    const bogus = await runCli([...base, '--log-level', 'bogus']);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr.trim().split('\n')).toHaveLength(1);
    expect(bogus.stderr).toMatch(/--log-level.*Allowed choices are fatal, error, warn, info, debug/);
    const zero = await runCli([...base, '--read-timeout', '0']);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toMatch(/--read-timeout.*above zero/);
    expect((await runCli([...base, '--connect-timeout', '0s'])).code).toBe(2);
    const db = await runCli(['sync', '--source', 'redis://127.0.0.1:1', '--target', 'redis://127.0.0.1:2/3']);
    expect(db.code).toBe(2);
    expect(db.stderr).toMatch(/--target names db 3: sync copies each source db to the same db number/);
    const vbogus = await runCli(['verify', '--source', 'redis://127.0.0.1:1', '--target', 'redis://127.0.0.1:2', '--log-level', 'bogus']);
    expect(vbogus.code).toBe(2);
  });
});
