/**
 * --on-error, decided here and nowhere else. Whatever cannot be applied exactly (a stream
 * command the target cannot run or a filter cannot reduce, a FLUSH that would delete other
 * syncs' keys, a snapshot key in a db the target lacks...) either stops the sync (`fail`: the
 * caller's error is thrown) or is left out (`skip`): counted as an error, and as a skipped
 * command or a lost key, so that the copy is reported incomplete (exit 9). No path counts one
 * without the other.
 */
import type { Logger } from '../observe/logger.js';
import type { TargetCommandError } from '../writer/errors.js';
import type { SyncFigures } from './figures.js';
import type { LostKeys } from './lost-keys.js';
import type { OnErrorPolicy } from './options.js';

/** Skips logged one by one at warn level (then at debug level). */
const SKIP_WARN_LIMIT = 100;

export interface Skip {
  /** Commands left out (a transaction counts each of its commands). Default 1. */
  count?: number;
  fields: Record<string, unknown>;
  msg: string;
  /** The target already counted the rejection as an error (its reply): not counted twice. */
  rejectedByTarget?: boolean;
}

export class ErrorPolicy {
  /** Skips logged so far (a skip of a whole transaction is one). */
  private logged = 0;

  constructor(
    readonly mode: OnErrorPolicy,
    private readonly figures: SyncFigures,
    private readonly lost: LostKeys,
    private readonly log: Logger,
  ) {}

  get skipping(): boolean {
    return this.mode === 'skip';
  }

  /** Stream commands that cannot be applied: `fail()` is thrown under fail; under skip they are left out and counted. */
  dropCommands(fail: () => Error, skip: Skip): void {
    if (this.mode === 'fail') throw fail();
    this.skipped(skip);
  }

  /** Counts (and logs, bounded) stream commands left out under skip. */
  skipped(skip: Skip): void {
    const f = this.figures;
    if (skip.rejectedByTarget !== true) f.errors++;
    f.skippedCommands += skip.count ?? 1;
    const n = ++this.logged;
    const fields = { ...skip.fields, skippedCommands: f.skippedCommands };
    if (n <= SKIP_WARN_LIMIT) this.log.warn(fields, n === SKIP_WARN_LIMIT ? `${skip.msg} (further ones logged at debug level)` : skip.msg);
    else this.log.debug(fields, skip.msg);
  }

  /**
   * A command the target rejected under skip (the writer counted and logged it): a snapshot
   * command loses its keys (placed in `snapshotDb`), a stream command is a skipped command.
   */
  targetRejected(e: TargetCommandError, snapshotDb: number | null): void {
    if (snapshotDb !== null) this.lost.rejected(e, snapshotDb);
    else this.figures.skippedCommands++;
  }

  /** A snapshot key that cannot be written: `fail()` is thrown under fail; under skip it is listed as lost. */
  loseKey(fail: () => Error, db: number, key: Buffer, why: string): void {
    if (this.mode === 'fail') throw fail();
    this.figures.errors++;
    this.lost.add(db, key, why);
  }
}
