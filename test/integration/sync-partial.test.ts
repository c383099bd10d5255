/**
 * Partial sync against real servers: filters, rename and db map on the snapshot and the stream
 * under a concurrent writer (multi-key commands, transactions), proven by verify with the same
 * selection; a restart with other filters refused; the multi-key policies (fail / skip).
 */
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { SyncOptions } from '../../src/sync/session.js';
import { parseDbMap, type PartialSyncSpec } from '../../src/sync/relay/selection.js';
import { Verifier } from '../../src/verify/verifier.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startCluster } from '../helpers/cluster.js';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
afterEach(async () => {
  for (const s of syncs.splice(0)) await s.stop().catch(() => undefined);
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function pair(): Promise<{ source: RedisServer; target: RedisServer }> {
  const source = await startRedis({ args: ['--enable-debug-command', 'yes'] });
  const target = await startRedis({ args: ['--enable-debug-command', 'yes'] });
  servers.push(source, target);
  return { source, target };
}

function start(source: RedisServer, target: string, opts: Partial<SyncOptions>): RunningSync {
  const s = runSync({ source: source.url, target, ...opts });
  syncs.push(s);
  return s;
}

async function streaming(s: RunningSync): Promise<void> {
  await waitFor(() => s.session.status().phase === 'streaming', 'streaming', 20_000);
}

/** Keys of every type under `prefix` in the client's current db. */
async function fill(c: Redis, prefix: string, n: number): Promise<void> {
  const p = c.pipeline();
  for (let i = 0; i < n; i++) {
    p.set(`${prefix}str:${i}`, `v${i}`);
    p.rpush(`${prefix}list:${i}`, 'a', 'b', 'c');
    p.sadd(`${prefix}set:${i}`, 'x', 'y');
    p.hset(`${prefix}hash:${i}`, 'f', String(i));
    p.zadd(`${prefix}zset:${i}`, i, 'm');
  }
  p.set(`${prefix}ttl`, 'v', 'EX', 3600);
  p.xadd(`${prefix}stream`, '*', 'f', 'v');
  await p.exec();
}

/** A writer mixing kept (app:) and dropped (other:, app:tmp:) keys, with multi-key commands and transactions. */
async function write(c: Redis, round: number): Promise<void> {
  const r = round;
  await c.set(`app:w:${r}`, String(r));
  await c.set(`other:w:${r}`, String(r));
  await c.set(`app:tmp:w:${r}`, String(r));
  await c.mset(`app:m:${r}`, '1', `other:m:${r}`, '2', `app:tmp:m:${r}`, '3');
  await c.del(`app:str:${r}`, `other:str:${r}`);
  await c.multi().incr('app:counter').incr('other:counter').sadd(`app:set:${r}`, 'z').exec();
  await c.set(`app:ren:${r}`, 'r');
  await c.rename(`app:ren:${r}`, `app:renamed:${r}`); // kept -> kept
  await c.rename(`app:list:${r}`, `other:list:${r}`); // kept -> dropped: a DEL on the target
  await c.smove(`app:set:${r}`, `other:set:${r}`, 'x'); // an SREM
  await c.lmove(`app:list:${r + 1}`, `other:l:${r}`, 'LEFT', 'RIGHT'); // an LPOP
  await c.sunionstore(`app:union:${r}`, `app:set:${r}`, `app:set:${r + 1}`); // every key kept
  await c.sunionstore(`other:union:${r}`, `app:set:${r}`, `other:set:${r}`); // into a dropped key: nothing
  await c.copy(`app:hash:${r}`, `app:hcopy:${r}`);
  await c.hincrby(`app:hash:${r}`, 'f', 10);
  await c.expire(`app:zset:${r}`, 3600);
}

async function keysOf(c: Redis, db: number): Promise<string[]> {
  await c.select(db);
  const keys = (await c.keys('*')).filter((k) => !k.startsWith('__replicant')).sort();
  await c.select(0);
  return keys;
}

async function verify(source: RedisServer, target: RedisServer, dbs: number[] | undefined, partial: PartialSyncSpec) {
  return new Verifier({ source: source.url, target: target.url, useDigest: false, ...(dbs ? { dbs } : {}), partial }).run();
}

describe('partial sync', () => {
  it('copies exactly the filtered image (snapshot and stream, multi-key commands, transactions); verify with the same filters proves it', async () => {
    const { source, target } = await pair();
    const src = source.client();
    for (const db of [0, 3, 4]) {
      await src.select(db);
      await fill(src, 'app:', 20);
      await fill(src, 'other:', 5);
      await fill(src, 'app:tmp:', 3);
    }
    await src.select(0);
    const spec: PartialSyncSpec = { dbs: [0, 3], keys: ['app:*'], excludes: ['app:tmp:*'] };
    const sync = start(source, target.url, { partial: spec, onError: 'fail' });
    await streaming(sync);
    for (let r = 0; r < 10; r++) {
      await src.select(r % 2 === 0 ? 0 : 3);
      await write(src, r);
    }
    await src.select(4);
    await write(src, 5); // a dropped db: nothing of it reaches the target
    await src.select(0);
    await waitCaughtUp(sync.session, src);
    expect(sync.session.status()).toMatchObject({ skippedCommands: 0, complete: true, fullSyncs: 1 });

    const report = await verify(source, target, spec.dbs as number[], { keys: spec.keys, excludes: spec.excludes });
    expect(report.differences).toEqual([]);
    expect(report.equal).toBe(true);
    expect(report.summary.compared).toBeGreaterThan(200);
    // Nothing outside the filter is on the target.
    const tgt = target.client();
    for (const db of [0, 3]) {
      const keys = await keysOf(tgt, db);
      expect(keys.length).toBeGreaterThan(100);
      expect(keys.filter((k) => !k.startsWith('app:') || k.startsWith('app:tmp:'))).toEqual([]);
    }
    expect(await keysOf(tgt, 4)).toEqual([]);
    // Rounds alternate between db 0 and db 3: five transactions each.
    expect(await tgt.get('app:counter')).toBe('5');
    expect(await tgt.exists('app:list:2', 'app:ren:2')).toBe(0);
    expect(await tgt.get('app:renamed:2')).toBe('r');
    // The unfiltered comparison does see the keys left out (the check can fail).
    const whole = await verify(source, target, undefined, {});
    expect(whole.equal).toBe(false);
    expect(whole.summary.missing).toBeGreaterThan(50);
  });

  it('--type: a command that cannot be decided stops the sync under --on-error fail (exit 3, named)', async () => {
    const { source, target } = await pair();
    const src = source.client();
    await fill(src, 'k:', 5);
    const sync = start(source, target.url, { partial: { types: ['hash', 'zset'] }, onError: 'fail' });
    await streaming(sync);
    await src.zunionstore('k:zu', 2, 'k:zset:1', 'k:set:1'); // sets are not kept: the result cannot be rebuilt
    await expect(sync.done).rejects.toMatchObject({ exitCode: 3, message: expect.stringMatching(/ZUNIONSTORE in db 0 at offset \d+ cannot be applied exactly.*may be sets/) });
    expect(await target.client().exists('k:zu')).toBe(0);
  });

  it('--type keeps exactly the source keys of those types through overwrites, renames, copies, stores and RESTORE; verify --type proves it', async () => {
    const { source, target } = await pair();
    const src = source.client();
    await fill(src, 'k:', 40);
    const spec: PartialSyncSpec = { types: ['hash', 'zset'] };
    const sync = start(source, target.url, { partial: spec, onError: 'fail' });
    await streaming(sync);
    for (let r = 0; r < 10; r++) {
      await src.hset(`k:hash:${r}`, 'live', String(r));
      await src.set(`k:hash:${r + 10}`, 'now a string'); // a kept hash replaced by a string: gone from the image
      await src.rename(`k:hash:${r + 20}`, `k:moved:${r}`); // kept type: renamed on the target
      await src.rename(`k:str:${r}`, `k:zset:${r + 10}`); // a string over a kept zset: deleted there
      await src.copy(`k:zset:${r}`, `k:zcopy:${r}`);
      await src.copy(`k:list:${r}`, `k:zset:${r + 20}`, 'REPLACE'); // a list replaces a zset
      await src.multi().zadd(`k:z:${r}`, r, 'm').lpush(`k:l:${r}`, 'x').hincrby('k:counter', 'n', 1).exec();
      await src.sunionstore(`k:hash:${r + 30}`, `k:set:${r}`, `k:set:${r + 1}`); // a set over a hash
      await src.restore(`k:restored:${r}`, 0, (await src.dumpBuffer(`k:list:${r + 30}`))!); // a list by RESTORE: not copied
      await src.restore(`k:rz:${r}`, 0, (await src.dumpBuffer(`k:zset:${r + 30}`))!); // a zset: copied
    }
    await waitCaughtUp(sync.session, src);
    expect(sync.session.status()).toMatchObject({ skippedCommands: 0, fullSyncs: 1 });

    const report = await verify(source, target, undefined, spec);
    expect(report.differences).toEqual([]);
    expect(report.equal).toBe(true);
    expect(report.summary.compared).toBe(71);
    expect(report.summary.otherTypes).toBeGreaterThan(100);
    const tgt = target.client();
    const types = new Set<string>();
    for (const k of await keysOf(tgt, 0)) types.add(await tgt.type(k));
    expect([...types].sort()).toEqual(['hash', 'zset']);
    expect(await tgt.exists('k:hash:15', 'k:hash:35', 'k:hash:23', 'k:zset:15', 'k:zset:25', 'k:restored:1')).toBe(0);
    expect(await tgt.hget('k:counter', 'n')).toBe('10');
    expect(await tgt.hget('k:moved:3', 'f')).toBe('23');
    expect(await tgt.hget('k:hash:4', 'live')).toBe('4');
    expect(await tgt.zcard('k:zcopy:4')).toBe(1);
    expect(await tgt.zcard('k:rz:4')).toBe(1);
    // Without --type the same comparison sees the strings, lists, sets and streams left out.
    const whole = await verify(source, target, undefined, {});
    expect(whole.summary.missing).toBeGreaterThan(100);
  });

  it('renames a key prefix and maps dbs on the snapshot and the stream; verify compares the renamed image', async () => {
    const { source, target } = await pair();
    const src = source.client();
    for (const db of [3, 4]) {
      await src.select(db);
      await fill(src, 'app:', 10);
      await fill(src, 'other:', 3);
    }
    const spec: PartialSyncSpec = { dbs: [3, 4], keys: ['app:*'], renamePrefix: ['app:', 'new:'], dbMap: parseDbMap('3:0,4:1') };
    const sync = start(source, target.url, { partial: spec, onError: 'fail' });
    await streaming(sync);
    for (let r = 0; r < 6; r++) {
      await src.select(r % 2 === 0 ? 3 : 4);
      await write(src, r);
    }
    await src.select(3);
    await src.move('app:hash:9', 4);
    await src.copy('app:zset:8', 'app:zcopy', 'DB', 4);
    await src.swapdb(3, 4);
    await src.select(4);
    await src.set('app:after-swap', 'x');
    await waitCaughtUp(sync.session, src);
    expect(sync.session.status()).toMatchObject({ skippedCommands: 0, complete: true });
    const tgt = target.client();
    const t0 = await keysOf(tgt, 0);
    expect(t0.length).toBeGreaterThan(30);
    expect(t0.every((k) => k.startsWith('new:'))).toBe(true);
    expect(await keysOf(tgt, 3)).toEqual([]);
    // After SWAPDB 3 4 (SWAPDB 0 1 on the target), source db 4 holds what db 3 had: target db 1.
    await tgt.select(1);
    expect(await tgt.get('new:after-swap')).toBe('x');
    await tgt.select(0);
    const report = await verify(source, target, [3, 4], { keys: spec.keys, renamePrefix: spec.renamePrefix, dbMap: spec.dbMap });
    expect(report.differences).toEqual([]);
    expect(report.equal).toBe(true);
    expect(report.summary.compared).toBeGreaterThan(60);
    // A verify without the rename does not find the renamed keys.
    expect((await verify(source, target, [3, 4], { keys: spec.keys, dbMap: spec.dbMap })).equal).toBe(false);
  });

  it('refuses a restart with other filters; --accept-filter-change copies again', async () => {
    const { source, target } = await pair();
    const src = source.client();
    await fill(src, 'app:', 5);
    await fill(src, 'other:', 5);
    const first = start(source, target.url, { partial: { keys: ['app:*'] } });
    await streaming(first);
    await src.set('app:late', '1');
    await waitCaughtUp(first.session, src);
    // The registry entry names the filters too, for whoever looks at the target.
    const reg = await target.client().hgetall('__replicant:syncs');
    expect(Object.values(reg).join()).toMatch(/"filter":"\{.*app:\*/);
    await first.stop();

    const changed = runSync({ source: source.url, target: target.url, partial: { keys: ['other:*'] } });
    await expect(changed.done).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/checkpoint of sync .* was made with other filters .*app:\*.*other:\*.*--accept-filter-change/s) });

    // The same filters resume without copying again.
    const same = start(source, target.url, { partial: { keys: ['app:*'] } });
    await streaming(same);
    await src.set('app:later', '2');
    await waitCaughtUp(same.session, src);
    expect(same.session.status()).toMatchObject({ fullSyncs: 0, partialSyncs: 1 });
    await same.stop();

    const accepted = start(source, target.url, { partial: { keys: ['other:*'] }, acceptFilterChange: true });
    await streaming(accepted);
    expect(accepted.session.status().fullSyncs).toBe(1);
    const tgt = target.client();
    // The target held only this sync's keys: it was flushed, so no app: key is left behind.
    expect((await keysOf(tgt, 0)).filter((k) => k.startsWith('app:'))).toEqual([]);
    expect(await tgt.exists('other:str:1')).toBe(1);
  });

  it('multi-key commands that cannot be reduced exactly: skipped and counted under skip, named and fatal (exit 3) under fail', async () => {
    const { source, target } = await pair();
    const src = source.client();
    const tgt = target.client();
    await src.sadd('app:s', 'a');
    await src.sadd('other:s', 'b');
    await src.rpush('other:l', 'x', 'y');
    const spec: PartialSyncSpec = { keys: ['app:*'], excludeCommands: ['FLUSHALL'] };
    const sync = start(source, target.url, { partial: spec, onError: 'skip' });
    await streaming(sync);
    await src.sunionstore('app:u', 'app:s', 'other:s'); // reads a dropped key
    await src.set('other:r', 'v');
    await src.rename('other:r', 'app:r'); // data arriving from a dropped key
    await src.smove('other:s', 'app:s', 'b');
    await src.lmove('other:l', 'app:l', 'LEFT', 'LEFT');
    await src.copy('other:l', 'app:c');
    await src.flushdb(); // keys are filtered by name: the target may hold others
    await src.set('app:after', '1');
    await src.set('other:after', '1');
    await src.flushall(); // --exclude-command: never relayed
    await src.set('app:last', '1');
    await waitCaughtUp(sync.session, src);
    expect(sync.session.status()).toMatchObject({ skippedCommands: 6, complete: false });
    expect(await tgt.get('app:after')).toBe('1'); // survived the excluded FLUSHALL
    expect(await tgt.get('app:last')).toBe('1');
    expect(await tgt.exists('app:u', 'app:r', 'app:l', 'app:c', 'other:after')).toBe(0);
    await expect(sync.stop()).rejects.toMatchObject({ exitCode: 9 });

    // Under fail the first such command stops the sync, named.
    const other = await pair();
    const strict = start(other.source, other.target.url, { partial: spec, onError: 'fail' });
    await streaming(strict);
    const src2 = other.source.client();
    await src2.sadd('other:s2', 'q');
    await src2.sunionstore('app:u2', 'other:s2');
    await expect(strict.done).rejects.toMatchObject({ exitCode: 3, message: expect.stringMatching(/SUNIONSTORE in db 0 at offset \d+ cannot be applied exactly.*from key "other:s2"/) });
  });

  it('from the command line: sync and verify take the same filters; demo --filter', async () => {
    await ensureBuilt();
    const { source, target } = await pair();
    const src = source.client();
    await fill(src, 'app:', 10);
    await fill(src, 'other:', 10);
    await src.select(2);
    await fill(src, 'app:', 3);
    const filters = ['--db', '0', '--key', 'app:*', '--exclude-key', 'app:set:*'];
    const sync = await runCli(['sync', '-s', source.url, '-t', target.url, ...filters, '--exit-after-full-sync', '--no-progress']);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sync.stderr).toMatch(/"filteredKeys":\d+/);
    expect(sync.stderr).toMatch(/"selection":"\{.*app:\*.*","msg":"partial sync"/);
    const same = await runCli(['verify', '-s', source.url, '-t', target.url, ...filters, '--no-progress']);
    expect(same.code, same.stdout.toString()).toBe(0);
    expect(same.stdout.toString()).toMatch(/selection \{.*"keys":\["app:\*"\].*"excludes":\["app:set:\*"\][\s\S]*EQUAL: the target holds the selected part of the source/);
    const whole = await runCli(['verify', '-s', source.url, '-t', target.url, '--no-progress']);
    expect(whole.code).toBe(8);
    const tgt = target.client();
    expect((await keysOf(tgt, 0)).every((k) => k.startsWith('app:') && !k.startsWith('app:set:'))).toBe(true);
    expect(await keysOf(tgt, 2)).toEqual([]);
    const bad = await runCli(['sync', '-s', source.url, '-t', target.url, '--db-map', '3:0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/source dbs 0 and 3 would both be written to target db 0/);

    const demo = await runCli(['demo', '--keys', '2000', '--duration', '300ms', '--filter', 'demo:[hlz]*'], { timeoutMs: 90_000 });
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stderr).toMatch(/target: 3 keys, 0 outside the filter/);
  });

  it('into a cluster target: a renamed key goes to the slot of its new name, source db 3 mapped to db 0', async () => {
    const source = await startRedis();
    servers.push(source);
    const cluster = await startCluster(3);
    try {
      const src = source.client();
      await src.select(3);
      await fill(src, 'app:', 20);
      await fill(src, 'other:', 5);
      const spec: PartialSyncSpec = { dbs: [3], dbMap: parseDbMap('3:0'), keys: ['app:*'], renamePrefix: ['app:', 'new:'] };
      const sync = start(source, `redis://${cluster.seed.host}:${cluster.seed.port}`, { partial: spec, onError: 'fail', checkpoint: { kind: 'none' } });
      await streaming(sync);
      for (let i = 0; i < 20; i++) {
        await src.incr(`app:c:${i % 5}`);
        await src.set(`other:x:${i}`, 'v');
        await src.del(`app:str:${i}`, `other:str:${i % 5}`);
        await src.multi().incr('app:{t}a').rpush('app:{t}l', String(i)).exec();
      }
      await src.rename('app:{t}a', 'app:{t}b');
      await waitCaughtUp(sync.session, src);
      expect(sync.session.status()).toMatchObject({ skippedCommands: 0, complete: true });
      const tgt = cluster.client();
      const keys = (await src.keys('app:*')).sort();
      expect(keys.length).toBeGreaterThan(80);
      for (const k of keys) {
        const t = `new:${k.slice(4)}`;
        expect([await tgt.type(t), await tgt.pttl(t) > 0], t).toEqual([await src.type(k), (await src.pttl(k)) > 0]);
      }
      expect(await tgt.get('new:{t}b')).toBe('20');
      expect(await tgt.lrange('new:{t}l', 0, -1)).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
      for (const k of ['app:c:1', 'new:str:3', 'other:x:1']) expect(await tgt.exists(k), k).toBe(0);
      expect(await tgt.get('new:c:1')).toBe('4');
    } finally {
      for (const s of syncs.splice(0)) await s.stop().catch(() => undefined);
      await cluster.stop();
    }
  });

  it('a dropped db the target does not have (source with 32 dbs, target with 16) costs nothing', async () => {
    const source = await startRedis({ args: ['--databases', '32'] });
    const target = await startRedis();
    servers.push(source, target);
    const src = source.client();
    await src.set('a', '0');
    const sync = start(source, target.url, { partial: { dbs: [0] }, onError: 'fail' });
    await streaming(sync);
    for (let i = 0; i < 5; i++) {
      await src.select(20);
      await src.set(`far:${i}`, 'v');
      await waitCaughtUp(sync.session, src); // a unit that ends in db 20: its checkpoint write must not SELECT 20
      await src.select(0);
      await src.set(`near:${i}`, 'v');
    }
    await waitCaughtUp(sync.session, src);
    const tgt = target.client();
    expect(await tgt.mget('near:0', 'near:4', 'a')).toEqual(['v', 'v', '0']);
    // FLUSHALL run from db 20 becomes FLUSHDB of db 0 only, then back to a db the target has.
    await src.select(20);
    await src.flushall();
    await src.set('far:again', 'v');
    await src.select(0);
    await src.set('after', '1');
    await waitCaughtUp(sync.session, src);
    expect(sync.session.status()).toMatchObject({ skippedCommands: 0, complete: true });
    expect(await tgt.mget('near:0', 'near:4', 'after', 'a')).toEqual([null, null, '1', null]);
  });
});
