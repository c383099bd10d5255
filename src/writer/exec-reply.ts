/**
 * What a target's replies say about one unit, with no writer state: the command an error reply
 * belongs to (re-read from the unit's payload, so the hot path keeps no per-command bookkeeping),
 * and what EXEC's reply means for an atomic unit (aborted, malformed, or applied with some
 * commands failing at run time).
 */
import { printableKey } from '../errors.js';
import { commandName, firstKeyIndex } from '../commands/keys.js';
import { commandAt } from '../resp/request-decoder.js';
import { TargetCommandError, TargetError, TargetExecAbortError } from './errors.js';
import type { PendingUnit } from './unit-queue.js';

/** The error `reply` to command `index` of `u`, naming that command and its key. `queued`: rejected while queuing in MULTI. */
export function describeUnitError(target: string, u: PendingUnit, index: number, reply: string, queued = false): TargetCommandError {
  const args = commandAt(u.payload, index);
  const command = args ? commandName(args) : '';
  const k = args ? firstKeyIndex(command, args) : -1;
  return new TargetCommandError({
    target,
    command,
    ...(k >= 0 ? { key: printableKey(args![k]!) } : {}),
    reply,
    offset: u.offset,
    index,
    queued,
    ...(args ? { args } : {}),
    payload: u.payload,
  });
}

/** EXEC's reply to an atomic unit, read. */
export type ExecOutcome =
  /** Nothing of the unit was applied (EXECABORT, or a nil reply). */
  | { kind: 'aborted'; abort: TargetExecAbortError }
  /** A reply that cannot belong to this unit: the reply stream is out of step. */
  | { kind: 'malformed'; failure: TargetError }
  /** Applied; `errors` lists the commands that failed (at queue time on servers older than 2.6.5, or at run time), in order. */
  | { kind: 'applied'; replies: unknown[]; errors: Array<{ index: number; reply: string }> };

/** Reads EXEC's `reply` (or `error`) for `u`, whose queue-time rejections are in `u.queueErrors`. */
export function readExecReply(target: string, u: PendingUnit, reply: unknown, error: string | undefined): ExecOutcome {
  if (error !== undefined || !Array.isArray(reply)) {
    const rejected = (u.queueErrors ?? []).map((q) => describeUnitError(target, u, q.index, q.reply, true));
    const why = error ?? `EXEC returned ${reply === null ? 'nil (transaction aborted)' : typeof reply}`;
    return { kind: 'aborted', abort: new TargetExecAbortError(target, why, rejected, u.offset) };
  }
  const queued = u.queueErrors;
  if (reply.length !== u.count - (queued?.length ?? 0)) {
    return { kind: 'malformed', failure: new TargetError(`target ${target}: EXEC returned ${reply.length} replies for an atomic unit of ${u.count} commands`) };
  }
  // EXEC's replies are those of the commands accepted when queued, in order. (Commands rejected at
  // queue time without EXECABORT happen only on servers older than 2.6.5: they were not applied.)
  const errors: Array<{ index: number; reply: string }> = [];
  let k = 0;
  for (let index = 0; index < u.count; index++) {
    const q = queued?.find((e) => e.index === index);
    if (q !== undefined) {
      errors.push(q);
      continue;
    }
    const r: unknown = reply[k++];
    if (r instanceof Error) errors.push({ index, reply: r.message });
  }
  return { kind: 'applied', replies: reply, errors };
}
