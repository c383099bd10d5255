/**
 * --existing: what a first full sync does to a target that already holds keys. The same
 * answer for a standalone source's sync and for a cluster source's coordinator (which decides
 * once for all its shards): keys in Replicant's reserved namespace are not the target's data.
 */
import { TargetError } from '../../errors.js';
import { keyspaceTotal, parseInfo } from '../../commands/info.js';
import { LEGACY_CHECKPOINT_KEY } from '../../checkpoint/identity.js';
import { RESERVED_PREFIX, isOwnKey } from '../../checkpoint/reserved.js';
import type { Logger } from '../../observe/logger.js';
import type { UnitWriter } from '../../writer/index.js';
import type { ExistingPolicy } from '../options.js';
import type { SyncContext } from '../context.js';
import { flushTarget } from './resync.js';

/** Keys of the target that are not Replicant's (every db), and whether a checkpoint of an older Replicant is there. */
export async function countForeignKeys(w: UnitWriter, homeDb: number, cluster: boolean): Promise<{ foreign: number; legacy: boolean }> {
  let keys = 0;
  for (const call of w.nodeCalls()) keys += keyspaceTotal(parseInfo(String(await call(['INFO', 'keyspace']))));
  if (keys === 0) return { foreign: 0, legacy: false };
  let reserved = 0;
  let legacy = false;
  // Replicant's keys live in its home db (db 0 of every master of a cluster).
  if (!cluster) await w.call(['SELECT', homeDb]);
  for (const call of w.nodeCalls()) {
    let cursor = '0';
    do {
      const [next, batch] = (await call(['SCAN', cursor, 'MATCH', `${RESERVED_PREFIX}*`, 'COUNT', 1000])) as [unknown, unknown[]];
      cursor = String(next);
      for (const k of batch) {
        const key = Buffer.isBuffer(k) ? k : Buffer.from(String(k), 'latin1');
        // User data under the prefix is the target's data like any other key.
        if (isOwnKey(key)) reserved++;
        if (key.toString('latin1') === LEGACY_CHECKPOINT_KEY) legacy = true;
      }
    } while (cursor !== '0');
  }
  if (!cluster) await w.call(['SELECT', 0]);
  return { foreign: keys - reserved, legacy };
}

export interface ExistingDecision {
  policy: ExistingPolicy;
  foreign: number;
  /** Other syncs writing to the target (a flush would delete their keys). */
  others: string[];
  where: string;
  log: Logger;
  flush(): Promise<void>;
}

/** Applies --existing; returns whether the copy starts clean (the target then holds only what this sync writes). */
export async function applyExistingPolicy(d: ExistingDecision): Promise<boolean> {
  if (d.foreign <= 0) return true;
  switch (d.policy) {
    case 'fail':
      throw new TargetError(`${d.where} already holds ${d.foreign} keys; refusing to write over them (use --existing replace to overwrite keys the source has, or --existing flush to empty the target first)`);
    case 'flush':
      if (d.others.length > 0) throw new TargetError(`--existing flush: other syncs write to the ${d.where} (${d.others.join(', ')}); flushing would delete their keys. Use --existing replace`);
      d.log.warn({ keys: d.foreign }, 'target holds keys: flushing it first (--existing flush)');
      await d.flush();
      return true;
    case 'replace':
      d.log.warn({ keys: d.foreign }, 'target holds keys: keys the source has will be replaced, others kept (--existing replace)');
      return false;
  }
}

/** Refuse to overwrite a target that holds data, unless told to (--existing). */
export async function checkExistingKeys(ctx: SyncContext): Promise<void> {
  const { foreign, legacy } = await countForeignKeys(ctx.target.data, ctx.store.homeDb, ctx.target.cluster);
  if (legacy) {
    ctx.log.warn(`the target holds a checkpoint of an earlier Replicant version ("${LEGACY_CHECKPOINT_KEY}"): to resume that sync, run with --checkpoint target:${LEGACY_CHECKPOINT_KEY}`);
  }
  ctx.tracker.cleanStart = await applyExistingPolicy({
    policy: ctx.opts.existing,
    foreign,
    others: [...ctx.owner.otherSyncs.keys()],
    where: `target ${ctx.target.ep.host}:${ctx.target.ep.port}`,
    log: ctx.log,
    flush: () => flushTarget(ctx),
  });
}
