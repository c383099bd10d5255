/**
 * Rebuilds one stream key with commands, from the decoder's stream records in file order:
 * entries -> meta -> (group -> PEL batches -> consumers)*.
 *
 *  - every live entry: `XADD key <id> f v ...` (explicit ids, so ids are exact);
 *  - a stream with no live entries is created with `XGROUP CREATE key <tmp> 0 MKSTREAM`
 *    + `XGROUP DESTROY` (works for last-id 0-0 too, where an XADD+XDEL trick cannot);
 *  - `XSETID key <last> ENTRIESADDED n MAXDELETEDID id` (7.0+; plain XSETID before) restores
 *    the counters; recorded-first-id follows from the entries, as in Redis's own loader;
 *  - each group: `XGROUP CREATE key g <last-delivered> [ENTRIESREAD n]` (a file older than
 *    RDB 10 stores no read counter: n is then what Redis's loader estimates, see
 *    estimateEntriesRead()), each consumer
 *    `XGROUP CREATECONSUMER`, and its pending entries `XCLAIM key g c 0 id... TIME t
 *    RETRYCOUNT n FORCE JUSTID`, which sets delivery time and count exactly.
 *
 * Not reproducible with commands (RESTORE is exact): consumer seen/active times (set to the
 * target's clock), and, on 7.0+ targets, PEL entries whose stream entry was deleted (XCLAIM
 * refuses ids that are not in the stream). DEBUG DIGEST covers only the entries, so it does
 * not see either; both are documented limits of command mode.
 *
 * The second is reported, not silent: the ids of the live entries are remembered (for
 * streams up to `trackIdsLimit` entries) and a pending id that is not among them is reported.
 *
 * Memory: one group's PEL (id -> delivery time/count) is held until its consumers arrive,
 * because the file stores the delivery data in the group PEL and the owner in the consumer;
 * plus the live ids of streams up to `trackIdsLimit` entries.
 */
import type { StreamConsumer, StreamEntry, StreamGroupHeader, StreamMeta, StreamPelEntry } from '../rdb/types.js';
import type { Command } from './command.js';

/** A group name no real stream is likely to have; created and destroyed at once. */
const TEMP_GROUP = '__replicant_mkstream__';

/** Most ids per XCLAIM. */
const MAX_CLAIM_IDS = 512;

export interface StreamRebuildOptions {
  /** major*100+minor of the target (see parseTargetVersion). */
  targetVersion: number;
  /** Report something that cannot be reproduced exactly. */
  issue: (message: string) => void;
  /** Remember live entry ids up to this many entries (to report PEL entries of deleted ones). Default 65536. */
  trackIdsLimit?: number;
}

interface OpenGroup {
  name: Buffer;
  /** id -> [deliveryTimeMs, deliveryCount], removed as consumers claim them. */
  pel: Map<string, [number, number]>;
}

export class StreamRebuilder {
  private readonly key: Buffer;
  private readonly emit: (cmd: Command) => void;
  private readonly opts: StreamRebuildOptions;
  private added = 0;
  private group: OpenGroup | null = null;
  /** True once the stream exists on the target (an XADD or MKSTREAM was emitted). */
  private exists = false;
  /** Live entry ids, while the stream is small enough to track; null past the limit. */
  private liveIds: Set<string> | null = new Set();
  private readonly trackIdsLimit: number;
  private deletedPending = 0;
  /** Id of the first entry in the file, and the metadata of a file without counters (RDB < 10). */
  private firstId: string | null = null;
  private legacyMeta: StreamMeta | null = null;

  constructor(key: Buffer, emit: (cmd: Command) => void, opts: StreamRebuildOptions) {
    this.key = key;
    this.emit = emit;
    this.opts = opts;
    this.trackIdsLimit = opts.trackIdsLimit ?? 65536;
  }

  /** Entries written with XADD so far. */
  get entriesWritten(): number {
    return this.added;
  }

  entries(entries: readonly StreamEntry[]): void {
    for (const e of entries) {
      if (this.firstId === null) this.firstId = e.id;
      if (e.fields.length === 0 || e.fields.length % 2 !== 0) {
        // XADD needs at least one field/value pair; Redis never writes such an entry.
        this.opts.issue(`stream entry ${e.id} has ${e.fields.length} field/value items; XADD cannot write it, skipped`);
        continue;
      }
      const cmd: Command = ['XADD', this.key, e.id];
      for (const f of e.fields) cmd.push(f);
      this.emit(cmd);
      this.added++;
      this.exists = true;
      if (this.liveIds !== null) {
        if (this.liveIds.size < this.trackIdsLimit) this.liveIds.add(e.id);
        else this.liveIds = null;
      }
    }
  }

