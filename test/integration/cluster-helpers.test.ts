/**
 * The cluster test helpers against real redis-server 7.0 nodes: a 2-master cluster with a replica
 * each, a slot migration while a cluster client writes through ASK, a failover, a new master; and
 * what MIGRATE puts in the replication streams of both shards (the facts the MigrationGuard relies on).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../src/commands/slot.js';
import { addMaster, admin, clusterNodes, failover, masters, migrateSlot, nodeId, ownerOf, replicasOf, startCluster, tapReplicationStream, type RedisCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/redis.js';

/** `n` keys sharing one hash tag, so one slot. */
const tagged = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `{${tag}}:${i}`);

describe('cluster helpers', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startCluster({ masters: 2, replicasPerMaster: 1, password: 'pw' });
  }, 60_000);
  afterAll(async () => { await cluster?.stop(); });

  it('starts 2 masters with a replica each, every slot covered', async () => {
    const ms = await masters(cluster);
    expect(ms.map((m) => m.port)).toEqual([cluster.nodes[0]!.port, cluster.nodes[1]!.port]);
    for (const m of ms) {
      const rs = await replicasOf(cluster, m);
      expect(rs).toHaveLength(1);
      expect(rs[0]!.port).not.toBe(m.port);
    }
    const view = await clusterNodes(cluster.nodes[0]!);
    const covered = view.filter((n) => n.master).flatMap((n) => n.slots).reduce((sum, [a, b]) => sum + b - a + 1, 0);
    expect(covered).toBe(16384);
    const c = cluster.client();
    await c.set('hello', 'world');
    expect(await c.get('hello')).toBe('world');
  });

  it('migrates a slot with many keys in batches while a cluster client writes through ASK', async () => {
    const keys = tagged('mig', 250);
    const slot = keySlot(Buffer.from(keys[0]!));
    const from = await ownerOf(cluster, slot);
    const to = (await masters(cluster)).find((m) => m !== from)!;
    const c = cluster.client();
    for (const k of keys) await c.set(k, `v:${k}`);
    const during: string[] = [];
    const moved = await migrateSlot(cluster, slot, from, to, {
      batch: 60,
      onBatch: async (n) => {
        // Mid-migration: a new key (ASK to the importing node), a moved key read and an existing one updated.
        const k = `{mig}:new:${n}`;
        await c.set(k, 'new');
        during.push(k);
        expect(await c.get(keys[0]!)).toBe(`v:${keys[0]}`);
        await c.append(keys[keys.length - 1]!, '+');
      },
    });
    expect(moved).toBe(250);
    expect(during).toHaveLength(5); // 250 keys by 60: 5 batches
    expect(await ownerOf(cluster, slot)).toBe(to);
    expect(await admin(from).call('CLUSTER', 'COUNTKEYSINSLOT', String(slot))).toBe(0);
    expect(await admin(to).call('CLUSTER', 'COUNTKEYSINSLOT', String(slot))).toBe(250 + during.length);
    for (const k of during) expect(await c.get(k)).toBe('new');
    // Appended once per batch, wherever the key was at the time.
    expect(await c.get(keys[keys.length - 1]!)).toBe(`v:${keys[keys.length - 1]}+++++`);
  }, 60_000);

  it('shows what MIGRATE propagates: DEL of the batch on the source, RESTORE-ASKING per key on the destination', async () => {
    const keys = tagged('facts', 3);
    const slot = keySlot(Buffer.from(keys[0]!));
    const from = await ownerOf(cluster, slot);
    const to = (await masters(cluster)).find((m) => m !== from)!;
    const src = admin(from);
    await src.set(keys[0]!, 'a');
    await src.set(keys[1]!, 'b', 'PX', 100_000);
    await src.rpush(keys[2]!, 'x', 'y');
    const tapFrom = await tapReplicationStream(from, 'pw');
    const tapTo = await tapReplicationStream(to, 'pw');
    try {
      await migrateSlot(cluster, slot, from, to, { batch: 2 });
      await waitFor(() => tapTo.text().length >= 3 && tapFrom.text().length >= 2, 'both streams to carry the migration', 10_000, 50);
      // One DEL per MIGRATE call, naming every key of the batch (MIGRATE itself is never propagated).
      const dels = tapFrom.text();
      expect(dels).toHaveLength(2);
      expect(dels.every((l) => l.startsWith('DEL {facts}:'))).toBe(true);
      expect(dels.map((l) => l.split(' ').length - 1)).toEqual([2, 1]);
      // RESTORE-ASKING key ttl payload, verbatim as MIGRATE sent it; a TTL is made absolute (ABSTTL).
      const restores = tapTo.commands.filter((c) => c[0]!.toString() === 'RESTORE-ASKING');
      expect(restores.map((c) => c[1]!.toString()).sort()).toEqual([...keys].sort());
      const withTtl = restores.find((c) => c[1]!.toString() === keys[1])!;
      expect(withTtl.slice(4).map(String)).toEqual(['ABSTTL']);
      expect(Number(withTtl[2]!.toString())).toBeGreaterThan(Date.now());
      for (const c of restores.filter((r) => r !== withTtl)) {
        expect(c[2]!.toString()).toBe('0');
        expect(c).toHaveLength(4);
      }
    } finally {
      tapFrom.close();
      tapTo.close();
    }
  }, 30_000);

  it('shows MIGRATE COPY propagates nothing on the source, REPLACE adds REPLACE (before ABSTTL), and a refused key is not deleted', async () => {
    const [k1, k2, k3] = tagged('copy', 3) as [string, string, string];
    const slot = keySlot(Buffer.from(k1));
    const from = await ownerOf(cluster, slot);
    const to = (await masters(cluster)).find((m) => m !== from)!;
    const src = admin(from);
    const dst = admin(to);
    await src.set(k1, 'one', 'PX', 100_000);
    await src.set(k2, 'two');
    await src.set(k3, 'three');
    const tapFrom = await tapReplicationStream(from, 'pw');
    const tapTo = await tapReplicationStream(to, 'pw');
    await dst.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', await nodeId(from));
    const migrate = (...rest: string[]) => src.call('MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'AUTH', 'pw', ...rest);
    try {
      expect(await migrate('COPY', 'KEYS', k2)).toBe('OK');
      expect(await migrate('REPLACE', 'KEYS', k1)).toBe('OK');
      // k2 is already on the destination: without REPLACE the batch stops there (k3 went first).
      await expect(migrate('KEYS', k3, k2)).rejects.toThrow(/BUSYKEY/);
      await waitFor(() => tapTo.text().length >= 3 && tapFrom.text().length >= 2, 'both streams to carry the migrations', 10_000, 50);
      // Name, key and options: the TTL and the (binary) payload left out.
      const shape = tapTo.commands.filter((c) => c[0]!.toString() === 'RESTORE-ASKING').map((c) => c.filter((_, i) => i !== 2 && i !== 3).map(String).join(' '));
      expect(shape).toEqual([`RESTORE-ASKING ${k2}`, `RESTORE-ASKING ${k1} REPLACE ABSTTL`, `RESTORE-ASKING ${k3}`]);
      expect(tapFrom.text()).toEqual([`DEL ${k1}`, `DEL ${k3}`]);
      expect(await src.exists(k2)).toBe(1);
    } finally {
      tapFrom.close();
      tapTo.close();
      // Back to a stable slot: the copies on the importing node go (ASKING lets DEL reach them).
      for (const k of [k1, k2, k3]) {
        await dst.call('ASKING');
        await dst.del(k);
      }
      await dst.call('CLUSTER', 'SETSLOT', String(slot), 'STABLE');
    }
  }, 30_000);

  it('fails over to a replica and adds a master that can receive a slot', async () => {
    const c = cluster.client();
    await c.set('{fo}k', 'before');
    const slot = keySlot(Buffer.from('{fo}k'));
    const owner = await ownerOf(cluster, slot);
    const promoted = (await replicasOf(cluster, owner))[0]!;
    await failover(cluster, promoted);
    expect(await ownerOf(cluster, slot)).toBe(promoted);
    expect((await replicasOf(cluster, promoted)).map((r) => r.port)).toEqual([owner.port]);
    expect(await admin(promoted).get('{fo}k')).toBe('before');

    const added = await addMaster(cluster);
    expect((await masters(cluster)).map((m) => m.port)).toContain(added.port);
    expect(await migrateSlot(cluster, slot, promoted, added)).toBe(1);
    await waitFor(async () => (await c.get('{fo}k').catch(() => null)) === 'before', 'the cluster client to follow the slot', 10_000, 100);
    expect(await ownerOf(cluster, slot)).toBe(added);
  }, 60_000);
});
