/** Helpers for sync tests: run a SyncSession in-process, wait for it to catch up, compare servers. */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { SyncSession, type SyncOptions } from '../../src/sync/session.js';
import type { Logger } from '../../src/observe/logger.js';
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

/**
 * A digest of a server's data leaving out Replicant's own `__replicant*` keys, computed key by
 * key (db, name, DEBUG DIGEST-VALUE, whether it expires) without touching the server, so it
 * can run while a sync writes its checkpoint. Compare it with the same helper on the source.
 */
export async function digestWithoutReserved(c: Redis): Promise<string> {
  const h = createHash('sha1');
  const dbs = [...((await c.info('keyspace')) as string).matchAll(/^db(\d+):/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
  for (const db of dbs) {
    await c.select(db);
    for (const row of await keyRows(c)) h.update(`${db}\0${row}\n`);
  }
  await c.select(0);
  return h.digest('hex');
}

/**
 * The same digest of db 0 over several servers taken as one keyspace (the masters of a
 * cluster, or one standalone server): compare a cluster source with what it was synced into.
 */
export async function keyspaceDigest(clients: readonly Redis[]): Promise<{ keys: number; digest: string }> {
  const rows = (await Promise.all(clients.map((c) => keyRows(c)))).flat().sort();
  const h = createHash('sha1');
  for (const row of rows) h.update(`0\0${row}\n`);
  return { keys: rows.length, digest: h.digest('hex') };
}

/** Every key of the selected db (SCAN), in no particular order. */
export async function scanKeys(c: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await c.scan(cursor, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** `name\0digest\0expires` of every key of the selected db but `__replicant*` ones, sorted by name. */
async function keyRows(c: Redis): Promise<string[]> {
  const keys = (await scanKeys(c)).filter((k) => !k.startsWith('__replicant')).sort();
  const out: string[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const part = keys.slice(i, i + 500);
    const rows = await Promise.all(part.map(async (k) => [k, await c.call('DEBUG', 'DIGEST-VALUE', k), (await c.pttl(k)) > 0] as const));
    for (const [k, d, ttl] of rows) out.push(`${k}\0${String(d)}\0${ttl}`);
  }
  return out;
}

/** FUNCTION LIST WITHCODE with libraries and their functions sorted by name (the server lists them in hash order). */
export async function functionList(c: Redis): Promise<unknown> {
  const libs = (await c.call('FUNCTION', 'LIST', 'WITHCODE')) as unknown[][];
  const byName = (a: unknown[], b: unknown[]) => String(a[1]).localeCompare(String(b[1]));
  return libs
    .map((lib) => lib.map((v, i) => (i > 0 && lib[i - 1] === 'functions' ? [...(v as unknown[][])].sort(byName) : v)))
    .sort(byName);
}

/** The one sync checkpoint on a target (`__replicant:checkpoint:<sync id>`), parsed; null when there is none. */
export async function targetCheckpoint(c: Redis): Promise<{ offset: number; state: string; replid: string; cleanStart: boolean } | null> {
  const keys = (await c.keys('__replicant:checkpoint:*')).sort();
  if (keys.length > 1) throw new Error(`several checkpoints on the target: ${keys.join(', ')}`);
  const v = keys.length === 0 ? null : await c.get(keys[0]!);
  return v === null ? null : (JSON.parse(v) as { offset: number; state: string; replid: string; cleanStart: boolean });
}

/** A pino logger that keeps its lines (parsed) in `lines`. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}
