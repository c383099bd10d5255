/**
 * A stream unit came back -EXECABORT under --on-error skip (the writer's hook; `rejected`: the
 * commands the target refused while queuing; nothing of the unit was applied). The connection
 * stays up, so the outcome of every later unit is known too. Units are pipelined:
 *  - no later unit was sent yet: the unit is sent again at once without the rejected commands,
 *    ahead of anything else. Exact: only the rejected commands are lost.
 *  - later units are on the wire (and are applied): the unit's other commands can no longer be
 *    applied in order (later writes to the same keys are on the target already), so they are
 *    skipped too, counted and logged. One unit at a time is sent for a while after an abort
 *    (SERIAL_AFTER_ABORT), so that the next abort is the exact case.
 * Returns false (the abort is then fatal) when the checkpoint write itself was rejected (e.g.
 * OOM refuses every write): skipping it would lose track of what is applied; and when a command
 * was refused for the target's state (target-state.ts): it would refuse every later write too.
 */
import { TargetError } from '../../errors.js';
import { encodeCommand } from '../../resp/encode.js';
import { targetState, type TargetExecAbortError } from '../../writer/index.js';
import { stuckMessage } from './target-connections.js';
import type { SyncContext } from '../context.js';
import type { PendingUnit } from './applied-log.js';
import { describeCommands, withoutCommands } from './unit-recovery.js';

/** Commands named in the log when a whole aborted unit is given up. */
const GIVEN_UP_LOGGED = 20;
/**
 * Stream units sent one at a time (each applied before the next goes out) after a unit was
 * aborted under --on-error skip: a second abort among them is then recovered exactly.
 */
const SERIAL_AFTER_ABORT = 256;
const PING = encodeCommand(['PING']);

export function onUnitAborted(ctx: SyncContext, abort: TargetExecAbortError): boolean {
  const writer = ctx.target.writer;
  const units = ctx.units;
  if (writer === null || ctx.target.cluster) return false;
  const at = units.pending.findIndex((u) => u.offset === abort.offset);
  const u = at < 0 ? undefined : units.pending[at]!;
  const where = `the unit completing offset ${abort.offset}`;
  // The rejected commands' indexes are positions in the payload they were read back from.
  if (u === undefined || abort.rejected.some((r) => r.payload !== u.payload)) return false;
  const lead = u.lead ?? 0;
  const own = abort.rejected.find((r) => r.index < lead || r.index >= u.count - u.inline);
  if (own !== undefined) {
    ctx.target.fatal = new TargetError(
      `target ${ctx.target.label} rejected the checkpoint write of ${where} (${own.command}: ${own.reply}); it cannot be skipped, ` +
        'so nothing from this offset on can be applied: fix the target (e.g. raise maxmemory or free memory for OOM, grant the ACL) and run again',
      { cause: abort },
    );
    return false;
  }
  const stuck = abort.rejected.find((r) => targetState(r.reply) !== null);
  if (stuck !== undefined) {
    ctx.target.fatal = new TargetError(stuckMessage(abort, targetState(stuck.reply)!), { cause: abort });
    return false;
  }
  const rebuilt = withoutCommands(u.payload, new Set(abort.rejected.map((r) => r.index)));
  if (rebuilt === null) return false;
  for (const r of abort.rejected) {
    ctx.policy.skipped({ fields: { command: r.command, key: r.key, offset: u.offset, reply: r.reply }, msg: 'target rejected a stream command while queuing it: skipped (--on-error skip)', rejectedByTarget: true });
  }
  units.serialUnits = SERIAL_AFTER_ABORT;
  if (writer.pendingUnits === 0) {
    // A unit left with no command still carries its offset forward.
    const again: PendingUnit = rebuilt.count === 0 ? { ...u, payload: [PING], count: 1 } : { ...u, payload: rebuilt.payload, count: rebuilt.count };
    units.pending[at] = again;
    writer.submit({ payload: again.payload, count: again.count, atomic: again.atomic, offset: again.offset });
    return true;
  }
  if (u.db !== units.appliedDb) {
    // Its SELECT did not run, so the units after it ran in the wrong db: that cannot be skipped.
    ctx.target.fatal = new TargetError(
      `${abort.message}; the unit switched the db (to ${u.db}) and later units were applied after it in the wrong db: stopping ` +
        '(fix what the target rejects and run again: the sync resumes from its checkpoint)',
      { cause: abort },
    );
    return false;
  }
  // Commands of the source that are lost with it (its SELECTs and our own commands are not).
  const lost = describeCommands(rebuilt.payload, Infinity, u.inline, lead).filter((c) => c.command !== 'SELECT');
  if (lost.length > 0) {
    ctx.policy.skipped({
      count: lost.length,
      fields: { offset: u.offset, commands: lost.length, first: lost.slice(0, GIVEN_UP_LOGGED), unitsInFlight: writer.pendingUnits },
      msg: `the target aborted ${where} after later units were sent: its ${lost.length} other commands can no longer be applied in order and are skipped too (--on-error skip)`,
      rejectedByTarget: true,
    });
  }
  // Its offset is covered by the next unit applied, whose GETSET then finds the checkpoint before it.
  ctx.tracker.giveUp(u.offset);
  return true;
}
