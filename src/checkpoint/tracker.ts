/**
 * The checkpoint of the running sync: what it says (replid, offset, db, how the copy began)
 * and, with a checkpoint on the target, the proof carried by every batch. Each batch's
 * transaction ends with `GETSET <key> <checkpoint>`: its reply must be the checkpoint of the
 * batch before. Anything else means the target lost what it had applied (a flush, a restart
 * without persistence, a failover to an empty or older node), found at no extra round trip.
 */
import type { Arg } from '../resp/encode.js';
import { parseCheckpoint, type Checkpoint } from './checkpoint.js';
import type { CheckpointStore } from './store.js';

export interface InlineCheckpoint {
  /** Commands to append to the batch's transaction (null: this store does not write inline). */
  commands: Arg[][] | null;
  /** Checks EXEC's replies for the previous checkpoint. */
  onExecReply?: (replies: unknown[]) => void;
}

export class CheckpointTracker {
  /** The source's replication id the offsets belong to. */
  replid: string | null = null;
  /** The target held only this sync's keys when the copy began (a full resync may flush it). */
  cleanStart = false;
  /** run_id of the source seen before the last PSYNC. */
  sourceRunId: string | null = null;
  /** Offset of the checkpoint the next inline GETSET should find on the target (submission order). */
  private expected: number | null = null;
  /** Offsets of units given up after an abort (--on-error skip): their checkpoint never reached the target. */
  private readonly givenUp = new Set<number>();

  constructor(
    private readonly fixed: { sync: string; target: string; filter: string },
    private readonly onLost: (evidence: string, fields: Record<string, unknown>) => void,
  ) {}

  current(state: Checkpoint['state'], offset: number, db: number): Checkpoint {
    const cp: Checkpoint = { replid: this.replid ?? '?', offset, db, state, cleanStart: this.cleanStart, at: Date.now() };
    if (this.sourceRunId !== null) cp.sourceRunId = this.sourceRunId;
    if (this.fixed.filter !== '') cp.filter = this.fixed.filter;
    cp.sync = this.fixed.sync;
    cp.target = this.fixed.target;
    return cp;
  }

  /** The target holds the checkpoint of `offset` now (after a snapshot, a resume, a bridge). */
  expect(offset: number): void {
    this.expected = offset;
  }

  /** The unit completing `offset` was given up: its checkpoint never reached the target. */
  giveUp(offset: number): void {
    this.givenUp.add(offset);
  }

  /**
   * The checkpoint commands for the unit completing `offset` (leaving the connection in
   * `dbAfter`), after `before` (our own commands: Replicant's keys put back after a flush or
   * swap in the unit, the foreign-writes ledger). After a flush the GETSET finds nothing, so it
   * is not checked then.
   */
  inline(store: CheckpointStore, cp: Checkpoint, dbAfter: number, before: Arg[][] | null, flushed: boolean): InlineCheckpoint {
    const ckpt = store.inlineCommands(cp, dbAfter);
    const commands = before !== null ? [...before, ...(ckpt ?? [])] : ckpt;
    if (ckpt === null) return { commands };
    const expected = flushed ? null : this.expected;
    this.expected = cp.offset;
    if (expected === null) return { commands };
    // The GETSET's reply is this far from the end of EXEC's replies.
    const fromEnd = ckpt.length - ckpt.findIndex((c) => c[0] === 'GETSET');
    return { commands, onExecReply: (replies) => this.verifyPrevious(replies[replies.length - fromEnd], expected, cp.offset) };
  }

  /**
   * The snapshot's own 'full-sync' checkpoint must still be there when the copy ends (the GETSET
   * of the streaming checkpoint replaced it): else the target lost part of the copy meanwhile.
   */
  verifySnapshotKept(replaced: unknown, offset: number): boolean {
    const before = typeof replaced === 'string' || Buffer.isBuffer(replaced) ? parseCheckpoint(replaced) : null;
    if (before !== null && before.state === 'full-sync' && before.offset === offset) return true;
    this.onLost(`the snapshot's checkpoint was ${before === null ? 'gone' : `replaced (offset ${before.offset}, ${before.state})`} when the copy ended`, {});
    return false;
  }

  private verifyPrevious(prev: unknown, expected: number, offset: number): void {
    const cp = typeof prev === 'string' || Buffer.isBuffer(prev) ? parseCheckpoint(prev) : null;
    // Offsets only: they continue across a failover, where the replid changes under us.
    if (cp !== null && cp.offset === expected) return;
    // The unit before was given up after an abort (--on-error skip): its checkpoint was never written.
    if (cp !== null && cp.offset < expected && this.givenUp.delete(expected)) return;
    const found = cp === null ? 'no checkpoint' : `the checkpoint of offset ${cp.offset}`;
    this.onLost(`applying offset ${offset} found ${found} where offset ${expected} was`, { expectedOffset: expected, found: cp?.offset ?? null });
  }
}
