/**
 * The MigrationGuard on real MIGRATE streams: the replication streams of both shards of a slot
 * migration under a non-idempotent load (INCR, RPUSH, expiries) are recorded, then replayed into
 * a standalone target in adversarial orders (each stream in order, the two interleaved as two
 * independent shard sessions may apply them). Through the guard every order ends equal to the
 * source cluster; without it, applying the destination's stream first loses or doubles data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../src/resp/stream-parser.js';
import { MigrationGuard } from '../../src/sync/cluster/migration-guard.js';
import { keySlot } from '../../src/commands/slot.js';
import { admin, keyImage, masters, migrateSlot, ownerOf, startCluster, tapReplicationStream, type RedisCluster, type StreamTap } from '../helpers/cluster.js';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';

type Shard = 'A' | 'B';

/** The stream's commands as StreamCommands (PING left out, like the batcher does). */
function commandsOf(tap: StreamTap): StreamCommand[] {
  return tap.commands
    .filter((c) => c[0]!.toString('latin1').toLowerCase() !== 'ping')
    .map((args) => new ReplicationStreamParser(0).push(encodeCommand(args))[0]!);
}

/** A deterministic interleaving of two ordered streams (a small LCG: the same orders every run). */
function interleave(a: StreamCommand[], b: StreamCommand[], seed: number, bias: number): Array<[Shard, StreamCommand]> {
  const out: Array<[Shard, StreamCommand]> = [];
  let i = 0;
  let j = 0;
  let x = seed;
  while (i < a.length || j < b.length) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const takeA = j >= b.length || (i < a.length && x / 2147483648 < bias);
    out.push(takeA ? ['A', a[i++]!] : ['B', b[j++]!]);
  }
  return out;
}

describe('MigrationGuard on the streams of a real slot migration', () => {
  let cluster: RedisCluster;
  let target: RedisServer;
  let streams: Record<Shard, StreamCommand[]>;
  let expected: Map<string, string>;

  beforeAll(async () => {
    cluster = await startCluster({ masters: 2 });
    target = await startRedis();
    const tag = 'm';
    const slot = keySlot(Buffer.from(`{${tag}}`));
    const a = await ownerOf(cluster, slot);
    const b = (await masters(cluster)).find((m) => m !== a)!;
    // Taps first, on an empty cluster: the two streams are then the whole history.
    const taps = { A: await tapReplicationStream(a), B: await tapReplicationStream(b) };
    const c = cluster.client();
    const keys = Array.from({ length: 40 }, (_, i) => `{${tag}}:${i}`);
    for (const [i, k] of keys.entries()) {
      if (i % 2 === 0) await c.incrby(k, i);
      else await c.rpush(k, `v${i}`);
      if (i % 5 === 0) await c.pexpire(k, 3_600_000 + i);
    }
    await c.set('{other}', 'x');
    // The load runs all along the migration: through ASK once a key has moved.
    let load = true;
    let n = 0;
    const loader = (async () => {
      while (load) {
        const k = keys[n % keys.length]!;
        if (n % keys.length % 2 === 0) await c.incr(k);
        else await c.rpush(k, `x${n}`);
        if (n % 7 === 0) await c.set(`{${tag}}:new:${n}`, String(n));
        n++;
      }
    })();
    await migrateSlot(cluster, slot, a, b, { batch: 7, onBatch: () => new Promise((r) => setTimeout(r, 20)) });
    for (let i = 0; i < 20; i++) await c.incr(keys[0]!);
    load = false;
    await loader;
    expect(n).toBeGreaterThan(0);
    // Markers on both shards: once the taps hold them, they hold everything before.
    await admin(a).set('{other}:marker', 'a');
    const markerB = `{${tag}}:marker`;
    await c.set(markerB, 'b');
    await waitFor(() => taps.A.text().some((l) => l.includes('{other}:marker')) && taps.B.text().some((l) => l.includes(markerB)), 'the taps to catch up', 10_000, 50);
    taps.A.close();
    taps.B.close();
    streams = { A: commandsOf(taps.A), B: commandsOf(taps.B) };
    expected = await keyImage([admin(a), admin(b)]);
    expect(streams.B.filter((x) => x.name === 'restore-asking').length).toBeGreaterThanOrEqual(40);
    expect(streams.A.filter((x) => x.name === 'del').length).toBeGreaterThanOrEqual(6);
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
    await target?.stop();
  });

  /** Applies `order` to the (flushed) target, through `guard` when given; returns the target's image. */
  async function replay(order: Array<[Shard, StreamCommand]>, guard?: MigrationGuard): Promise<Map<string, string>> {
    const t = target.client();
    await t.flushall();
    for (const [shard, cmd] of order) {
      const out = guard === undefined ? cmd.raw : guard.apply(cmd, shard);
      if (out === null) continue;
      const args = new ReplicationStreamParser(0).push(out)[0]!.args;
      // Without the guard a RESTORE-ASKING over an existing key fails (BUSYKEY): that is part of the damage.
      await t.callBuffer(args[0]!.toString('latin1'), ...args.slice(1)).catch(() => undefined);
    }
    const img = await keyImage([t]);
    t.disconnect();
    return img;
  }

  const orders: Array<[string, (a: StreamCommand[], b: StreamCommand[]) => Array<[Shard, StreamCommand]>]> = [
    ['source shard first', (a, b) => [...a.map((c) => ['A', c] as [Shard, StreamCommand]), ...b.map((c) => ['B', c] as [Shard, StreamCommand])]],
    ['destination shard first', (a, b) => [...b.map((c) => ['B', c] as [Shard, StreamCommand]), ...a.map((c) => ['A', c] as [Shard, StreamCommand])]],
    ['interleaved, seed 1', (a, b) => interleave(a, b, 1, 0.5)],
    ['interleaved, seed 2, destination ahead', (a, b) => interleave(a, b, 2, 0.2)],
    ['interleaved, seed 3, source ahead', (a, b) => interleave(a, b, 3, 0.8)],
  ];

  for (const [label, make] of orders) {
    it(`ends equal to the source cluster: ${label}`, async () => {
      const guard = new MigrationGuard();
      const got = await replay(make(streams.A, streams.B), guard);
      expect(got.size).toBe(expected.size);
      for (const [k, v] of expected) expect(got.get(k), k).toBe(v);
      if (label === 'source shard first') expect(guard.droppedDeletes + guard.droppedWrites).toBe(0);
      if (label === 'destination shard first') {
        // Every migrated key's DEL, and the source's writes of them that the load ran before each MIGRATE.
        expect(guard.droppedDeletes).toBeGreaterThanOrEqual(40);
        expect(guard.droppedWrites).toBeGreaterThan(0);
        expect(guard.size).toBe(0);
      }
    });
  }

  it('without the guard, the destination shard first loses migrated keys', async () => {
    const got = await replay(orders[1]![1](streams.A, streams.B));
    const missing = [...expected.keys()].filter((k) => !got.has(k));
    expect(missing.length).toBeGreaterThan(0);
  });
});
