/**
 * The calls that renew this sync's lease. A connection failure, or a target that takes no writes
 * from anyone (target-state.ts: loading, busy, a replica now, out of memory...), is retried as
 * before: no other instance can take the lease meanwhile. Any other refusal of the renewal (an ACL
 * narrowed to the application's keys, the lease key overwritten with another type, EVAL renamed)
 * only stops this instance from renewing: the lease would expire while it keeps writing, and a
 * second instance could take over and write too. Such a refusal is a lost lease (exit 10).
 */
import { LeaseError, type NodeCall } from '../../checkpoint/lease.js';
import { TargetCommandError, targetState } from '../../writer/index.js';

export function renewalCall(call: NodeCall, id: string): NodeCall {
  return async (args) => {
    try {
      return await call(args);
    } catch (e) {
      if (e instanceof TargetCommandError && targetState(e.reply) === null) {
        throw new LeaseError(`sync "${id}": the target refused to renew this sync's lease (${e.reply}); without it a second instance could take over and write too, so this one stops. Let Replicant's user write the keys __replicant:* (and run EVAL), then run again: the sync resumes from its checkpoint`);
      }
      throw e;
    }
  };
}
