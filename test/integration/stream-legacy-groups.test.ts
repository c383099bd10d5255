/**
 * Consumer groups of streams from files older than RDB 10, which store no read counter: a
 * Redis 7.0 that loads the file estimates each group's `entries-read` (a number where it can
 * tell, nil elsewhere). `replicant rdb --format resp | redis-cli --pipe` into an empty 7.0 must
 * give every group the same `entries-read` (and the streams the same `entries-added`).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ensureBuilt, sh } from '../helpers/cli.js';
import { CORPUS_DIR } from '../helpers/rdb-corpus.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const servers: RedisServer[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every stream of every db: "db key entries-added" and "db key group entries-read" lines, sorted. */
async function streamCounters(c: Redis): Promise<string[]> {
  const out: string[] = [];
  for (let db = 0; db < 16; db++) {
    await c.select(db);
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'COUNT', 1000, 'TYPE', 'stream');
      cursor = next;
      for (const key of keys) {
        const info = (await c.call('XINFO', 'STREAM', key)) as unknown[];
        out.push(`${db} ${key} entries-added ${String(info[info.indexOf('entries-added') + 1])}`);
        for (const g of (await c.call('XINFO', 'GROUPS', key)) as unknown[][]) {
          out.push(`${db} ${key} ${String(g[g.indexOf('name') + 1])} entries-read ${String(g[g.indexOf('entries-read') + 1])}`);
        }
      }
    } while (cursor !== '0');
  }
  await c.select(0);
  return out.sort();
}

describe('streams from RDB < 10 rebuilt with commands', () => {
  for (const file of ['redis-6.2.16-full.rdb', 'redis-6.2.16-nocompress.rdb']) {
    it(`${file}: every group's entries-read as a 7.0 server loading the file computes it`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'replicant-legacy-'));
      dirs.push(dir);
      copyFileSync(join(CORPUS_DIR, file), join(dir, 'x.rdb'));
      const loaded = await startRedis({ dir, args: ['--dbfilename', 'x.rdb'] });
      servers.push(loaded);
      const want = await streamCounters(loaded.client());
      // The file has groups Redis can count and groups it cannot (nil): both must match.
      expect(want.some((l) => /entries-read \d+$/.test(l))).toBe(true);
      expect(want.some((l) => /entries-read null$/.test(l))).toBe(true);

      const target = await startRedis();
      servers.push(target);
      const r = await sh(`node ${CLI} rdb ${join(CORPUS_DIR, file)} --format resp | redis-cli -h 127.0.0.1 -p ${target.port} --pipe`);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(r.stdout).toMatch(/errors: 0, replies: \d+/);
      expect(await streamCounters(target.client())).toEqual(want);
    }, 60_000);
  }
});