  meta(meta: StreamMeta): void {
    this.legacyMeta = meta.entriesAdded === null ? meta : null;
    if (!this.exists) {
      this.emit(['XGROUP', 'CREATE', this.key, TEMP_GROUP, '0', 'MKSTREAM']);
      this.emit(['XGROUP', 'DESTROY', this.key, TEMP_GROUP]);
      this.exists = true;
    }
    if (this.opts.targetVersion >= 700 && meta.entriesAdded !== null && meta.maxDeletedId !== null) {
      this.emit(['XSETID', this.key, meta.lastId, 'ENTRIESADDED', meta.entriesAdded, 'MAXDELETEDID', meta.maxDeletedId]);
    } else {
      this.emit(['XSETID', this.key, meta.lastId]);
    }
  }

  startGroup(g: StreamGroupHeader): void {
    this.endGroup();
    const cmd: Command = ['XGROUP', 'CREATE', this.key, g.name, g.lastId];
    const legacy = this.legacyMeta;
    const entriesRead = legacy !== null ? estimateEntriesRead(g.lastId, legacy, this.firstId) : g.entriesRead;
    if (entriesRead !== null && this.opts.targetVersion >= 700) cmd.push('ENTRIESREAD', entriesRead);
    this.emit(cmd);
    this.group = { name: g.name, pel: new Map() };
  }

  pel(entries: readonly StreamPelEntry[]): void {
    const g = this.group;
    if (!g) throw new Error('stream PEL record outside a consumer group');
    for (const p of entries) g.pel.set(p.id, [p.deliveryTimeMs, p.deliveryCount]);
  }

  consumer(c: StreamConsumer): void {
    const g = this.group;
    if (!g) throw new Error('stream consumer record outside a consumer group');
    if (this.opts.targetVersion >= 602) {
      this.emit(['XGROUP', 'CREATECONSUMER', this.key, g.name, c.name]);
    } else if (c.pel.length === 0) {
      this.opts.issue(`consumer "${c.name.toString('latin1')}" of group "${g.name.toString('latin1')}" has no pending entries and XGROUP CREATECONSUMER needs a 6.2+ target: not created`);
    }
    // Consecutive ids with the same delivery time and count share one XCLAIM.
    let ids: string[] = [];
    let time = 0;
    let count = 0;
    const flush = () => {
      if (ids.length === 0) return;
      const cmd: Command = ['XCLAIM', this.key, g.name, c.name, '0'];
      for (const id of ids) cmd.push(id);
      cmd.push('TIME', time, 'RETRYCOUNT', count, 'FORCE', 'JUSTID');
      this.emit(cmd);
      ids = [];
    };
    for (const id of c.pel) {
      const nack = g.pel.get(id);
      if (!nack) {
        this.opts.issue(`pending entry ${id} of consumer "${c.name.toString('latin1')}" is not in the PEL of group "${g.name.toString('latin1')}": skipped`);
        continue;
      }
      g.pel.delete(id);
      if (this.liveIds !== null && !this.liveIds.has(id)) this.deletedPending++;
      if (ids.length > 0 && (nack[0] !== time || nack[1] !== count || ids.length >= MAX_CLAIM_IDS)) flush();
      time = nack[0];
      count = nack[1];
      ids.push(id);
    }
    flush();
  }

  /** Close the open group (if any); reports PEL entries no consumer owns. */
  endGroup(): void {
    const g = this.group;
    if (!g) return;
    if (g.pel.size > 0) {
      this.opts.issue(`${g.pel.size} pending entries of group "${g.name.toString('latin1')}" belong to no consumer: not recreated`);
    }
    this.group = null;
  }

  finish(): void {
    this.endGroup();
    if (this.deletedPending > 0 && this.opts.targetVersion >= 700) {
      this.opts.issue(`${this.deletedPending} pending entries refer to deleted stream entries; XCLAIM cannot recreate them on 7.0+ targets (RESTORE can)`);
    }
    this.liveIds = null;
  }
}

/**
 * The read counter Redis (7.0+) gives a consumer group loaded from a file older than RDB 10,
 * which stores none: the loader takes the stream's entries-added to be its live length (no
 * deleted entries, nothing trimmed) and then counts the group's position when it can be known
 * from that: 0 for an empty stream or a position before the first entry, 1 at the first
 * entry, the length at the stream's last id; null (unknown, nil in XINFO GROUPS) past the
 * last id or between the first and the last entry. `firstId` is the first entry's id.
 */
export function estimateEntriesRead(groupLastId: string, meta: StreamMeta, firstId: string | null): number | null {
  const added = meta.length;
  if (added === 0) return 0;
  const toLast = compareIds(groupLastId, meta.lastId);
  if (toLast === 0) return added;
  if (toLast > 0 || firstId === null) return null;
  const toFirst = compareIds(groupLastId, firstId);
  if (toFirst < 0) return 0;
  if (toFirst === 0) return 1;
  return null;
}

/** Negative, 0 or positive as stream id `a` ("ms-seq", unsigned 64-bit parts) sorts before, with or after `b`. */
function compareIds(a: string, b: string): number {
  const [am, as] = idParts(a);
  const [bm, bs] = idParts(b);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

function idParts(id: string): [bigint, bigint] {
  const dash = id.indexOf('-');
  return [BigInt(id.slice(0, dash)), BigInt(id.slice(dash + 1))];
}

