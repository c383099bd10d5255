/**
 * Slots resharded back and forth under a write load while the shards of the sync are spread
 * over three processes (three coordinators sharing one --name, one shard each): the exporting
 * shard's DEL and the importing shard's RESTORE are relayed by different processes, whose
 * migration guards never see each other's commands. The importing process holds the RESTORE
 * until the exporting shard's checkpoint on the target has passed the key's removal from its
 * master (remote-order.ts). Every key of the target ends equal to the source cluster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startRedis, waitFor } from '../helpers/redis.js';
import { masters, startCluster } from '../helpers/cluster.js';
import { image, reshardBackAndForth } from '../helpers/reshard.js';
import { ClusterSourceSync } from '../../src/sync/cluster/coordinator.js';
import { captureLogger, masterOffset } from '../helpers/sync.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

describe('a cluster source resharded under load, its shards spread over processes', () => {
  it('redis-cli --cluster reshard back and forth under ~1k writes/s, one shard per process: the target ends equal key by key', async () => {
    const cluster = await startCluster({ masters: 3, replicasPerMaster: 1 });
    cleanups.push(() => cluster.stop());
    const target = await startRedis();
    cleanups.push(() => target.stop());
    const proxy = await FaultProxy.start({ target: { host: target.host, port: target.port } });
    cleanups.push(() => proxy.close());
    const spoolDir = mkdtempSync(join(tmpdir(), 'replicant-reshard-shared-'));
    cleanups.push(async () => rmSync(spoolDir, { recursive: true, force: true }));
    const client = cluster.client();
    for (let i = 0; i < 20_000; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => client.set(`k:${i + j}`, `v${i + j}`)));
    const syncs = [0, 1, 2].map(() => {
      const { logger } = captureLogger();
      const sync = new ClusterSourceSync({ source: `redis://${cluster.seed.host}:${cluster.seed.port}`, target: proxy.url, spoolDir, name: 'spread', topologyPollMs: 300, claimEveryMs: 200, leaseTtlMs: 3000, reconnectMinMs: 50, reconnectMaxMs: 500, logger });
      const done = sync.run();
      done.catch(() => {});
      cleanups.push(async () => {
        sync.stop();
        await done.catch(() => {});
      });
      return sync;
    });
    const caughtUp = async (): Promise<void> => {
      const want = new Map<number, number>();
      for (const m of await masters(cluster)) want.set(m.port, await masterOffset(m.client()));
      await waitFor(
        async () => {
          const shards = syncs.flatMap((s) => s.status().shards);
          if (shards.length !== 3 || shards.some((s) => s.phase !== 'streaming' || s.node === null)) return false;
          return shards.every((s) => (s.appliedOffset ?? 0) >= (want.get(Number(s.node!.split(':').pop())) ?? Infinity));
        },
        'every shard to apply what its master had',
        90_000,
        100,
      );
    };
    await waitFor(() => syncs.every((s) => s.status().shards.length === 1), 'one shard per process', 60_000, 100);
    await caughtUp();

    const writes = await reshardBackAndForth(cluster, client, proxy);
    expect(writes).toBeGreaterThan(1000);
    await caughtUp();
    // Each process still holds one shard: the migrations crossed processes.
    expect(syncs.map((s) => s.status().shards.length)).toEqual([1, 1, 1]);

    const expected = await image((await masters(cluster)).map((m) => m.client()));
    const got = await image([target.client()]);
    const missing = [...expected.keys()].filter((k) => !got.has(k));
    const extra = [...got.keys()].filter((k) => !expected.has(k));
    const differing = [...expected].filter(([k, v]) => got.has(k) && got.get(k) !== v).map(([k]) => k);
    expect({ missing: missing.slice(0, 10), extra: extra.slice(0, 10), differing: differing.slice(0, 10), counts: [missing.length, extra.length, differing.length] }).toEqual({ missing: [], extra: [], differing: [], counts: [0, 0, 0] });
    expect(syncs.reduce((t, s) => t + s.status().sharing.members.length, 0)).toBe(9);
  }, 240_000);
});
