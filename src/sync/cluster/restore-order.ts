/**
 * Orders a migrated key's RESTORE on the target after what the other shards had already sent
 * through the migration guard (README "Cluster source", slot migrations).
 *
 * Each shard writes through its own target connection, so the guard's order (the order in which
 * it *sees* the shards' commands) is not the target's. When the exporting shard A's DEL of key k
 * (or a write of k from before the MIGRATE) passed the guard before the importing shard B's
 * RESTORE-ASKING of k, the guard let it through (k was not tracked yet); if A's connection then
 * delivers it after B's RESTORE, the target loses the migrated key (or counts a write twice).
 * Rule: B's unit holding the RESTORE is submitted only once every other streaming shard has
 * applied everything it had passed when the RESTORE was seen. What passes after it is decided
 * by the guard (k is tracked by then: A's late DEL is dropped).
 *
 * No deadlock: a shard waits only at a unit that starts with the RESTORE (the session cuts the
 * batch before it and submits what came before), and only for other shards' commands seen
 * before that RESTORE. Of two shards waiting on each other, the one whose held unit started
 * first waits only for commands the other had seen even earlier, which the other has already
 * submitted, so it is released.
 *
 * A shard's "lane" lives from the start of its stream to its end: offsets of a new stream (after
 * a reconnection or a full resync) are not comparable with the old, and a stream that ended has
 * applied (or lost, to be received again) what it had passed, so waits on it are released.
 */
import type { Logger } from '../../observe/logger.js';
import type { RemoteOrder } from './remote-order.js';

interface Lane {
  /** Offset of the last command this shard passed to its batcher. */
  passed: number;
  /** Offset this shard's target connection has applied. */
  applied: number;
  /** Bumped at each start and end of the shard's stream. */
  epoch: number;
  active: boolean;
}

interface Need {
  shard: string;
  lane: Lane;
  offset: number;
  epoch: number;
}

/** A wait longer than this is logged (it goes on: giving up could lose a key). */
const SLOW_WAIT_MS = 10_000;

export class RestoreOrder {
  private readonly lanes = new Map<string, Lane>();
  /** Per shard: what its last RESTORE must wait for (taken by wait()). */
  private readonly needs = new Map<string, Need[]>();
  private readonly waiters = new Set<() => void>();
  /** RESTOREs held until other shards applied what they had sent before them. */
  held = 0;
  /** The shards synced by other processes (shards shared among processes), when there are any. */
  remote: RemoteOrder | null = null;
  /** Per shard: the keys of its RESTOREs not yet ordered after the other processes' shards, and the offset of the last. */
  private readonly remoteKeys = new Map<string, { keys: Buffer[]; offset: number }>();

  constructor(private readonly log: Logger | undefined) {}

  /** The shard's stream starts at `offset` (nothing of it is in flight). */
  begin(shard: string, offset: number): void {
    const lane = this.lanes.get(shard);
    if (lane === undefined) this.lanes.set(shard, { passed: offset, applied: offset, epoch: 0, active: true });
    else Object.assign(lane, { passed: offset, applied: offset, epoch: lane.epoch + 1, active: true });
    this.wake();
  }

  /** The shard's stream ended: nothing more of it will be applied in this epoch. */
  end(shard: string): void {
    const lane = this.lanes.get(shard);
    if (lane === undefined) return;
    lane.active = false;
    lane.epoch++;
    this.needs.delete(shard);
    this.remoteKeys.delete(shard);
    this.remote?.forget(shard);
    this.wake();
  }

  /** The shard's target connection applied up to `offset`. */
  applied(shard: string, offset: number): void {
    const lane = this.lanes.get(shard);
    if (lane === undefined || !lane.active) return;
    lane.applied = offset;
    if (this.waiters.size > 0) this.wake();
  }

  /** The shard passed the command ending at `offset` (called for every command the guard sees). */
  passed(shard: string, offset: number): void {
    const lane = this.lanes.get(shard);
    if (lane !== undefined && lane.active) lane.passed = offset;
  }

  /** Whether a RESTORE from `shard` seen now would have to wait (some other shard has sent commands not applied yet, or is synced by another process). */
  mustWait(shard: string): boolean {
    if (this.remote?.active() === true) return true;
    for (const [s, lane] of this.lanes) if (s !== shard && lane.active && lane.passed > lane.applied) return true;
    return false;
  }

  /** Records what a RESTORE of `key` (ending at `offset`) from `shard`, seen now, waits for. */
  capture(shard: string, key: Buffer, offset: number): void {
    if (this.remote !== null) {
      const r = this.remoteKeys.get(shard) ?? { keys: [], offset };
      r.keys.push(key);
      r.offset = offset;
      this.remoteKeys.set(shard, r);
    }
    const need = this.needs.get(shard) ?? [];
    for (const [s, lane] of this.lanes) {
      if (s === shard || !lane.active || lane.passed <= lane.applied) continue;
      const n: Need = { shard: s, lane, offset: lane.passed, epoch: lane.epoch };
      // Several RESTOREs before one wait: each lane's latest requirement covers its earlier ones.
      const i = need.findIndex((p) => p.lane === lane);
      if (i < 0) need.push(n);
      else need[i] = n;
    }
    if (need.length > 0) this.needs.set(shard, need);
  }

  /** Resolves once what the shard's last RESTOREs captured is applied (at once when nothing was), here and by the other processes. */
  async wait(shard: string): Promise<void> {
    await this.waitLocal(shard);
    const r = this.remoteKeys.get(shard);
    this.remoteKeys.delete(shard);
    if (r === undefined || this.remote === null) return;
    this.held++;
    await this.remote.settle(shard, r.keys, r.offset);
  }

  private async waitLocal(shard: string): Promise<void> {
    const need = this.needs.get(shard);
    this.needs.delete(shard);
    if (need === undefined) return;
    const pending = () => need.filter((n) => n.lane.epoch === n.epoch && n.lane.applied < n.offset);
    if (pending().length === 0) return;
    this.held++;
    const started = Date.now();
    let warned = false;
    await new Promise<void>((resolve) => {
      const check = (): void => {
        const left = pending();
        if (left.length === 0) {
          this.waiters.delete(check);
          clearInterval(timer);
          resolve();
        } else if (!warned && Date.now() - started >= SLOW_WAIT_MS) {
          warned = true;
          this.log?.warn({ shard, waitingFor: left.map((n) => ({ shard: n.shard, offset: n.offset, applied: n.lane.applied })) }, 'slot migration: a key restored by this shard waits until the other shards have applied what they sent before it (their target connections are slow); still waiting');
        }
      };
      const timer = setInterval(check, SLOW_WAIT_MS / 2);
      timer.unref();
      this.waiters.add(check);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
