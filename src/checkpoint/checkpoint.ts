/**
 * The checkpoint: which source history (replid) and which byte of it (offset) the target
 * has applied, plus the db selected at that point of the stream. Resuming sends
 * `PSYNC <replid> <offset + 1>` and selects `db` before applying what follows.
 *
 * `state: 'full-sync'` marks a target in the middle of a full sync: its contents are a
 * partial snapshot and are not resumable; `cleanStart` records that the target held
 * nothing but Replicant's data when that sync began, so a restart may flush it.
 */
export interface Checkpoint {
  replid: string;
  offset: number;
  db: number;
  state: 'streaming' | 'full-sync';
  cleanStart: boolean;
  /** Unix ms when written (informational). */
  at: number;
  /** run_id of the source when written: tells a restarted source from a failover. */
  sourceRunId?: string;
  /** The partial sync's filters (PartialScope fingerprint); absent for a full copy. */
  filter?: string;
  /** The sync it belongs to (`--name`, or the source address): another sync must not adopt it. */
  sync?: string;
  /** The target it describes (host:port): a checkpoint file says nothing about another target. */
  target?: string;
}

import { UsageError } from '../errors.js';

export function serializeCheckpoint(cp: Checkpoint): string {
  return JSON.stringify({ v: 1, replid: cp.replid, offset: cp.offset, db: cp.db, state: cp.state, cleanStart: cp.cleanStart, at: cp.at, sourceRunId: cp.sourceRunId, filter: cp.filter, sync: cp.sync, target: cp.target });
}

/** Parse a stored checkpoint; returns null (never throws) for anything that is not one. */
export function parseCheckpoint(text: string | Buffer | null | undefined): Checkpoint | null {
  if (text === null || text === undefined) return null;
  let o: unknown;
  try {
    o = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  const r = o as Record<string, unknown>;
  if (r['v'] !== 1 || typeof r['replid'] !== 'string' || typeof r['offset'] !== 'number' || typeof r['db'] !== 'number') return null;
  if (!/^[0-9a-f?]{1,40}$/i.test(r['replid']) || !Number.isSafeInteger(r['offset']) || !Number.isInteger(r['db']) || r['db'] < 0) return null;
  const state = r['state'] === 'full-sync' ? 'full-sync' : 'streaming';
  const cp: Checkpoint = { replid: r['replid'], offset: r['offset'], db: r['db'], state, cleanStart: r['cleanStart'] === true, at: typeof r['at'] === 'number' ? r['at'] : 0 };
  if (typeof r['sourceRunId'] === 'string') cp.sourceRunId = r['sourceRunId'];
  if (typeof r['filter'] === 'string' && r['filter'] !== '') cp.filter = r['filter'];
  if (typeof r['sync'] === 'string') cp.sync = r['sync'];
  if (typeof r['target'] === 'string') cp.target = r['target'];
  return cp;
}

/**
 * A stored value that is not a checkpoint (truncated, overwritten, hand-edited): it must not be
 * taken for "no checkpoint" (that would suggest --existing flush on a target this sync wrote, or
 * copy again for nothing), so the sync stops and says where it is, what it holds, what to do.
 */
export function unreadableCheckpoint(where: string, text: string | Buffer, remedy: string): UsageError {
  const shown = (typeof text === 'string' ? text : text.toString('utf8')).slice(0, 120);
  const full = (typeof text === 'string' ? text.length : text.length) <= 120;
  return new UsageError(
    `the checkpoint in ${where} is not a Replicant checkpoint (truncated or overwritten?): it holds ${JSON.stringify(shown)}${full ? '' : '...'}. ` +
      `If it was this sync's, the target's position is unknown: ${remedy}`,
  );
}
