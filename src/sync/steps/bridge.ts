/**
 * bridging: the target connection dropped while streaming. The source link stays up (its bytes
 * keep going to the spool); the target is reopened with backoff and asked where it stands (the
 * checkpoint it holds is exact: written in the same transaction as the data), and the units it
 * does not have are resent, in order. Then back to streaming, where the step left off. A target
 * that refused a write for a state that passes (TargetUnavailableError: loading, a busy script,
 * a migrating slot...) is bridged the same way, after a backoff.
 */
import { encodeCommand } from '../../resp/encode.js';
import { TargetCommandError, TargetUnavailableError } from '../../writer/index.js';
import type { SyncContext } from '../context.js';
import { Halted, Reconnect } from '../run-control.js';
import { reconnectTarget } from './reconnect.js';

/** A lost target connection while streaming is bridged in place; anything else is not. */
export function canBridge(ctx: SyncContext, e: unknown): boolean {
  const err = ctx.target.failure ?? e;
  return ctx.run.halt === null && ctx.run.phase === 'streaming' && !(err instanceof TargetCommandError);
}

export async function bridgeTargetOutage(ctx: SyncContext): Promise<void> {
  const units = ctx.units;
  const failure = ctx.target.failure;
  const cause = failure?.message ?? 'target connection lost';
  const fields = { err: cause, appliedOffset: units.applied, pendingUnits: units.pending.length };
  // A target that is up but not ready is waited for (longer each time until a unit is applied).
  const unready = failure instanceof TargetUnavailableError;
  const retryInMs = unready ? ctx.target.unavailableBackoff(ctx.opts.reconnectMinMs, ctx.opts.reconnectMaxMs) : 0;
  if (unready) ctx.log.warn({ ...fields, retryInMs }, 'target takes no writes for now: still reading the source into the spool; resending from its checkpoint when it does');
  else ctx.log.warn(fields, 'target lost while streaming: still reading the source into the spool; reconnecting to the target, then resending from its checkpoint');
  ctx.run.enter('bridging', cause, { side: 'target' });
  if (retryInMs > 0) await ctx.run.sleep(retryInMs);
  await reconnectTarget(ctx);
  if (ctx.target.writer === null) throw new Halted();
  let from = units.applied ?? 0;
  let db = units.appliedDb;
  if (ctx.store.atomicWithData) {
    const cp = await ctx.store.load();
    // `pending` holds exactly the units after `from`: a checkpoint behind it means lost writes.
    if (cp === null || cp.state !== 'streaming' || cp.offset < from) {
      // The target went back in time (restarted without its latest writes): the spool no
      // longer has those bytes, so resume from the source's backlog instead.
      units.reset(null);
      throw new Reconnect('target', `target came back at ${cp ? `offset ${cp.offset}` : 'no checkpoint'}, behind the last applied offset ${from}`);
    }
    // Units applied whose replies were lost with the connection: applied now (ACKed and
    // counted), so that a source drop right after resumes from here, not from before them.
    if (cp.offset > from) units.onApplied(cp.offset);
    from = cp.offset;
    db = cp.db;
    ctx.tracker.expect(cp.offset);
  }
  const resend = units.pending.filter((u) => u.offset > from);
  if (resend.some((u) => u.streamed === true)) {
    // Its big argument streamed through and is gone: the source sends it again from the checkpoint.
    units.pending = [];
    throw new Reconnect('target', `a command streamed through (a big argument) was not applied before the target connection was lost: resuming from the source at offset ${from}`);
  }
  units.pending = [];
  if (resend.length > 0) ctx.tracker.expect(resend[resend.length - 1]!.offset);
  ctx.log.info({ from, db, units: resend.length }, 'target reconnected: resending what it does not have');
  ctx.run.enter('streaming', `target reconnected at offset ${from}`, { resumedFrom: from });
  const writer = ctx.target.data;
  if (!ctx.target.cluster) writer.submit({ payload: [encodeCommand(['SELECT', ctx.scope.connectionDb(db)])], count: 1 });
  for (const u of resend) {
    units.pending.push(u);
    if (!writer.submit({ payload: u.payload, count: u.count, atomic: u.atomic, offset: u.offset })) {
      await writer.waitDrain().catch((e: unknown) => {
        if (!canBridge(ctx, e)) units.fail(e);
      });
    }
  }
}
