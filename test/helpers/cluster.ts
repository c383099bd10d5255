/**
 * A real Redis Cluster for integration tests: N masters (no replicas) started through
 * `startRedis` with `--cluster-enabled yes` and an explicit free `cluster-port` (the default
 * port+10000 may be taken or out of range), joined by `redis-cli --cluster create --cluster-yes`.
 * Always `stop()` it in afterAll.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, startRedis, waitFor, type RedisServer } from './redis.js';
import type { TlsFiles } from './tls.js';

const run = promisify(execFile);

export interface RedisCluster {
  nodes: RedisServer[];
  /** host/port of the first master (a seed for discovery). */
  seed: { host: string; port: number };
  /** An ioredis Cluster client (closed by stop()). */
  client(): InstanceType<typeof Redis.Cluster>;
  stop(): Promise<void>;
}

/** `tls`: every node serves TLS only, the cluster bus too (`tls-cluster yes`); see startRedis. */
export async function startCluster(masters = 3, password?: string, tls?: TlsFiles): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const clients: InstanceType<typeof Redis.Cluster>[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const busPort = await freePort();
      nodes.push(await startRedis({
        args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort), '--cluster-node-timeout', '5000', ...(tls ? ['--tls-cluster', 'yes'] : [])],
        ...(password ? { password } : {}),
        ...(tls ? { tls: { files: tls } } : {}),
      }));
    }
    await run('redis-cli', [
      ...(password ? ['-a', password, '--no-auth-warning'] : []),
      ...(tls ? ['--tls', '--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey] : []),
      '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes',
    ], { timeout: 30_000 });
    const admins = nodes.map((n) => n.client());
    await waitFor(async () => {
      for (const c of admins) {
        const info = (await c.call('CLUSTER', 'INFO')) as string;
        const known = /cluster_known_nodes:(\d+)/.exec(info);
        if (!info.includes('cluster_state:ok') || Number(known?.[1]) !== masters) return false;
      }
      return true;
    }, 'cluster state ok on every node', 30_000, 100);
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw e;
  }
  return {
    nodes,
    seed: { host: '127.0.0.1', port: nodes[0]!.port },
    client() {
      const c = new Redis.Cluster([{ host: '127.0.0.1', port: nodes[0]!.port }], { redisOptions: { ...(password ? { password } : {}), ...(tls ? { tls: tls.clientOptions() } : {}) } });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients.splice(0)) c.disconnect();
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
