/**
 * Tells whether the masters of a cluster target still hold what the sync applied.
 *
 * On a standalone target each batch's GETSET of the checkpoint proves it; on a cluster the
 * checkpoint is a file and a batch spans nodes, so one marker key per master does: a key
 * `__replicant:marker:<sync>{tag}` whose tag hashes to a slot that master serves. Markers are
 * placed once streaming starts and checked on every lease renewal; a marker placed or seen in
 * this run that a master no longer holds means that master was flushed, restarted without
 * persistence or replaced by an empty node. A marker travels with its slot when the target is
 * resharded, and a master that gets slots later gets its own marker.
 *
 * Replicant relays a source FLUSHALL too, which removes the markers: `suspendUntil` skips the
 * checks until that unit is applied, then the markers are placed again.
 */
import { reservedKey } from './reserved.js';
import { SLOT_COUNT, crc16 } from '../commands/slot.js';

export type NodeCall = (args: readonly (string | number | Buffer)[]) => Promise<unknown>;

export interface MasterSlot {
  /** host:port, for the message. */
  addr: string;
  /** A slot this master serves (the marker goes there). */
  slot: number;
  call: NodeCall;
}

/** `{tag}` contents per slot: the shortest decimal strings whose CRC16 lands on it, found once. */
let tags: string[] | null = null;

function tagFor(slot: number): string {
  if (tags === null) {
    tags = new Array<string>(SLOT_COUNT);
    let left = SLOT_COUNT;
    for (let i = 0; left > 0; i++) {
      const t = String(i);
      const s = crc16(Buffer.from(t)) % SLOT_COUNT;
      if (tags[s] === undefined) {
        tags[s] = t;
        left--;
      }
    }
  }
  return tags[slot]!;
}

export class ClusterMarkers {
  /** Slots whose marker this run placed or saw. */
  private readonly known = new Set<number>();
  /** No check before this offset is applied (a relayed FLUSHALL removes the markers). */
  private resumeAt = -1;

  constructor(private readonly syncId: string) {}

  key(slot: number): string {
    // A brace in the name would make the first {...} the hash tag: every marker in one slot.
    return reservedKey(`marker:${this.syncId.replace(/[{}]/g, '_')}{${tagFor(slot)}}`);
  }

  /** Forget every marker (a full sync is starting: the target is being rewritten). */
  reset(): void {
    this.known.clear();
    this.resumeAt = -1;
  }

  /** A unit completing `offset` wipes the markers: place them again once it is applied. */
  suspendUntil(offset: number): void {
    this.resumeAt = Math.max(this.resumeAt, offset);
    this.known.clear();
  }

  /**
   * Checks each master's marker (placing it where this run has none yet). Returns the evidence
   * of a master that lost its data, or null. A redirect (the slot moved meanwhile) proves nothing.
   */
  async check(masters: readonly MasterSlot[], applied: number | null): Promise<string | null> {
    if (applied === null || applied < this.resumeAt) return null;
    for (const m of masters) {
      const key = this.key(m.slot);
      let exists: unknown;
      try {
        exists = await m.call(['EXISTS', key]);
      } catch (e) {
        if (/^(MOVED|ASK) /.test((e as Error).message)) continue;
        throw e;
      }
      if (Number(exists) === 1) {
        this.known.add(m.slot);
        continue;
      }
      if (this.known.has(m.slot)) return `master ${m.addr} no longer holds the marker key ${key} placed while streaming`;
      await m.call(['SET', key, '1']);
      this.known.add(m.slot);
    }
    return null;
  }
}
