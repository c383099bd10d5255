/** Helpers for sync tests: run a SyncSession in-process, wait for it to catch up, compare servers. */
import type { Redis } from 'ioredis';
import { SyncSession, type SyncOptions } from '../../src/sync/session.js';
import { waitFor } from './redis.js';

export interface RunningSync {
  session: SyncSession;
  /** Resolves/rejects with run(). */
  done: Promise<unknown>;
  stop(): Promise<void>;
}

export function runSync(opts: SyncOptions): RunningSync {
  const session = new SyncSession({ reconnectMinMs: 50, reconnectMaxMs: 1000, ...opts });
  const done = session.run();
  done.catch(() => {});
  return {
    session,
    done,
    async stop() {
      session.stop();
      await done;
    },
  };
}

export async function masterOffset(source: Redis): Promise<number> {
  const info = (await source.info('replication')) as string;
  const m = /master_repl_offset:(\d+)/.exec(info);
  return m ? Number(m[1]) : -1;
}

/** Wait until the session has applied everything the source has written so far. */
export async function waitCaughtUp(session: SyncSession, source: Redis, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      const st = session.status();
      if (st.phase !== 'streaming') return false;
      const off = await masterOffset(source);
      return st.appliedOffset !== null && st.appliedOffset >= off;
    },
    'the sync to apply everything the source wrote',
    timeoutMs,
    100,
  );
}

/** DEBUG DIGEST of a server leaving out Replicant's own `__replicant*` keys. */
export async function digestWithoutReserved(c: Redis): Promise<string> {
  const reserved: { db: number; key: string; dump: Buffer; ttl: number }[] = [];
  for (let db = 0; db < 16; db++) {
    await c.select(db);
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', '__replicant*', 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const dump = await c.dumpBuffer(key);
        const ttl = await c.pttl(key);
        if (dump) reserved.push({ db, key, dump, ttl });
      }
    } while (cursor !== '0');
  }
  if (reserved.length === 0) {
    await c.select(0);
    return (await c.call('DEBUG', 'DIGEST')) as string;
  }
  // Take them out, digest, put them back exactly.
  for (const r of reserved) {
    await c.select(r.db);
    await c.del(r.key);
  }
  await c.select(0);
  const d = (await c.call('DEBUG', 'DIGEST')) as string;
  for (const r of reserved) {
    await c.select(r.db);
    await c.restore(r.key, r.ttl > 0 ? r.ttl : 0, r.dump, 'REPLACE');
  }
  await c.select(0);
  return d;
}

/** FUNCTION LIST WITHCODE with libraries and their functions sorted by name (the server lists them in hash order). */
export async function functionList(c: Redis): Promise<unknown> {
  const libs = (await c.call('FUNCTION', 'LIST', 'WITHCODE')) as unknown[][];
  const byName = (a: unknown[], b: unknown[]) => String(a[1]).localeCompare(String(b[1]));
  return libs
    .map((lib) => lib.map((v, i) => (i > 0 && lib[i - 1] === 'functions' ? [...(v as unknown[][])].sort(byName) : v)))
    .sort(byName);
}
