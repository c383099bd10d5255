/**
 * Keeps a slot migration between two shards of a cluster source from deleting the migrated keys
 * on the target. One guard is shared by every shard session of a cluster sync; each shard's
 * stream passes its commands through `apply(cmd, shard)` (before any partial-sync filter: keys
 * are the source's names).
 *
 * What MIGRATE propagates (observed on redis-server 7.0, asserted by
 * test/integration/cluster-helpers.test.ts):
 * - the destination shard's stream carries one `RESTORE-ASKING key ttl payload` per key, in
 *   the order MIGRATE sent them; a key with a TTL arrives with the TTL made absolute (unix ms) and
 *   `ABSTTL` appended; `MIGRATE ... REPLACE` adds `REPLACE` (before `ABSTTL`). Never REPLACE
 *   otherwise, never wrapped in MULTI.
 * - the source shard's stream carries, after that, one `DEL k1 k2 ...` per MIGRATE call naming
 *   exactly the keys the destination accepted (a batch refused half-way with BUSYKEY deletes the
 *   keys restored before the refusal); MIGRATE itself is never propagated. `MIGRATE ... COPY`
 *   propagates nothing on the source.
 * - a key written through ASK on the importing node appears in the destination's stream as the
 *   plain command (SET...).
 *
 * The two streams reach the target independently, so for a key k moving from shard A to B:
 * - A's DEL first, then B's RESTORE: the target deletes k, then restores it: correct as is.
 * - B's RESTORE first: the target still holds A's copy of k, so the RESTORE needs REPLACE (which
 *   `apply` adds: B's RESTORE succeeded, so B's k is the current one). Whatever A's stream still
 *   carries for k up to its DEL was run BEFORE the MIGRATE (A cannot touch k after it), and its
 *   effect is already in B's payload: A's writes of k (an INCR would count twice) and A's DEL
 *   (it would delete the migrated key) must be dropped.
 * The rule covering both: a key that arrived by RESTORE-ASKING from shard B is tracked with its
 * `owner` B (the shard whose copy the target holds). A command of another shard naming a tracked
 * key is from before that migration and is dropped: a DEL/UNLINK only loses the tracked keys
 * (its other keys stay) and releases them (it was the migration's DEL, the last command of the old
 * owner for the key); any other command is dropped whole (a multi-key command names keys of one
 * slot: the slot's other keys are being migrated too, with their values at MIGRATE time, which
 * include that command). The owner's own commands, its DEL included, are applied, and the entry
 * kept: a migration's DEL from elsewhere may still be on its way. A RESTORE-ASKING from another
 * shard (the slot moved on) makes that shard the owner.
 *
 * The guard's order is the order in which it sees the shards' commands; the target's is each
 * shard connection's own. So a RESTORE-ASKING is also held (restore-order.ts) until the other
 * shards have applied what passed the guard before it: an exporting shard's DEL or write of the
 * key that the guard let through (the key was not tracked yet) reaches the target first.
 * Every dropped DEL and write is counted and logged (info, at most every LOG_EVERY_MS).
 *
 * Entries whose DEL came first (or never comes, e.g. MIGRATE COPY) would live forever, so they
 * are released by `sweep(before)` once no command they could pair with can still arrive: when
 * every shard has applied what its source had run some time after the entry was made. The
 * source runs MIGRATE's DEL within the MIGRATE call, right after the destination's RESTORE
 * reply, so "some time" is a grace period longer than a MIGRATE call. `SweepRounds` runs that
 * schedule for the coordinator. Sweeping late only costs memory; sweeping early could let a late
 * DEL delete a migrated key. A cap (`maxEntries`) releases the oldest entries beyond it, with a
 * warning.
 *
 * `noteSnapshotKey(k, X)` tracks a key a shard's snapshot wrote as if it had arrived by
 * RESTORE-ASKING from X. Optional: use it for keys of slots that were migrating or importing
 * when the shard's snapshot was taken, where another shard's stream may still carry their DEL.
 *
 * Limits: within the time an entry lives (until the sweep), a key that left A is only expected
 * back on A by a RESTORE-ASKING: if the slot returns to A without the key (deleted on B first)
 * and A creates and writes it, A's commands on it are dropped until the entry is released.
 * One shard's stream must not lag behind another's by a whole round trip of the same
 * key (A -> B, then B -> A, all of A's side applied before B's RESTORE of the first move): B's
 * stale RESTORE would then replace A's newer copy, and B's DEL of the second move delete it.
 * Telling that RESTORE stale would need the streams' relative progress, which the commands do
 * not carry. With MIGRATE COPY the source holds two copies; the guard follows the destination's one
 * (the copy that survives when the slot is handed over), so the old owner's commands on a copied
 * key before the handover are dropped. Keys are matched by name only: a cluster source has db 0.
 */
