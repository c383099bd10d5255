/**
 * The figures of one sync: counters, rates, lag, and the status built from them. Nothing here
 * decides anything; steps and the error policy count, `status()` reports.
 */
import { RateMeter } from '../observe/progress.js';
import { isShort, type Shortfall } from './incomplete.js';
import type { LostKeys } from './lost-keys.js';
import type { Phase } from './phases.js';

export interface SyncStatus {
  phase: Phase;
  replid: string | null;
  /** Offset of the last byte of the stream received from the source. */
  receivedOffset: number | null;
  /** Offset applied on the target (what is ACKed and checkpointed). */
  appliedOffset: number | null;
  lagBytes: number | null;
  lagMs: number | null;
  rdb: { bytes: number; totalBytes: number | null; keys: number; keysPerSec: number } | null;
  opsPerSec: number;
  commandsApplied: number;
  errors: number;
  fullSyncs: number;
  partialSyncs: number;
  /** Snapshot keys not written to the target (rejected, corrupt, untranslatable), and the file listing them. */
  lostKeys: number;
  lostKeysReport: string | null;
  /** Stream commands the target rejected and that were skipped (--on-error skip). */
  skippedCommands: number;
  /** false while the target's copy is known to be short: snapshot not fully applied, keys lost or commands skipped. */
  complete: boolean;
}

/** What the status needs from the rest of the session at the moment it is asked. */
export interface Position {
  phase: Phase;
  replid: string | null;
  applied: number | null;
  received: number | null;
  /** Command errors counted by the target writer itself. */
  writerErrors: number;
}

export class SyncFigures {
  rdbTotal: number | null = null;
  rdbBytes = 0;
  rdbKeys = 0;
  /** Set while a snapshot is being applied (or an earlier run's was left unfinished). */
  snapshotUnfinished = false;
  commandsApplied = 0;
  errors = 0;
  fullSyncs = 0;
  partialSyncs = 0;
  skippedCommands = 0;
  readonly keyRate = new RateMeter();
  readonly opRate = new RateMeter();
  private samples: { offset: number; t: number }[] = [];

  constructor(readonly lost: LostKeys) {}

  /** A new snapshot begins: its figures start from zero. */
  startSnapshot(totalBytes: number | null): void {
    this.rdbTotal = totalBytes;
    this.rdbBytes = 0;
    this.rdbKeys = 0;
    this.snapshotUnfinished = true;
    this.lost.reset();
  }

  snapshotKeys(keys: number): void {
    this.rdbKeys = keys;
    this.keyRate.mark(keys);
  }

  applied(commands: number): void {
    this.commandsApplied += commands;
    this.opRate.mark(this.commandsApplied);
  }

  /** Records when the received offset moved (every 100 ms): the lag in ms is read from these. */
  sample(received: number | null, applied: number | null): void {
    if (received === null) return;
    const s = this.samples;
    const last = s[s.length - 1];
    if (last === undefined || last.offset !== received) s.push({ offset: received, t: Date.now() });
    const done = applied ?? 0;
    while (s.length > 1 && s[1]!.offset <= done) s.shift();
    if (s.length > 10_000) s.splice(0, 5_000);
  }

  shortfall(): Shortfall {
    return {
      snapshotUnfinished: this.snapshotUnfinished,
      keysRead: this.rdbKeys,
      rdbBytes: this.rdbBytes,
      rdbTotalBytes: this.rdbTotal,
      lostKeys: this.lost.count,
      report: this.lost.path,
      skippedCommands: this.skippedCommands,
    };
  }

  status(p: Position): SyncStatus {
    const { applied, received } = p;
    let lagMs: number | null = null;
    if (applied !== null && received !== null) {
      if (applied >= received) lagMs = 0;
      else {
        // The oldest sample past the applied offset tells when the unapplied bytes arrived;
        // without one, they arrived since the last sample.
        const now = Date.now();
        const s = this.samples.find((x) => x.offset > applied);
        const last = this.samples[this.samples.length - 1];
        lagMs = s ? now - s.t : last ? Math.min(now - last.t, 100) : null;
      }
    }
    return {
      phase: p.phase,
      replid: p.replid,
      receivedOffset: received,
      appliedOffset: applied,
      lagBytes: applied !== null && received !== null ? Math.max(0, received - applied) : null,
      lagMs,
      rdb: p.phase === 'full-sync' || this.rdbTotal !== null ? { bytes: this.rdbBytes, totalBytes: this.rdbTotal, keys: this.rdbKeys, keysPerSec: this.keyRate.rate() } : null,
      opsPerSec: this.opRate.rate(),
      commandsApplied: this.commandsApplied,
      errors: this.errors + p.writerErrors,
      fullSyncs: this.fullSyncs,
      partialSyncs: this.partialSyncs,
      lostKeys: this.lost.count,
      lostKeysReport: this.lost.path,
      skippedCommands: this.skippedCommands,
      complete: !isShort(this.shortfall()),
    };
  }
}
