/**
 * Reshards under load for the cluster source tests: a write load over every slot, `redis-cli
 * --cluster reshard` (the operator's tool), and the string image of a set of nodes to compare.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { waitFor } from './redis.js';
import { masters, nodeId, type RedisCluster } from './cluster.js';
import type { FaultProxy } from './fault-proxy.js';

const run = promisify(execFile);

/** Every string key of the given nodes with its value (pipelined: tens of thousands of keys). */
export async function image(clients: Redis[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (const c of clients) {
    const keys = (await c.keys('*')).filter((k) => !k.startsWith('__replicant'));
    for (let i = 0; i < keys.length; i += 1000) {
      const part = keys.slice(i, i + 1000);
      const p = c.pipeline();
      for (const k of part) p.get(k);
      const replies = (await p.exec()) ?? [];
      part.forEach((k, j) => out.set(k, (replies[j]?.[1] as string | null | undefined) ?? null));
    }
  }
  return out;
}

/** INCR and SET over `keys` keys at about `opsPerSec`, until stopped (a refused write is not retried). */
export function startLoad(client: ReturnType<RedisCluster['client']>, keys: number, opsPerSec: number): { stop: () => Promise<number> } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++, n++) {
        const k = n % keys;
        writes.push((n % 2 === 0 ? client.incr(`c:${k}`) : client.set(`s:${k}`, String(n))).catch(() => undefined));
      }
      await Promise.all(writes);
      await new Promise((r) => setTimeout(r, Math.max(0, (10_000 / opsPerSec) - (Date.now() - started))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return n;
    },
  };
}

/** `redis-cli --cluster reshard` of `slots` slots from one master to another, once the cluster agrees. */
export async function reshard(cluster: RedisCluster, from: string, to: string, slots: number): Promise<void> {
  const seed = `127.0.0.1:${cluster.seed.port}`;
  await waitFor(async () => run('redis-cli', ['--cluster', 'check', seed]).then(() => true, () => false), 'the cluster to agree before a reshard', 30_000, 200);
  await run('redis-cli', ['--cluster', 'reshard', seed, '--cluster-from', from, '--cluster-to', to, '--cluster-slots', String(slots), '--cluster-yes'], { maxBuffer: 64 << 20 });
}

/**
 * 300 slots resharded four times (a→b, b→a, a→c, c→a) under ~1k writes/s, the target
 * connections through `proxy` throttled in bursts (each connection's bytes released in its own
 * time, as on a busy network). Returns the writes made.
 */
export async function reshardBackAndForth(cluster: RedisCluster, client: ReturnType<RedisCluster['client']>, proxy: FaultProxy): Promise<number> {
  const [a, b, c] = await Promise.all((await masters(cluster)).map(nodeId));
  const load = startLoad(client, 3000, 1000);
  let jitter = true;
  const jittering = (async () => {
    for (let i = 0; jitter; i++) {
      proxy.slow('up', i % 2 === 0 ? 20_000 : null);
      await new Promise((r) => setTimeout(r, 20 + ((i * 37) % 60)));
    }
    proxy.slow('up', null);
  })();
  try {
    for (const [from, to] of [[a!, b!], [b!, a!], [a!, c!], [c!, a!]] as const) await reshard(cluster, from, to, 300);
  } finally {
    jitter = false;
    await jittering;
  }
  return load.stop();
}
