/**
 * `replicant verify` against real servers with DEBUG allowed: the digest fast path, the
 * key-by-key pass (DEBUG DIGEST-VALUE), each kind of difference, filters, exit codes, and
 * --settle telling lag from a real difference.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { populate } from '../helpers/dataset.js';
import { replicate, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startSentinel } from '../helpers/sentinel.js';
import { parseKeyspace } from '../../src/verify/capabilities.js';
import { dumpVersion } from '../../src/verify/check.js';
import { nextStreamId } from '../../src/verify/pair.js';
import { Sampler, parseSample } from '../../src/verify/sample.js';
import { Verifier } from '../../src/verify/verifier.js';

const BIN_KEY = Buffer.from([0xff, 0x00, 0x80, 0x0a]);

const servers: RedisServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

async function server(args: string[] = []): Promise<RedisServer> {
  const s = await startRedis({ args });
  servers.push(s);
  return s;
}

/** Run `replicant verify` to its exit. */
async function verify(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runCli(['verify', '--log-level', 'warn', ...args]);
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr };
}

/** A source with every type in dbs 0, 1 and 5, TTLs and binary keys, and its copy. */
async function equalPair(targetArgs: string[] = []): Promise<{ source: RedisServer; target: RedisServer }> {
  const source = await server();
  const target = await server(targetArgs);
  const src = source.client();
  await populate(src, { seed: 11, bigElements: 1500, smallKeys: 150, bigStringBytes: 100_000, functions: false });
  await src.set(BIN_KEY, Buffer.from([0, 1, 2, 0xfe]));
  await src.pexpire(BIN_KEY, 3_600_000);
  await replicate(source, target);
  return { source, target };
}

