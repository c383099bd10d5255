/**
 * Error replies that say the target takes no writes at the moment, whatever the command: it is
 * loading its data, running a script, a replica now, out of memory, unable to save, short of
 * replicas, or a cluster slot is down or migrating. They are never the command's own fault, so
 * `--on-error skip` never skips them (skipping would drop every write while the state lasts):
 *
 * - transient states pass by themselves: the writer fails with TargetUnavailableError, which the
 *   sync treats as a lost connection (reconnect with backoff, resend what the target lacks);
 * - stuck states need an operator: the sync stops, saying what to fix, and resumes from its
 *   checkpoint when run again.
 */
import { TargetError } from '../errors.js';
import type { TargetCommandError } from './errors.js';

export interface TargetState {
  /** The reply's code, e.g. READONLY. */
  code: string;
  transient: boolean;
  /** What it means and what to do, said to a person. */
  why: string;
}

const STATES: Record<string, Omit<TargetState, 'code'>> = {
  LOADING: { transient: true, why: 'it is loading its data set' },
  BUSY: { transient: true, why: 'a script or function is running on it' },
  TRYAGAIN: { transient: true, why: 'a multi-key command met a slot being migrated' },
  CLUSTERDOWN: { transient: true, why: 'its cluster is down or a slot is not served' },
  MASTERDOWN: { transient: true, why: 'its link to its master is down' },
  NOREPLICAS: { transient: true, why: 'fewer replicas are connected than min-replicas-to-write asks for' },
  READONLY: { transient: false, why: 'it is a read-only replica now (a failover?): point --target at its master' },
  OOM: { transient: false, why: 'it is out of memory: raise maxmemory or free memory on it' },
  MISCONF: { transient: false, why: 'it cannot persist (MISCONF): fix its disk, or its stop-writes-on-bgsave-error' },
  NOAUTH: { transient: false, why: 'it asks for authentication again: check the target password' },
};

/** The state an error reply names, or null when the reply is about the command itself. */
export function targetState(reply: string): TargetState | null {
  const m = /^-?([A-Z]+)\b/.exec(reply);
  const s = m === null ? undefined : STATES[m[1]!];
  return s === undefined ? null : { code: m![1]!, ...s };
}

/** The target refused a write for a state that passes by itself: retried like a lost connection. */
export class TargetUnavailableError extends TargetError {
  constructor(
    readonly refused: TargetCommandError,
    readonly state: TargetState,
  ) {
    super(`target ${refused.target} takes no writes for now (${state.code}: ${state.why}): ${refused.message}`, { cause: refused });
  }
}
