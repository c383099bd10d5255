/**
 * Checkpoint trouble is reported, not ignored: a garbage or truncated checkpoint (the target key
 * or a --checkpoint file) stops the sync with exit 2 saying which key holds what and what to
 * do, the target untouched; and --exit-after-full-sync on a restart that resumes (+CONTINUE)
 * exits once caught up with the source instead of streaming forever.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { digestWithoutReserved } from '../helpers/sync.js';

const servers: RedisServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

async function server(): Promise<RedisServer> {
  const s = await startRedis();
  servers.push(s);
  return s;
}

const sync = (args: string[], timeoutMs = 30_000) => runCli(['sync', '--no-progress', '--lease-ttl', '2s', ...args], { timeoutMs });

describe('checkpoint trouble', () => {
  it('a truncated or garbage checkpoint key on the target: exit 2 naming the key, what it holds and what to do; the target untouched', async () => {
    const source = await server();
    const target = await server();
    await source.client().mset('a', '1', 'b', '2');
    const first = await sync(['-s', source.url, '-t', target.url, '--exit-after-full-sync']);
    expect(first.code, first.stderr).toBe(0);
    const tc = target.client();
    const key = `__replicant:checkpoint:127.0.0.1:${source.port}`;
    const good = (await tc.get(key))!;
    for (const bad of [good.slice(0, 25), 'garbage']) {
      await tc.set(key, bad);
      const before = await digestWithoutReserved(tc);
      const r = await sync(['-s', source.url, '-t', target.url, '--exit-after-full-sync']);
      expect(r.code, r.stderr).toBe(2);
      const last = r.stderr.trim().split('\n').at(-1)!;
      expect(last).toContain(`target key "${key}" in db 0`);
      expect(last).toContain(JSON.stringify(bad));
      expect(last).toMatch(/DEL __replicant:checkpoint:/);
      expect(await digestWithoutReserved(tc)).toBe(before);
      expect(await tc.get(key)).toBe(bad);
    }
  });

  it('a garbage --checkpoint file: exit 2 naming the file, what it holds and what to do', async () => {
    const source = await server();
    const target = await server();
    await source.client().set('a', '1');
    const file = join(mkdtempSync(join(tmpdir(), 'replicant-cp-')), 'cp.json');
    writeFileSync(file, '{"v":1,"replid":"ab');
    const r = await sync(['-s', source.url, '-t', target.url, '--checkpoint', `file:${file}`, '--exit-after-full-sync']);
    expect(r.code, r.stderr).toBe(2);
    const last = r.stderr.trim().split('\n').at(-1)!;
    expect(last).toContain(`file ${file}`);
    expect(last).toContain('{\\"v\\":1,\\"replid\\":\\"ab');
    expect(last).toMatch(/delete it/);
    expect(await target.client().dbsize()).toBe(0);
  });

  it('--exit-after-full-sync on a restart that resumes: exits 0 once caught up with the source, nothing copied again', async () => {
    const source = await server();
    const target = await server();
    const sc = source.client();
    await sc.mset('a', '1', 'b', '2');
    const first = await sync(['-s', source.url, '-t', target.url, '--exit-after-full-sync']);
    expect(first.code, first.stderr).toBe(0);
    for (let i = 0; i < 200; i++) await sc.incr('counter');
    await sc.set('later', 'yes');
    const again = await sync(['-s', source.url, '-t', target.url, '--exit-after-full-sync'], 20_000);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('resumed with a partial resync');
    expect(again.stderr).not.toContain('phase: full-sync');
    expect(again.stderr).toMatch(/caught up with the source/);
    const tc = target.client();
    expect(await tc.get('counter')).toBe('200');
    expect(await tc.get('later')).toBe('yes');
    expect(await digestWithoutReserved(tc)).toBe(await digestWithoutReserved(sc));
  });
});
