/**
 * A SyncSession (imported through the public API, src/index.ts, so that tests using this helper
 * survive the refactor of src/sync/session.ts) that records everything observable from outside:
 * every `phase` event in order (with its info), every log line (a capturing pino logger), and
 * how run() ended.
 */
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { SyncSession, type Phase, type SyncOptions, type SyncResult } from '../../src/index.js';
import { waitFor } from './redis.js';

export type Outcome = { ok: true; result: SyncResult } | { ok: false; error: unknown };

export interface TrackedSession {
  session: SyncSession;
  /** Every `phase` event's value, in order. */
  phases: Phase[];
  /** Every `phase` event with its info object. */
  events: Array<{ phase: Phase; info: Record<string, unknown> }>;
  /** Every log line of the session (parsed pino JSON). */
  lines: Array<Record<string, unknown>>;
  /** run()'s promise (a handler is attached: an early rejection is not unhandled). */
  done: Promise<SyncResult>;
  /** run()'s outcome; never rejects. */
  outcome: Promise<Outcome>;
  /** stop(), then run()'s outcome. */
  stop(): Promise<Outcome>;
}

/** Construct a session, attach the recorders, then call run(). */
export function trackSession(opts: SyncOptions): TrackedSession {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const session = new SyncSession({ reconnectMinMs: 50, reconnectMaxMs: 1000, logger, ...opts });
  const phases: Phase[] = [];
  const events: TrackedSession['events'] = [];
  session.on('phase', (phase, info) => {
    phases.push(phase);
    events.push({ phase, info });
  });
  const done = session.run();
  const outcome: Promise<Outcome> = done.then(
    (result) => ({ ok: true as const, result }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  return {
    session,
    phases,
    events,
    lines,
    done,
    outcome,
    async stop() {
      session.stop();
      return outcome;
    },
  };
}

/** The phases named by the session's `phase: X` log lines, in order. */
export function loggedPhases(lines: ReadonlyArray<Record<string, unknown>>): string[] {
  return lines.map((l) => /^phase: (.+)$/.exec(String(l['msg']))?.[1]).filter((p): p is string => p !== undefined);
}

export async function masterOffset(c: Redis): Promise<number> {
  const m = /master_repl_offset:(\d+)/.exec((await c.info('replication')) as string);
  if (!m) throw new Error('INFO replication has no master_repl_offset');
  return Number(m[1]);
}

/** Wait until the session streams and has applied everything the source wrote so far. */
export async function caughtUp(t: TrackedSession, src: Redis, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      const st = t.session.status();
      if (st.phase !== 'streaming' || st.appliedOffset === null) return false;
      return st.appliedOffset >= (await masterOffset(src));
    },
    'the session to apply everything the source wrote',
    timeoutMs,
    50,
  );
}

/** Wait until the session is streaming (fails early, with its error, if run() ends first). */
export async function streaming(t: TrackedSession, timeoutMs = 60_000): Promise<void> {
  let ended: Outcome | null = null;
  void t.outcome.then((o) => (ended = o));
  await waitFor(
    () => {
      if (ended !== null) throw new Error(`run() ended before streaming: ${ended.ok ? 'resolved' : String((ended.error as Error)?.message ?? ended.error)}`);
      return t.session.status().phase === 'streaming';
    },
    'the session to stream',
    timeoutMs,
    20,
  );
}

/** Every `__replicant*` key of every db of `c` (Replicant's own keys). */
export async function reservedKeys(c: Redis): Promise<Array<{ db: number; key: string }>> {
  const out: Array<{ db: number; key: string }> = [];
  const dbs = [...((await c.info('keyspace')) as string).matchAll(/^db(\d+):/gm)].map((m) => Number(m[1]));
  for (const db of dbs) {
    await c.select(db);
    let cursor = '0';
    do {
      const [next, batch] = await c.scan(cursor, 'MATCH', '__replicant*', 'COUNT', 1000);
      cursor = next;
      for (const key of batch) out.push({ db, key });
    } while (cursor !== '0');
  }
  await c.select(0);
  return out;
}

/**
 * DEBUG DIGEST of the target once Replicant's own keys are deleted from it: call only after
 * the session has stopped. Compare with the source's DEBUG DIGEST.
 */
export async function digestWithoutReplicantKeys(target: Redis): Promise<string> {
  for (const { db, key } of await reservedKeys(target)) {
    await target.select(db);
    await target.del(key);
  }
  await target.select(0);
  return (await target.call('DEBUG', 'DIGEST')) as string;
}

export interface IncrLoad {
  /** INCRs the source acknowledged so far, per counter. */
  readonly counts: number[];
  /** Stop writing; resolves with the final per-counter counts once the last write is acknowledged. */
  stop(): Promise<number[]>;
}

/**
 * A non-idempotent load: pipelines of INCR over `counters` keys `prefix0..`, one pipeline every
 * `delayMs`, at most `maxOps` INCRs in all (bounded). A write applied twice or lost on the
 * target shows up as a counter that differs from `counts`.
 */
export function startIncrLoad(c: Redis, opts: { prefix?: string; counters?: number; perPipeline?: number; delayMs?: number; maxOps?: number } = {}): IncrLoad {
  const prefix = opts.prefix ?? 'ctr:';
  const n = opts.counters ?? 8;
  const per = opts.perPipeline ?? 16;
  const maxOps = opts.maxOps ?? 2_000_000;
  const counts = new Array<number>(n).fill(0);
  let stopped = false;
  let sent = 0;
  const loop = (async () => {
    while (!stopped && sent < maxOps) {
      const p = c.pipeline();
      const which: number[] = [];
      for (let i = 0; i < per; i++) {
        const k = (sent + i) % n;
        which.push(k);
        p.incr(`${prefix}${k}`);
      }
      const res = await p.exec();
      res?.forEach(([err], i) => {
        if (err === null) counts[which[i]!]!++;
      });
      sent += per;
      if (opts.delayMs !== undefined && opts.delayMs > 0) await new Promise((r) => setTimeout(r, opts.delayMs));
    }
  })();
  return {
    counts,
    async stop() {
      stopped = true;
      await loop;
      return [...counts];
    },
  };
}
