/**
 * Why the source ended the replication link in the middle of its RDB transfer, told from what
 * the source shows (its log is out of reach): while it sends the snapshot, the source keeps every
 * write it makes since the fork in the replica's output buffer, and cuts the link when that
 * buffer passes `client-output-buffer-limit replica <hard> <soft> <seconds>`. The bytes written
 * since the fork are `master_repl_offset` now minus the offset of its +FULLRESYNC. Asking for
 * another full sync then only forks the source again for the same end, so the message says what
 * to change. Best effort: a source that refuses INFO or CONFIG gets a vaguer sentence, never an error.
 */
import type { SourceEndpoint } from '../../replication/url.js';
import { readServerConfig, readServerInfo } from '../../replication/server-info.js';

/** What the full sync knew when the link ended. */
export interface RdbCut {
  endpoint: SourceEndpoint;
  /** Replication offset of the +FULLRESYNC (the fork). */
  forkOffset: number;
  /** When the +FULLRESYNC came (ms). */
  startedAt: number;
  rdbBytes: number;
  rdbTotal: number | null;
}

export interface ReplicaBufferLimit {
  hard: number;
  soft: number;
  seconds: number;
}

const ASK_TIMEOUT_MS = 2_000;

/** The `replica` (or `slave`) class of a `client-output-buffer-limit` value (bytes), or null. */
export function replicaLimit(value: string): ReplicaBufferLimit | null {
  const t = value.trim().split(/\s+/);
  for (let i = 0; i + 3 < t.length; i += 4) {
    if (t[i] !== 'replica' && t[i] !== 'slave') continue;
    const [hard, soft, seconds] = [t[i + 1], t[i + 2], t[i + 3]].map(Number) as [number, number, number];
    return [hard, soft, seconds].every(Number.isFinite) ? { hard, soft, seconds } : null;
  }
  return null;
}

const mb = (n: number): string => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0)} MB`;

/** One sentence on the cut (without a leading separator), or '' when the source tells nothing. */
export async function explainRdbCut(cut: RdbCut): Promise<string> {
  const [info, config] = await Promise.all([
    readServerInfo(cut.endpoint, ASK_TIMEOUT_MS).catch(() => null),
    readServerConfig(cut.endpoint, 'client-output-buffer-limit', ASK_TIMEOUT_MS).catch(() => null),
  ]);
  if (info === null) return '';
  const piled = Math.max(0, info.masterReplOffset - cut.forkOffset);
  const secs = Math.max(0.001, (Date.now() - cut.startedAt) / 1000);
  const rate = piled / secs;
  const written = `the source wrote ${mb(piled)} since its fork ${secs.toFixed(1)} s ago (${mb(rate)}/s), all held in the replica's output buffer until the snapshot is sent`;
  const raise = `raise the limit on the source for the time of the copy: CONFIG SET client-output-buffer-limit "replica 0 0 0" (no limit: the buffer then grows in the source's memory during the transfer), or ${sized(cut, piled, rate)}; or copy when the source writes less`;
  const disconnections = info.fields.get('client_output_buffer_limit_disconnections');
  const counted = disconnections === undefined ? '' : ` (its INFO stats client_output_buffer_limit_disconnections: ${disconnections})`;
  const limit = config === null ? null : replicaLimit(config);
  if (limit === null) {
    return `${written}; if that passes its replica output-buffer limit (CONFIG GET client-output-buffer-limit, refused here; Redis's default is replica 256mb 64mb 60), the source cut the link for it${counted}: ${raise}`;
  }
  const shown = `client-output-buffer-limit replica ${limit.hard} ${limit.soft} ${limit.seconds}: hard and soft limits in bytes, the soft one for ${limit.seconds} s`;
  const over = (limit.hard > 0 && piled >= limit.hard) || (limit.soft > 0 && piled >= limit.soft);
  if (over) return `${written}: past its replica output-buffer limit (${shown}), so the source cut the link${counted}; ${raise}`;
  return `${written}, below its replica output-buffer limit (${shown})${counted}: the cut has another cause (the source's log says which, e.g. repl-timeout or a restart)`;
}

/** A limit that would hold the whole transfer's writes: twice the estimate when the RDB's size is known, else the rule to size it. */
function sized(cut: RdbCut, piled: number, rate: number): string {
  if (cut.rdbTotal === null || cut.rdbBytes === 0) {
    return `a hard and soft limit above ${mb(rate)}/s times the transfer's duration (the RDB's size over the link's speed; this transfer did not announce its size)`;
  }
  // At the pace seen so far, the whole transfer piles up this much.
  const mbNeeded = Math.ceil((2 * piled * Math.max(1, cut.rdbTotal / cut.rdbBytes)) / 1048576);
  return `"replica ${mbNeeded}mb ${mbNeeded}mb 0" (twice what the whole ${mb(cut.rdbTotal)} transfer would pile up at this pace)`;
}
