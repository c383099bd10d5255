/**
 * Huge string values against real servers: a source holding a 40 MB uncompressed string (with
 * a TTL) and a 64 MB LZF-compressed one is copied by `sync` (big keys as SET + SETRANGE pieces) and by
 * `replicant rdb --format resp --restore | redis-cli --pipe` (too big for one RESTORE: SET +
 * SETRANGE too); DEBUG DIGEST-VALUE and PEXPIRETIME must match the source's.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ensureBuilt, sh } from '../helpers/cli.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { runSync } from '../helpers/sync.js';

const MiB = 1024 * 1024;
const KEYS = ['text', 'zeros', 'small'];
const servers: RedisServer[] = [];
let source: RedisServer;
let want: string[];

async function fingerprint(c: Redis): Promise<string[]> {
  const out: string[] = [];
  for (const k of KEYS) out.push(`${k} ${String(await c.call('DEBUG', 'DIGEST-VALUE', k))} ${String(await c.call('PEXPIRETIME', k))}`);
  return out;
}

beforeAll(async () => {
  await ensureBuilt();
  source = await startRedis({ args: ['--repl-diskless-sync', 'no'] });
  servers.push(source);
  const c = source.client();
  // Random printable text: LZF finds nothing to compress, so the RDB stores it as is.
  for (let i = 0; i < 40; i++) await c.append('text', Buffer.from(randomBytes(MiB).toString('base64').slice(0, MiB)));
  await c.pexpireat('text', Date.now() + 3_600_000);
  await c.setrange('zeros', 64 * MiB - 1, 'z');
  await c.set('small', 'v');
  await c.save();
  want = await fingerprint(c);
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

describe('huge strings', () => {
  it('sync copies them exactly (SET + SETRANGE pieces)', async () => {
    const target = await startRedis();
    servers.push(target);
    const sync = runSync({ source: source.url, target: target.url, checkpoint: { kind: 'none' } });
    try {
      await new Promise<void>((resolve, reject) => {
        sync.session.once('fullSyncDone', () => resolve());
        sync.done.then(() => reject(new Error('sync ended before the full sync finished')), reject);
      });
    } finally {
      await sync.stop();
    }
    expect(await fingerprint(target.client())).toEqual(want);
  }, 120_000);

  it('rdb --format resp --restore | redis-cli --pipe: RESTORE for the small key, SET + SETRANGE for the big ones', async () => {
    const target = await startRedis();
    servers.push(target);
    const dump = join(source.dir, 'dump.rdb');
    const r = await sh(`node ${CLI} rdb ${dump} --format resp --restore | redis-cli -h 127.0.0.1 -p ${target.port} --pipe`);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/errors: 0, replies: \d+/);
    expect(await fingerprint(target.client())).toEqual(want);
    const resp = await sh(`node ${CLI} rdb ${dump} --format resp --restore --key small | grep -c RESTORE; node ${CLI} rdb ${dump} --format resp --restore --key zeros | grep -ac SETRANGE`);
    // 64 MiB in 1 MiB pieces: SET, the SETRANGE that sizes it, then 63 SETRANGEs.
    expect(resp.stdout.trim().split('\n')).toEqual(['1', '64']);
  }, 120_000);
});
