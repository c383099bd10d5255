/**
 * The end of a sync whose copy on the target is not complete: stopped before the snapshot was
 * fully applied, or keys/commands left out under --on-error skip. run() rejects with
 * IncompleteCopyError (exit 9) so that a script never takes such a copy for a finished one.
 */
import { ExitCode, ReplicantError } from '../errors.js';

export interface Shortfall {
  /** Stopped (or failed and stopped) before the snapshot was fully applied. */
  snapshotUnfinished: boolean;
  /** Snapshot keys read from the RDB so far (handed to the target, not all applied), and the RDB bytes read of how many (null: unknown). */
  keysRead: number;
  rdbBytes: number;
  rdbTotalBytes: number | null;
  /** Snapshot keys not written, and the file naming them. */
  lostKeys: number;
  report: string | null;
  /** Stream commands left out under --on-error skip. */
  skippedCommands: number;
}

/** Whether `s` describes an incomplete copy. */
export function isShort(s: Shortfall): boolean {
  return s.snapshotUnfinished || s.lostKeys > 0 || s.skippedCommands > 0;
}

/** One sentence per reason the copy is incomplete, and what the next run does about it. */
export function describeShortfall(s: Shortfall): string {
  const parts: string[] = [];
  if (s.snapshotUnfinished) {
    const of = s.rdbTotalBytes !== null ? ` of ${s.rdbTotalBytes}` : '';
    parts.push(
      `stopped during the full sync (${s.keysRead} keys, ${s.rdbBytes}${of} RDB bytes read from the source, not all of them applied): ` +
        'the copy on the target is incomplete; the checkpoint says full-sync, so the next run copies the snapshot again',
    );
  }
  if (s.lostKeys > 0) parts.push(`${s.lostKeys} keys of the snapshot were not written to the target (${s.report === null ? 'the first ones are in the log' : `listed in ${s.report}`})`);
  if (s.skippedCommands > 0) parts.push(`${s.skippedCommands} commands of the stream were left out (rejected by the target, or not applicable exactly: --on-error skip; see the log)`);
  return `the copy is incomplete: ${parts.join('; ')}`;
}

export class IncompleteCopyError<R = unknown> extends ReplicantError {
  /** What run() would have returned. */
  readonly result: R;
  readonly shortfall: Shortfall;
  constructor(shortfall: Shortfall, result: R) {
    super('INCOMPLETE', describeShortfall(shortfall), ExitCode.INCOMPLETE);
    this.shortfall = shortfall;
    this.result = result;
  }
}
