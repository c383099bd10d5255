/**
 * Round trip through real servers: a dataset with every type is SAVEd, then
 * `replicant rdb --format resp dump.rdb | redis-cli --pipe` rebuilds it in an empty server
 * (plain commands, and `--restore` read from stdin). Compared: DEBUG DIGEST, every key's
 * type and PEXPIRETIME, XINFO STREAM FULL of every stream, and FUNCTION LIST WITHCODE.
 * Also: filters against the source's own SCAN MATCH / TYPE, stats against INFO keyspace,
 * and a quiet EPIPE.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { populate } from '../helpers/dataset.js';
import { digest, startRedis, type RedisServer } from '../helpers/redis.js';
import { functionList } from '../helpers/sync.js';
import { CLI, ensureBuilt, runCli, sh } from '../helpers/cli.js';

/** db -> sorted [key(hex), type, pexpiretime] for every key. */
async function keyTable(c: Redis): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (let db = 0; db < 16; db++) {
    await c.select(db);
    const keys: Buffer[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await c.scanBuffer(cursor, 'COUNT', 1000);
      cursor = next.toString();
      keys.push(...batch);
    } while (cursor !== '0');
    if (keys.length === 0) continue;
    const p = c.pipeline();
    for (const k of keys) {
      p.type(k);
      p.call('PEXPIRETIME', k);
    }
    const res = (await p.exec())!;
    out.set(db, keys.map((k, i) => `${k.toString('hex')} ${String(res[2 * i]![1])} ${String(res[2 * i + 1]![1])}`).sort());
  }
  await c.select(0);
  return out;
}

/** Remove `key, value` pairs named in `drop` from a nested XINFO reply. */
function strip(x: unknown, drop: Set<string>): unknown {
  if (!Array.isArray(x)) return x;
  const out: unknown[] = [];
  for (let i = 0; i < x.length; i++) {
    const v: unknown = x[i];
    if (typeof v === 'string' && drop.has(v) && i + 1 < x.length) {
      i++;
      continue;
    }
    out.push(strip(v, drop));
  }
  return out;
}

async function streamInfo(c: Redis, db: number, drop: Set<string>): Promise<Map<string, unknown>> {
  await c.select(db);
  const out = new Map<string, unknown>();
  const keys = (await c.keys('*')).sort();
  for (const k of keys) {
    if ((await c.type(k)) !== 'stream') continue;
    out.set(k, strip(await c.call('XINFO', 'STREAM', k, 'FULL', 'COUNT', '0'), drop));
  }
  await c.select(0);
  return out;
}

/** Extra shapes beyond the shared dataset helper. */
async function addEdgeCases(c: Redis): Promise<void> {
  await c.hset('hash:small', 'a', '1', '', '', 'n', '-7');
  await c.hset('hash:200', ...Array.from({ length: 200 }, (_, i) => [`f${i}`, i % 2 ? `v${i}` : String(i)]).flat());
  await c.sadd('set:200', ...Array.from({ length: 200 }, (_, i) => `s${i}`));
  await c.zadd('zset:200', ...Array.from({ length: 200 }, (_, i) => [String(i * 0.1), `m${i}`]).flat());
  await c.zadd('zset:precise', '0.30000000000000004', 'a', '1e-300', 'b', '-123456789012', 'c', '1e300', 'd');
  await c.set('str:random', randomBytes(3 * 1024 * 1024)); // over the 1 MiB chunk, incompressible
  await c.rpush('list:bigitems', ...Array.from({ length: 50 }, (_, i) => randomBytes(30_000 + i)));
  await c.xadd('stream:alldeleted', '5-1', 'x', 'y');
  await c.xdel('stream:alldeleted', '5-1');
  await c.xadd('stream:setid', '1500-0', 'a', 'b');
  await c.call('XSETID', 'stream:setid', '2000-0', 'ENTRIESADDED', '50', 'MAXDELETEDID', '1600-0');
  // A pending entry whose stream entry is deleted: only RESTORE can reproduce it on 7.0.
  await c.xadd('stream:pdel', '1-1', 'a', '1');
  await c.xadd('stream:pdel', '2-1', 'b', '2');
  await c.xgroup('CREATE', 'stream:pdel', 'g', '0');
  await c.xreadgroup('GROUP', 'g', 'alice', 'COUNT', 2, 'STREAMS', 'stream:pdel', '>');
  await c.xdel('stream:pdel', '1-1');
  await c.select(3);
  await c.set('db3:ttl', 'v', 'PX', 3_600_000);
  await c.xadd('db3:stream', '*', 'k', 'v');
  await c.select(0);
}

