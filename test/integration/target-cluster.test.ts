import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { encodeCommands } from '../../src/resp/encode.js';
import { ClusterTargetWriter, keySlot, TargetCommandError, TargetError } from '../../src/writer/index.js';
import { startCluster, type RedisCluster } from '../helpers/cluster.js';
import { startRedis, waitFor } from '../helpers/redis.js';

let cluster: RedisCluster;
let admins: Redis[];
const writers: ClusterTargetWriter[] = [];
const open = async (opts: Parameters<typeof ClusterTargetWriter.connect>[1] = {}) => {
  const w = await ClusterTargetWriter.connect(cluster.seed, opts);
  writers.push(w);
  return w;
};
const slotOf = (k: string) => keySlot(Buffer.from(k));
/** Total keys over all masters. */
const totalKeys = async () => (await Promise.all(admins.map((a) => a.dbsize()))).reduce((a, b) => a + b, 0);
/** The admin client of the master that owns `slot`. */
async function ownerOf(slot: number): Promise<{ admin: Redis; id: string; index: number }> {
  for (let i = 0; i < admins.length; i++) {
    const slots = (await admins[i]!.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
    for (const [a, b, [, port, id]] of slots) {
      if (slot >= a && slot <= b) {
        const index = cluster.nodes.findIndex((n) => n.port === port);
        return { admin: admins[index]!, id, index };
      }
    }
  }
  throw new Error(`slot ${slot} has no owner`);
}
const nodeId = async (a: Redis) => (await a.call('CLUSTER', 'MYID')) as string;

beforeAll(async () => {
  cluster = await startCluster(3);
  admins = cluster.nodes.map((n) => n.client());
});
afterAll(async () => {
  for (const w of writers) w.destroy();
  await cluster?.stop();
});
beforeEach(async () => {
  await Promise.all(admins.map((a) => a.flushall()));
});

describe('ClusterTargetWriter', () => {
  it('refuses a standalone target', async () => {
    const plain = await startRedis();
    try {
      await expect(ClusterTargetWriter.connect({ host: '127.0.0.1', port: plain.port })).rejects.toThrow(/is not a cluster \(cluster_enabled:0\)/);
    } finally {
      await plain.stop();
    }
  });

  it('routes pipelined units by slot and reports offsets in order', async () => {
    const w = await open();
    expect(w.masters).toHaveLength(3);
    expect(w.info.cluster).toBe(true);
    const seen: number[] = [];
    w.on('applied', (o) => seen.push(o));
    const N = 30_000;
    const B = 500;
    for (let i = 0; i < N; i += B) {
      const cmds = Array.from({ length: B }, (_, j) => ['SET', `key:${i + j}`, `val:${i + j}`]);
      if (!w.submit({ payload: encodeCommands(cmds), count: B, offset: i + B })) await w.waitDrain();
    }
    await w.flush();
    expect(seen).toEqual(Array.from({ length: N / B }, (_, k) => (k + 1) * B));
    expect(w.appliedOffset).toBe(N);
    expect(await totalKeys()).toBe(N);
    // Every master got a share, and each key sits on the master of its slot.
    for (const a of admins) expect(await a.dbsize()).toBeGreaterThan(N / 10);
    const c = cluster.client();
    for (let i = 0; i < N; i += 997) expect(await c.get(`key:${i}`)).toBe(`val:${i}`);
    await w.close();
  });

  it('submitCommand batches per node; splits cross-slot DEL/MSET; broadcasts FLUSHALL', async () => {
    const w = await open();
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    expect(new Set(keys.map(slotOf)).size).toBeGreaterThan(1);
    w.submitCommand(['MSET', ...keys.flatMap((k) => [k, `v-${k}`])], 1);
    w.submitCommand(['RPUSH', 'list', 'x', 'y'], 2);
    w.submitCommand(['DEL', 'a', 'c', 'e']);
    w.submitCommand(['SET', Buffer.from([0xff, 0, 1]), Buffer.alloc(100_000, 1)], 3);
    await w.flush();
    expect(w.appliedOffset).toBe(3);
    const c = cluster.client();
    expect(await c.get('b')).toBe('v-b');
    expect(await c.exists('a')).toBe(0);
    expect(await c.exists('c')).toBe(0);
    expect(await c.lrange('list', 0, -1)).toEqual(['x', 'y']);
    expect(await totalKeys()).toBe(5);
    w.submitCommand(['FLUSHALL'], 4);
    await w.flush();
    expect(await totalKeys()).toBe(0);
    expect(await w.call(['SET', 'k', '1'])).toBe('OK');
    expect(await w.call(['INCR', 'k'])).toBe(2);
    await w.close();
  });

  it('applies single-slot atomic units and refuses multi-slot ones', async () => {
    const w = await open();
    w.submit({ payload: encodeCommands([['SET', '{u1}a', '1'], ['INCR', '{u1}a'], ['SET', '{u1}ckpt', '42']]), count: 3, atomic: true, offset: 42 });
    await w.flush();
    expect(w.appliedOffset).toBe(42);
    const c = cluster.client();
    expect(await c.get('{u1}a')).toBe('2');
    expect(() => w.submit({ payload: encodeCommands([['SET', 'a', '1'], ['SET', 'b', '1']]), count: 2, atomic: true, offset: 43 }))
      .toThrow(new RegExp(`atomic unit completing offset 43 touches slots (${slotOf('a')}, ${slotOf('b')}|${slotOf('b')}, ${slotOf('a')}); a transaction must stay within one slot`));
    await w.close();
  });

  it('reports a CROSSSLOT command under skip and goes on', async () => {
    const w = await open({ onError: 'skip' });
    const errs: TargetCommandError[] = [];
    w.on('commandError', (e) => errs.push(e));
    w.submitCommand(['SUNIONSTORE', 'dest', 'a', 'b'], 1);
    w.submitCommand(['SET', 'after', '1'], 2);
    await w.flush();
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatchObject({ command: 'SUNIONSTORE', key: 'dest' });
    expect(errs[0]!.reply).toMatch(/^CROSSSLOT/);
    expect(w.appliedOffset).toBe(2);
    expect(await cluster.client().get('after')).toBe('1');
    await w.close();
  });

  it('follows MOVED after a slot changed owner, re-sending only the moved commands', async () => {
    const w = await open({ onError: 'fail' });
    const fatal: TargetError[] = [];
    w.on('error', (e) => fatal.push(e));
    const key = 'moving-key';
    const slot = slotOf(key);
    const from = await ownerOf(slot);
    const to = admins[(from.index + 1) % admins.length]!;
    const toId = await nodeId(to);
    // Hand the (empty) slot to another master behind the writer's back.
    for (const a of admins) await a.call('CLUSTER', 'SETSLOT', slot, 'NODE', toId);
    await from.admin.config('RESETSTAT');
    const seen: number[] = [];
    w.on('applied', (o) => seen.push(o));
    w.submit({ payload: encodeCommands([['SET', 'other', '1'], ['SET', key, 'v1'], ['RPUSH', `{${key}}l`, 'a']]), count: 3, offset: 100 });
    w.submitCommand(['RPUSH', `{${key}}l`, 'b'], 101);
    await w.flush();
    expect(fatal).toEqual([]);
    expect(seen).toEqual([100, 101]);
    expect(await to.call('CLUSTER', 'COUNTKEYSINSLOT', slot)).toBe(2);
    expect(await to.get(key)).toBe('v1');
    expect(await to.lrange(`{${key}}l`, 0, -1)).toEqual(['a', 'b']);
    expect(w.stats.errors).toBe(0);
    // The stale table really sent them to the old owner: two commands of the first unit, one of the second.
    expect(await from.admin.info('errorstats')).toMatch(/errorstat_MOVED:count=3\r\n/);
    await w.close();
  });

  it('follows ASK during a slot migration without changing its table', async () => {
    const w = await open({ onError: 'fail' });
    const key = 'asked-key';
    const slot = slotOf(key);
    const from = await ownerOf(slot);
    const to = admins[(from.index + 2) % admins.length]!;
    const toId = await nodeId(to);
    await to.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
    await from.admin.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
    await from.admin.config('RESETSTAT');
    try {
      w.submitCommand(['SET', key, 'v'], 7);
      await w.flush();
      expect(w.appliedOffset).toBe(7);
      expect(await to.call('CLUSTER', 'COUNTKEYSINSLOT', slot)).toBe(1);
      expect(await from.admin.call('CLUSTER', 'COUNTKEYSINSLOT', slot)).toBe(0);
      expect(await from.admin.info('errorstats')).toMatch(/errorstat_ASK:count=1\r\n/);
      // ASK leaves the table alone: the next command of the slot asks the old owner again.
      w.submitCommand(['SET', `{${key}}2`, 'v'], 8);
      await w.flush();
      expect(await from.admin.info('errorstats')).toMatch(/errorstat_ASK:count=2\r\n/);
      expect(await to.call('CLUSTER', 'COUNTKEYSINSLOT', slot)).toBe(2);
    } finally {
      for (const a of admins) await a.call('CLUSTER', 'SETSLOT', slot, 'NODE', from.id);
    }
    await w.close();
  });

  it("fails under 'fail' with the node's error and an 'error' event", async () => {
    const w = await open({ onError: 'fail' });
    const fatal: TargetError[] = [];
    w.on('error', (e) => fatal.push(e));
    const c = cluster.client();
    await c.set('text', 'abc');
    w.submitCommand(['SET', 'ok', '1'], 1);
    w.submitCommand(['INCR', 'text'], 2);
    await expect(w.flush()).rejects.toThrow(/rejected INCR \(key "text"\)/);
    expect(fatal).toHaveLength(1);
    expect(w.appliedOffset).toBe(1);
    expect(() => w.submitCommand(['PING'])).toThrow(TargetCommandError);
  });
});

describe('ClusterTargetWriter: connection loss', () => {
  it("fails as a whole, naming the node, when one master's connection drops", async () => {
    const w = await open();
    const fatal: TargetError[] = [];
    w.on('error', (e) => fatal.push(e));
    w.submitCommand(['SET', 'x', '1'], 1);
    await w.flush();
    await admins[1]!.client('KILL', 'TYPE', 'normal');
    await waitFor(() => fatal.length > 0, 'cluster writer error', 5000, 10);
    expect(fatal[0]!.message).toBe(`target 127.0.0.1:${cluster.nodes[1]!.port}: connection closed by the target`);
    expect(w.appliedOffset).toBe(1);
    await expect(w.flush()).rejects.toBe(fatal[0]);
  });
});