import type { Logger } from '../../observe/logger.js';
import { encodeCommand } from '../../resp/encode.js';
import type { StreamCommand } from '../../resp/stream-parser.js';
import { commandKeys, keyIndexes } from '../../commands/keys.js';
import { printableKey } from '../../errors.js';
import { RestoreOrder } from './restore-order.js';

export interface MigrationGuardOptions {
  /** Most tracked keys before the oldest are released (default 1,000,000). */
  maxEntries?: number;
  logger?: Logger;
}

interface Entry {
  /** The shard whose copy of the key the target holds. */
  owner: string;
  /** mark() value when the key was last tracked (RESTORE-ASKING or snapshot). */
  seq: number;
}

const RESTORE_ASKING = 'restore-asking';
/** Dropped DELs and writes are logged at most this often (a reshard drops thousands). */
const LOG_EVERY_MS = 10_000;
const REPLACE = Buffer.from('REPLACE');

export class MigrationGuard {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly log: Logger | undefined;
  private seq = 0;
  private warned = false;
  /** Keys dropped from DEL/UNLINK: the target's copy came from another shard by a migration. */
  droppedDeletes = 0;
  /** Other commands dropped: a shard's writes of a key it had migrated away, from before the MIGRATE. */
  droppedWrites = 0;
  /** Entries released by the cap, before any DEL or sweep could release them. */
  evicted = 0;
  /** Key positions of the command being looked at, reused (apply sees every streamed command). */
  private readonly keyAt: number[] = [];
  /** Holds a RESTORE-ASKING until the other shards applied what passed the guard before it. */
  readonly order: RestoreOrder;
  /** Drops not logged yet, and when the last log line was written. */
  private unlogged = { deletes: 0, writes: 0, at: 0 };

  constructor(opts: MigrationGuardOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 1_000_000;
    this.log = opts.logger;
    this.order = new RestoreOrder(this.log);
  }

  /** Keys tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /** The shard whose copy of `key` the target holds, when the key is tracked. */
  ownerOf(key: Buffer): string | undefined {
    return this.entries.get(key.toString('latin1'))?.owner;
  }

  /** A point in the guard's history: entries tracked before it are released by sweep(mark). */
  mark(): number {
    // The next seq: every entry tracked so far has a smaller one.
    return this.seq + 1;
  }

  /**
   * What to forward for `cmd` from shard `shard`: `cmd.raw`, a rewritten command (a DEL without
   * the keys whose deletion is dropped, a RESTORE-ASKING with REPLACE), or null (a write from
   * before a migration, or a DEL with no key left).
   */
  apply(cmd: StreamCommand, shard: string): Buffer | null {
    const name = cmd.name;
    this.order.passed(shard, cmd.offset);
    if (name === RESTORE_ASKING) return this.restore(cmd, shard);
    if (this.entries.size === 0) return cmd.raw;
    if (name === 'del' || name === 'unlink') return this.del(cmd, shard);
    // Every key the command names, read or written (values are never taken for keys).
    const keys = commandKeys(name);
    if (keys.single) return this.staleWrite(cmd, cmd.arg(1), shard) ? null : cmd.raw;
    this.keyAt.length = 0;
    for (const i of keyIndexes(keys, cmd, 'all', this.keyAt)) if (this.staleWrite(cmd, cmd.arg(i), shard)) return null;
    return cmd.raw;
  }

  /** Whether `key` is tracked for another shard than `shard`: that shard's command on it is from before the migration (counted). */
  private staleWrite(cmd: StreamCommand, key: Buffer | undefined, shard: string): boolean {
    const e = key === undefined ? undefined : this.entries.get(key.toString('latin1'));
    if (e === undefined || e.owner === shard) return false;
    this.droppedWrites++;
    this.noteDropped('writes', cmd, key!, shard, e.owner);
    return true;
  }

  /** Tracks `key`, written by shard `shard`'s snapshot, as if restored by a migration (optional, see the module comment). */
  noteSnapshotKey(key: Buffer, shard: string): void {
    this.track(key.toString('latin1'), shard);
  }

  /** Releases the entries tracked before `before` (a mark()): no DEL they could pair with can arrive any more. */
  sweep(before: number): number {
    let released = 0;
    // Map order is tracking order (track() re-inserts), so the old entries come first.
    for (const [k, e] of this.entries) {
      if (e.seq >= before) break;
      this.entries.delete(k);
      released++;
    }
    this.warned = false;
    return released;
  }

  private restore(cmd: StreamCommand, shard: string): Buffer {
    const key = cmd.arg(1);
    if (key === undefined) return cmd.raw;
    this.track(key.toString('latin1'), shard);
    // Where the RESTORE starts: any byte of it arriving means the exporting master has done the MIGRATE (remote-order.ts).
    this.order.capture(shard, key, cmd.offset - cmd.raw.length + 1);
    const args = cmd.args;
    // The target may still hold the source shard's copy (its DEL not applied yet): replace it.
    for (let i = 4; i < args.length; i++) if (args[i]!.length === 7 && args[i]!.toString('latin1').toUpperCase() === 'REPLACE') return cmd.raw;
    return encodeCommand([...args, REPLACE]);
  }

