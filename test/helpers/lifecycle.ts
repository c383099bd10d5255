/**
 * The usual frame of an integration test file: the CLI built once, and every redis-server and
 * background CLI a test started stopped after it (SIGKILL for the CLI). Call at the top level.
 */
import { afterEach, beforeAll } from 'vitest';
import { startRedis, type RedisServer, type StartRedisOptions } from './redis.js';
import { ensureBuilt } from './cli.js';

export function realProcesses(): { server(opts?: StartRedisOptions): Promise<RedisServer>; track<T extends { kill(signal: NodeJS.Signals): void }>(p: T): T } {
  const servers: RedisServer[] = [];
  const procs: { kill(signal: NodeJS.Signals): void }[] = [];
  beforeAll(async () => {
    await ensureBuilt();
  }, 180_000);
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  return {
    async server(opts) {
      const s = await startRedis(opts);
      servers.push(s);
      return s;
    },
    track(p) {
      procs.push(p);
      return p;
    },
  };
}
