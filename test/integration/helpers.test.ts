import { afterAll, describe, expect, it } from 'vitest';
import { digest, startRedis, type RedisServer } from '../helpers/redis.js';

describe('test helpers', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => { await Promise.all(servers.map((s) => s.stop())); });

  it('starts two isolated redis-servers on free loopback ports', async () => {
    const a = await startRedis();
    const b = await startRedis({ password: 'pw' });
    servers.push(a, b);
    expect(a.port).not.toBe(b.port);
    expect(a.port).not.toBe(6379);
    await a.client().set('k', 'v');
    expect(await digest(a.client())).not.toBe(await digest(b.client()));
    expect(await b.client().get('k')).toBeNull();
  });
});