describe('replicant rdb --format resp: round trip through redis-server', () => {
  let src: RedisServer;
  let dump: string;
  const servers: RedisServer[] = [];
  let srcKeys: Map<number, string[]>;
  let srcDigest: string;

  beforeAll(async () => {
    const [, s] = await Promise.all([ensureBuilt(), startRedis()]);
    src = s;
    servers.push(src);
    const c = src.client();
    await populate(c, { seed: 7, bigElements: 3000, bigStringBytes: 2 * 1024 * 1024 + 17 });
    await addEdgeCases(c);
    await c.save();
    dump = join(src.dir, 'dump.rdb');
    srcKeys = await keyTable(c);
    srcDigest = await digest(c);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  async function pipeInto(command: string): Promise<{ target: RedisServer; stderr: string }> {
    const target = await startRedis();
    servers.push(target);
    const r = await sh(`${command} | redis-cli -h 127.0.0.1 -p ${target.port} --pipe`);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/errors: 0, replies: \d+/);
    return { target, stderr: r.stderr };
  }

  it('plain commands rebuild the dataset (digest, TTLs, functions, streams except seen-times)', async () => {
    const { target, stderr } = await pipeInto(`node ${CLI} rdb ${dump} --format resp`);
    const t = target.client();
    expect(await digest(t)).toBe(srcDigest);
    expect(await keyTable(t)).toEqual(srcKeys);
    const s = src.client();
    expect(await functionList(t)).toEqual(await functionList(s));
    // Seen-times are set by the target's clock in command mode; radix-tree sizes depend on node packing.
    const drop = new Set(['seen-time', 'radix-tree-keys', 'radix-tree-nodes']);
    for (const db of [0, 3]) {
      const want = await streamInfo(s, db, drop);
      const got = await streamInfo(t, db, drop);
      expect([...got.keys()]).toEqual([...want.keys()]);
      for (const [k, v] of want) {
        if (k === 'stream:pdel') continue;
        expect(got.get(k), `stream ${k}`).toEqual(v);
      }
      expect(want.size).toBeGreaterThan(0);
    }
    // ...and the one thing commands cannot rebuild is reported, not silently dropped.
    expect(stderr).toMatch(/key "stream:pdel" \(db 0\) 1 pending entries refer to deleted stream entries/);
  });

  it('--restore (reading stdin, big keys as commands) rebuilds it exactly, consumer seen-times included', async () => {
    // Keys over 200 kB (list:bigitems, str:random) go as commands: the fallback path.
    const { target, stderr } = await pipeInto(`cat ${dump} | node ${CLI} rdb - --format resp --restore --restore-max-bytes 200000`);
    expect(stderr).toBe('');
    const resp = (await runCli(['rdb', dump, '--format', 'resp', '--restore', '--restore-max-bytes', '200000'])).stdout.toString('latin1');
    expect(resp).toContain('\r\nRESTORE\r\n$11\r\nstream:pdel\r\n');
    expect(resp).toContain('\r\nRPUSH\r\n$13\r\nlist:bigitems\r\n');
    expect(resp).toContain('\r\nSETRANGE\r\n$10\r\nstr:random\r\n');
    const t = target.client();
    const s = src.client();
    expect(await digest(t)).toBe(srcDigest);
    expect(await keyTable(t)).toEqual(srcKeys);
    expect(await functionList(t)).toEqual(await functionList(s));
    const drop = new Set(['radix-tree-keys', 'radix-tree-nodes']);
    for (const db of [0, 3]) expect(await streamInfo(t, db, drop)).toEqual(await streamInfo(s, db, drop));
  });

  it('filters by db, key glob and type exactly like SCAN MATCH / TYPE on the source', async () => {
    // The file last, after variadic options (which must not swallow it).
    const r = await runCli(['rdb', '--key', 'd1:k1[0-4]*', '--type', 'string', 'list', '--db', '1', dump]);
    expect(r.code, r.stderr).toBe(0);
    const got = r.stdout.toString().split('\n').filter((l) => l.includes('"key"')).map((l) => JSON.parse(l) as { db: number; key: string; type: string });
    const c = src.client(1);
    const want: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', 'd1:k1[0-4]*', 'COUNT', 1000);
      cursor = next;
      for (const k of keys) {
        const type = await c.type(k);
        if (type === 'string' || type === 'list') want.push(`${k} ${type}`);
      }
    } while (cursor !== '0');
    expect(want.length).toBeGreaterThan(5);
    expect(got.every((k) => k.db === 1)).toBe(true);
    expect(got.map((k) => `${k.key} ${k.type}`).sort()).toEqual(want.sort());
  });

  it('stats agree with INFO keyspace and list the biggest keys', async () => {
    const r = await runCli(['rdb', dump, '--format', 'stats', '--json', '--top', '5']);
    expect(r.code, r.stderr).toBe(0);
    const stats = JSON.parse(r.stdout.toString()) as { total: { keys: number }; dbs: Record<string, { keys: number; expires: number }>; top: { key: string; bytes: number }[] };
    const info = (await src.client().info('keyspace')).split('\n').filter((l) => l.startsWith('db'));
    let total = 0;
    for (const line of info) {
      const m = /^db(\d+):keys=(\d+),expires=(\d+)/.exec(line)!;
      expect(stats.dbs[m[1]!], `db ${m[1]}`).toMatchObject({ keys: Number(m[2]), expires: Number(m[3]) });
      total += Number(m[2]);
    }
    expect(stats.total.keys).toBe(total);
    expect(stats.top).toHaveLength(5);
    expect(stats.top[0]!.key).toBe('str:random');
    for (let i = 1; i < 5; i++) expect(stats.top[i - 1]!.bytes).toBeGreaterThanOrEqual(stats.top[i]!.bytes);
    const table = await runCli(['rdb', dump, '--format', 'stats']);
    expect(table.stdout.toString()).toMatch(/biggest 10 keys by value bytes:\n\s+\d+\s+string\s+db0\s+1 el\s+str:random/);
  });

  it('stops quietly when the reader goes away (EPIPE)', async () => {
    const r = await sh(`node ${CLI} rdb ${dump} | head -c 1000 > /dev/null; echo "status=\${PIPESTATUS[0]}"`);
    expect(r.stdout).toMatch(/status=0/);
    expect(r.stderr).toBe('');
  });
});
