/**
 * Whether the source's replication buffers are large enough, from measured figures:
 *
 *  - `client-output-buffer-limit replica <hard> <soft> <seconds>`: while the snapshot is made
 *    and sent, the source queues every write for the replica in its output buffer; past the
 *    hard limit, or above the soft limit for <seconds>, it drops the replica and the full sync
 *    starts over (forever, under a steady load);
 *  - `repl-backlog-size`: after an outage the sync resumes with a partial resync only if the
 *    writes made meanwhile still fit in the backlog; else it copies everything again.
 *    `repl-backlog-ttl` frees the backlog when no replica was attached for that long.
 *
 * Suggested values carry 50 % headroom, are rounded up to whole MB, and never lower a setting.
 */
import { parseSize } from '../cli/options.js';

export interface OutputBufferLimit {
  hard: number;
  soft: number;
  softSeconds: number;
}

export const MB = 1024 * 1024;
const HEADROOM = 1.5;

/** The `replica` (INFO spelling `slave`) class of CONFIG GET client-output-buffer-limit. */
export function parseReplicaLimit(value: string): OutputBufferLimit | null {
  const words = value.trim().split(/\s+/);
  for (let i = 0; i + 3 < words.length; i += 4) {
    if (words[i] === 'slave' || words[i] === 'replica') {
      try {
        return { hard: parseSize(words[i + 1]!), soft: parseSize(words[i + 2]!), softSeconds: Number(words[i + 3]) };
      } catch {
        return null;
      }
    }
  }
  return null;
}

/** Bytes as a CONFIG SET value, rounded up: `64mb`, `48kb`, or bytes below 1 KB. */
export function configSize(bytes: number): string {
  if (bytes >= MB) return `${Math.ceil(bytes / MB)}mb`;
  return bytes >= 1024 ? `${Math.ceil(bytes / 1024)}kb` : String(Math.ceil(bytes));
}

function roundUpMb(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / MB)) * MB;
}

export type Verdict = 'ok' | 'warn' | 'fail';

export interface BufferCheck {
  verdict: Verdict;
  /** Bytes that must fit. */
  needBytes: number;
  detail: string;
  /** `CONFIG SET ...` lines that fix it (empty when fine). */
  fix: string[];
}

/** Writes queued for the replica while the snapshot is produced and sent. */
export function checkOutputBuffer(limit: OutputBufferLimit | null, writeBytesPerSec: number, fullSyncSec: number): BufferCheck {
  const need = writeBytesPerSec * fullSyncSec;
  const base = `${configSize(need)} of writes queue up during a ${fullSyncSec.toFixed(1)} s full sync at ${configSize(writeBytesPerSec)}/s`;
  if (limit === null) return { verdict: 'warn', needBytes: need, detail: `${base}; the limit could not be read (CONFIG GET refused)`, fix: [] };
  const hardOk = limit.hard === 0 || limit.hard >= need;
  // The soft limit only drops the replica when exceeded for softSeconds in a row.
  const softOk = limit.soft === 0 || limit.soft >= need || fullSyncSec < limit.softSeconds;
  const now = `replica ${configSize(limit.hard)} ${configSize(limit.soft)} ${limit.softSeconds}`;
  if (hardOk && softOk) return { verdict: 'ok', needBytes: need, detail: `${base}; limit ${now} holds them`, fix: [] };
  const hard = limit.hard === 0 ? 0 : Math.max(limit.hard, roundUpMb(need * HEADROOM));
  const soft = limit.soft === 0 ? 0 : Math.max(limit.soft, roundUpMb(need * HEADROOM));
  const set = `replica ${configSize(hard)} ${configSize(soft)} ${limit.softSeconds}`;
  return {
    verdict: 'fail',
    needBytes: need,
    detail: `${base}; limit ${now} drops the replica before it is done, and the full sync restarts over and over`,
    fix: [`CONFIG SET client-output-buffer-limit "${set}"`],
  };
}

/** Writes made during an outage of `outageSec` must still be in the backlog to resume. */
export function checkBacklog(backlogSize: number | null, backlogTtlSec: number | null, writeBytesPerSec: number, outageSec: number): BufferCheck {
  const need = writeBytesPerSec * outageSec;
  const base = `a ${outageSec} s outage at ${configSize(writeBytesPerSec)}/s leaves ${configSize(need)} of writes to resume from`;
  if (backlogSize === null) return { verdict: 'warn', needBytes: need, detail: `${base}; repl-backlog-size could not be read (CONFIG GET refused)`, fix: [] };
  const fix: string[] = [];
  const problems: string[] = [];
  if (backlogSize < need) {
    problems.push(`repl-backlog-size ${configSize(backlogSize)} is too small: the sync would copy everything again`);
    fix.push(`CONFIG SET repl-backlog-size ${configSize(Math.max(backlogSize, roundUpMb(need * HEADROOM)))}`);
  }
  if (backlogTtlSec !== null && backlogTtlSec > 0 && backlogTtlSec < outageSec) {
    problems.push(`repl-backlog-ttl ${backlogTtlSec} s frees the backlog before the outage ends (when Replicant is the only replica)`);
    fix.push(`CONFIG SET repl-backlog-ttl ${Math.ceil(outageSec * HEADROOM)}`);
  }
  if (problems.length === 0) return { verdict: 'ok', needBytes: need, detail: `${base}; repl-backlog-size ${configSize(backlogSize)} holds them`, fix };
  return { verdict: 'fail', needBytes: need, detail: `${base}; ${problems.join('; ')}`, fix };
}