  private del(cmd: StreamCommand, shard: string): Buffer | null {
    const args = cmd.args;
    let kept: Buffer[] | null = null;
    // Keys dropped by this command: a key named twice is dropped twice (its entry is gone by then).
    let consumed = null as Set<string> | null;
    for (let i = 1; i < args.length; i++) {
      const k = args[i]!;
      const id = k.toString('latin1');
      const e = this.entries.get(id);
      if ((e === undefined || e.owner === shard) && consumed?.has(id) !== true) {
        kept?.push(k);
        continue;
      }
      // A migration's DEL of a copy the target no longer holds: consumed.
      if (e !== undefined) {
        this.entries.delete(id);
        this.droppedDeletes++;
        this.noteDropped('deletes', cmd, k, shard, e.owner);
        (consumed ??= new Set()).add(id);
      }
      kept ??= args.slice(0, i);
    }
    if (kept === null) return cmd.raw;
    return kept.length > 1 ? encodeCommand(kept) : null;
  }

  /** A dropped DEL or write is never silent: the first is logged at once, then a count every LOG_EVERY_MS. */
  private noteDropped(kind: 'deletes' | 'writes', cmd: StreamCommand, key: Buffer, shard: string, owner: string): void {
    const u = this.unlogged;
    u[kind]++;
    const now = Date.now();
    if (now - u.at < LOG_EVERY_MS) return;
    this.log?.info(
      { command: cmd.name.toUpperCase(), key: printableKey(key), from: shard, restoredBy: owner, offset: cmd.offset, droppedDeletes: u.deletes, droppedWrites: u.writes, totalDroppedDeletes: this.droppedDeletes, totalDroppedWrites: this.droppedWrites },
      "slot migration: dropped another shard's DEL or write of a key the slot's new owner has restored since (it ran on the old owner before the MIGRATE, whose copy of the key already includes it; applying it would delete the migrated key or count the write twice)",
    );
    this.unlogged = { deletes: 0, writes: 0, at: now };
  }

  private track(id: string, shard: string): void {
    // Re-inserted, so the Map stays ordered by seq (sweep stops at the first young entry).
    this.entries.delete(id);
    this.entries.set(id, { owner: shard, seq: ++this.seq });
    if (this.entries.size <= this.maxEntries) return;
    const oldest = this.entries.keys().next().value as string;
    this.entries.delete(oldest);
    this.evicted++;
    if (!this.warned) {
      this.warned = true;
      this.log?.warn({ maxEntries: this.maxEntries, evicted: this.evicted }, 'migration guard: too many keys moved by slot migrations are waiting for their DEL; the oldest are no longer guarded (a late DEL of one would delete it on the target)');
    }
  }
}

/**
 * The sweep schedule of a MigrationGuard. Every few seconds the coordinator samples each shard's
 * source replication offset (INFO master_repl_offset of the node the shard streams from) and
 * calls `begin(offsets, sampledAt)` with the time it started sampling; each shard session calls
 * `applied(shard, offset)` after applying a unit. Once every shard of the round has applied up to
 * its sampled offset, all the sources ran before `sampledAt` is on the target, so the entries made
 * more than `graceMs` before `sampledAt` can no longer meet their DEL or a stale write: they are
 * swept. A round begun while another is pending replaces it (a shard gone from the topology
 * would otherwise hold it forever).
 */
export class SweepRounds {
  private pending: { targets: Map<string, number>; sampledAt: number; mark: number; markAt: number } | null = null;
  /** Marks of completed rounds not swept yet, oldest first. */
  private readonly marks: Array<{ mark: number; at: number }> = [];

  constructor(
    private readonly guard: MigrationGuard,
    private readonly graceMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  begin(offsets: ReadonlyMap<string, number>, sampledAt: number): void {
    this.pending = { targets: new Map(offsets), sampledAt, mark: this.guard.mark(), markAt: this.now() };
    this.check();
  }

  /** Returns the number of entries swept when this call completed a round, else 0. */
  applied(shard: string, offset: number): number {
    const p = this.pending;
    if (p === null) return 0;
    const want = p.targets.get(shard);
    if (want === undefined || offset < want) return 0;
    p.targets.delete(shard);
    return this.check();
  }

  private check(): number {
    const p = this.pending;
    if (p === null || p.targets.size > 0) return 0;
    this.pending = null;
    this.marks.push({ mark: p.mark, at: p.markAt });
    let sweepTo = -1;
    while (this.marks.length > 0 && this.marks[0]!.at <= p.sampledAt - this.graceMs) sweepTo = this.marks.shift()!.mark;
    return sweepTo < 0 ? 0 : this.guard.sweep(sweepTo);
  }
}