describe('replicant verify (DEBUG allowed)', () => {
  it('equal datasets: exit 0 by whole-dataset digest, and key by key with the checkpoint key ignored', async () => {
    const { source, target } = await equalPair();
    const total = Number(await source.client().dbsize()) + Number(await source.client(1).dbsize()) + Number(await source.client(5).dbsize());

    const fast = await verify(['-s', source.url, '-t', target.url, '--json']);
    expect(fast.stderr).toBe('');
    expect(fast.code).toBe(0);
    const fr = JSON.parse(fast.stdout);
    expect(fr.method).toBe('digest');
    expect(fr.summary.compared).toBe(total);
    expect(fr.dbs).toEqual([0, 1, 5]);

    // Replicant's checkpoint on the target is not part of the data: still equal, key by key.
    await target.client().set('__replicant:checkpoint:x', '{"offset":1}');
    await target.client().hset('__replicant:syncs', 'x', '{}');
    const slow = await verify(['-s', source.url, '-t', target.url, '--json', '--batch', '97']);
    expect(slow.code).toBe(0);
    const sr = JSON.parse(slow.stdout);
    expect(sr.method).toBe('keys');
    expect(sr.fingerprint).toBe('digest-value');
    expect(sr.expiry).toBe('pexpiretime');
    expect(sr.summary).toMatchObject({ compared: total, equal: total, missing: 0, extra: 0, value: 0, type: 0, ttl: 0 });

    const text = await verify(['-s', source.url, '-t', target.url, '--no-digest']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^keys compared\s+\d+$/m);
    expect(text.stdout).toMatch(/EQUAL/);
  });

  it('names a missing key, an extra key, a changed value, a changed TTL and a different type (exit 8)', async () => {
    const { source, target } = await equalPair();
    const t = target.client();
    const t1 = target.client(1);
    await t.del('big:list'); // missing
    await t1.set('only:on:target', 'x'); // extra, in db 1
    await t.hset('big:hash', 'field-7', 'changed'); // value
    await t.pexpire('int:neg', 60_000); // ttl (none on the source)
    await t.del('empty:string');
    await t.rpush('empty:string', 'now a list'); // type
    await t.del(BIN_KEY); // missing, binary name

    const r = await verify(['-s', source.url, '-t', target.url, '--json']);
    expect(r.code).toBe(8);
    const j = JSON.parse(r.stdout);
    expect(j.equal).toBe(false);
    expect(j.summary).toMatchObject({ missing: 2, extra: 1, value: 1, type: 1, ttl: 1 });
    const byKey = new Map<string, { kind: string; db: number; detail: string }>(j.differences.map((d: { keyBase64: string }) => [Buffer.from(d.keyBase64, 'base64').toString('latin1'), d]));
    expect(byKey.get('big:list')).toMatchObject({ kind: 'missing', db: 0 });
    expect(byKey.get('only:on:target')).toMatchObject({ kind: 'extra', db: 1 });
    expect(byKey.get('big:hash')).toMatchObject({ kind: 'value', db: 0 });
    expect(byKey.get('big:hash')!.detail).toMatch(/field-7/);
    expect(byKey.get('int:neg')).toMatchObject({ kind: 'ttl' });
    expect(byKey.get('empty:string')).toMatchObject({ kind: 'type', detail: 'string on source, list on target' });
    expect(byKey.get(BIN_KEY.toString('latin1'))).toMatchObject({ kind: 'missing' });

    const text = await verify(['-s', source.url, '-t', target.url]);
    expect(text.code).toBe(8);
    expect(text.stdout).toMatch(/missing on target\s+"big:list"/);
    expect(text.stdout).toMatch(/extra on target\s+"only:on:target"/);
    expect(text.stdout).toMatch(/different value\s+"big:hash"/);
    expect(text.stdout).toMatch(/different TTL\s+"int:neg"/);
    expect(text.stdout).toMatch(/different type\s+"empty:string"/);
    expect(text.stdout).toContain('"\\xff\\x00\\x80\\x0a"  string only on source');
    expect(text.stdout).toMatch(/DIFFERENT: 6 differences/);

    // Filters: db 1 holds only the extra key; a glob picks one key; --max-diffs limits the examples.
    const db1 = JSON.parse((await verify(['-s', source.url, '-t', target.url, '--json', '--db', '1'])).stdout);
    expect(db1.summary).toMatchObject({ missing: 0, extra: 1, value: 0, type: 0, ttl: 0 });
    const glob = await verify(['-s', source.url, '-t', target.url, '--json', '--key', 'big:*']);
    expect(glob.code).toBe(8);
    expect(JSON.parse(glob.stdout).summary).toMatchObject({ missing: 1, extra: 0, value: 1, type: 0, ttl: 0 });
    const few = JSON.parse((await verify(['-s', source.url, '-t', target.url, '--json', '--max-diffs', '2'])).stdout);
    expect(few.differences).toHaveLength(2);
    expect(few.summary.missing + few.summary.extra + few.summary.value + few.summary.type + few.summary.ttl).toBe(6);
  });

  it('finds a consumer-group difference that DEBUG DIGEST cannot see', async () => {
    const { source, target } = await equalPair();
    await target.client().xgroup('SETID', 'stream:g', 'g2', '1100-0');
    const r = await verify(['-s', source.url, '-t', target.url, '--json']);
    expect(r.code).toBe(8);
    const j = JSON.parse(r.stdout);
    expect(j.method).toBe('digest');
    expect(j.summary.value).toBe(1);
    expect(j.differences[0]).toMatchObject({ key: 'stream:g', kind: 'value' });
    expect(j.differences[0].detail).toMatch(/g2.*last-delivered-id/);
  });

  it('after `replicant sync` (commands, checkpoint on the target) the target verifies equal', async () => {
    const source = await server();
    const target = await server();
    await populate(source.client(), { seed: 4, bigElements: 1200, smallKeys: 100, bigStringBytes: 50_000, functions: false });
    const sync = await runCli(['sync', '-s', source.url, '-t', target.url, '--write-mode', 'commands', '--exit-after-full-sync', '--no-progress', '--log-level', 'warn']);
    expect(sync.code).toBe(0);
    expect(await target.client().keys('__replicant:checkpoint:*')).toHaveLength(1);
    const r = await verify(['-s', source.url, '-t', target.url, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    // The sync's checkpoint, its registry entry and its foreign-writes ledger.
    expect(j.summary.reserved).toBe(3);
    expect(j.summary.compared).toBeGreaterThan(300);
    expect(j.summary.equal).toBe(j.summary.compared);
  });

  it('--sample checks about n keys', async () => {
    const { source, target } = await equalPair();
    const r = await verify(['-s', source.url, '-t', target.url, '--json', '--no-digest', '--sample', '20']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.summary.compared).toBeGreaterThan(0);
    expect(j.summary.compared).toBeLessThanOrEqual(20);
    expect(j.sample).toBe('about 20 keys');
  });

  it('--settle re-checks a differing key, so lag that catches up is not reported', async () => {
    const source = await server();
    const target = await server();
    const src = source.client();
    const tgt = target.client();
    for (let i = 0; i < 50; i++) await src.set(`k${i}`, String(i));
    await replicate(source, target);
    await src.set('k7', 'new'); // the target "lags"

    const v = new Verifier({ source: source.url, target: target.url, settleMs: 1500, useDigest: false });
    const run = v.run();
    await waitFor(() => v.status().rechecksPending === 1, 'the difference to be queued for a recheck', 10_000, 10);
    await tgt.set('k7', 'new'); // the lag catches up
    const report = await run;
    expect(report.equal).toBe(true);
    expect(report.summary).toMatchObject({ compared: 50, equal: 50, settled: 1, value: 0 });

    // Without catching up, the recheck confirms it.
    await tgt.set('k8', 'stale');
    const again = await new Verifier({ source: source.url, target: target.url, settleMs: 200, useDigest: false }).run();
    expect(again.equal).toBe(false);
    expect(again.summary).toMatchObject({ value: 1, settled: 0 });
    expect(again.differences[0]!.key.toString()).toBe('k8');
  });

  it('finds the source through Sentinel', async () => {
    const source = await server();
    const target = await server();
    await source.client().set('k', 'v');
    await replicate(source, target);
    const sentinel = await startSentinel({ masterName: 'verifymaster', masterPort: source.port });
    try {
      const r = await verify(['-s', `sentinel://127.0.0.1:${sentinel.port}/verifymaster`, '-t', target.url, '--json']);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.source.address).toBe(`127.0.0.1:${source.port}`);
      expect(j.summary.equal).toBe(1);
      const unknown = await verify(['-s', `sentinel://127.0.0.1:${sentinel.port}/nosuchmaster`, '-t', target.url]);
      expect(unknown.code).toBe(4);
      expect(unknown.stderr).toMatch(/nosuchmaster/);
    } finally {
      await sentinel.stop();
    }
  });

  it('exit codes: 4 for an unreachable source, 5 for an unreachable target, 2 for bad options', async () => {
    const live = await server();
    const dead = 'redis://127.0.0.1:1';
    const s = await verify(['-s', dead, '-t', live.url]);
    expect(s.code).toBe(4);
    expect(s.stderr).toMatch(/source 127\.0\.0\.1:1/);
    const t = await verify(['-s', live.url, '-t', dead]);
    expect(t.code).toBe(5);
    expect(t.stderr).toMatch(/target 127\.0\.0\.1:1/);
    const bad = await verify(['-s', live.url, '-t', live.url, '--sample', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--sample/);
    expect((await verify(['-s', live.url])).code).toBe(2);
    expect((await verify(['-s', live.url, '-t', live.url, '--db', 'x'])).code).toBe(2);
  });
});

describe('verify helpers', () => {
  it('parses --sample as a count, a fraction or a percentage, and rejects the rest', () => {
    expect(parseSample('1000')).toEqual({ kind: 'count', n: 1000 });
    expect(parseSample('0.25')).toEqual({ kind: 'fraction', f: 0.25 });
    expect(parseSample('5%')).toEqual({ kind: 'fraction', f: 0.05 });
    for (const bad of ['0', '0.0', '1.5', '150%', '-3', 'x', '']) expect(() => parseSample(bad)).toThrow(/--sample/);
  });

  it('samples at the expected rate and never past a count', () => {
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const f = new Sampler({ kind: 'fraction', f: 0.1 }, 0, random);
    let taken = 0;
    for (let i = 0; i < 10_000; i++) if (f.take()) taken++;
    expect(taken).toBeGreaterThan(800);
    expect(taken).toBeLessThan(1200);
    const c = new Sampler({ kind: 'count', n: 50 }, 100, random);
    taken = 0;
    for (let i = 0; i < 1000; i++) if (c.take()) taken++;
    expect(taken).toBe(50);
    expect(c.done).toBe(true);
  });

  it('steps stream ids, reads INFO keyspace and DUMP trailers', () => {
    expect(nextStreamId('5-0')).toBe('5-1');
    expect(nextStreamId('5-18446744073709551615')).toBe('6-0');
    expect([...parseKeyspace('# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\ndb12:keys=7,expires=0,avg_ttl=0\r\n')]).toEqual([[0, 2], [12, 7]]);
    expect(dumpVersion(Buffer.from('00c0010a002678e7b6d10111fc', 'hex'))).toBe(10);
  });
});
