/**
 * Who writes to the target. Every sync registers itself in the target's registry (source, its
 * run_id, the servers upstream of it, its checkpoint and lease keys). Read at start and at
 * every lease renewal, the registry tells this sync which keys are not its own (other syncs'),
 * refuses a second sync of the same source, a source that is the target itself, and loops.
 */
import { UsageError } from '../../errors.js';
import { REGISTRY_KEY, parseRegistry, type SyncRegistration } from '../../checkpoint/identity.js';
import { fullResyncReason } from '../../replication/identity.js';
import type { BeforePsync } from '../../replication/link.js';
import { describeSource } from '../../replication/source.js';
import type { Checkpoint } from '../../checkpoint/checkpoint.js';
import type { SyncContext } from '../context.js';
import { checkExistingKeys } from './existing.js';
import { fullResyncPlan } from './resync.js';

export class Ownership {
  /** Other syncs registered on the target (their keys are not ours). */
  otherSyncs = new Map<string, SyncRegistration>();
  /** This sync's entry as written by this process. */
  registration: SyncRegistration | null = null;
  /** This sync's entry found in the target's registry (written by an earlier run of it). */
  registeredAs: SyncRegistration | null = null;
  /** First start without a checkpoint: --existing is applied once the source is known not to be the target. */
  existingCheckPending = false;
  /** Why the next full resync happens (logged with it). */
  resyncReason: string | null = null;
  /** Set once anything was written to the target by this process. */
  wroteTarget = false;
  private sameSourceWarned = false;

  get othersText(): string {
    return [...this.otherSyncs.keys()].join(', ');
  }

  /** Warns once that a partial sync shares its source with another partial sync. */
  warnSharedSourceOnce(): boolean {
    if (this.sameSourceWarned) return false;
    this.sameSourceWarned = true;
    return true;
  }
}

/** The other syncs writing to this target (a sync added later is seen within a lease period). */
export async function readRegistry(ctx: SyncContext): Promise<void> {
  const o = ctx.owner;
  const all = parseRegistry(await ctx.target.controlCall(['HGETALL', REGISTRY_KEY]));
  o.registeredAs = all.get(ctx.identity.id) ?? null;
  all.delete(ctx.identity.id);
  if (ctx.shard !== null) for (const id of [...all.keys()]) if (ctx.shard.isSibling(id)) all.delete(id);
  const added = [...all.keys()].filter((k) => !o.otherSyncs.has(k));
  if (added.length > 0 && ctx.run.phase !== 'connecting') ctx.log.info({ otherSyncs: added }, 'another sync now writes to this target too: its keys are protected from flushes');
  o.otherSyncs = all;
}

/**
 * Another sync (another --name) of the same source into this target would apply every write
 * a second time: refused when either copies the whole source; two partial syncs may split a
 * source between them (their selections must not overlap: warned).
 */
function checkSameSourceTwice(ctx: SyncContext, source: string, runId: string | null): void {
  for (const [name, r] of ctx.owner.otherSyncs) {
    if (r.source !== source && (runId === null || r.sourceRunId !== runId)) continue;
    const mine = ctx.scope.fingerprint;
    if (r.filter === undefined || mine === '') {
      throw new UsageError(
        `sync "${name}" already copies the source ${r.source} into this target${r.filter === undefined ? '' : ' (a partial sync)'}: a second sync of it would apply every write twice. ` +
          `Use that sync's --name to resume it, or, if it is finished, forget it with HDEL ${REGISTRY_KEY} ${name}`,
      );
    }
    if (ctx.owner.warnSharedSourceOnce()) {
      ctx.log.warn({ other: name, otherFilter: r.filter, filter: mine }, `sync "${name}" copies other keys of the same source into this target: make sure the two selections do not overlap (a key in both would get every write twice)`);
    }
  }
}

/**
 * Before PSYNC (on the replication connection): refuse a source that is the target itself or
 * that the target feeds (a loop), register this sync on the target, and when the checkpoint
 * cannot be resumed, say why and apply the full-resync policy before the source forks.
 */
export async function beforePsync(ctx: SyncContext, hs: BeforePsync, cp: Checkpoint | null): Promise<void> {
  const o = ctx.owner;
  const id = hs.identity;
  ctx.tracker.sourceRunId = id?.runId ?? null;
  const target = ctx.target.data.info;
  const before = o.registeredAs;
  const source = describeSource(ctx.sourceSpec);
  const targetLabel = ctx.target.label;
  // The same name for another source would adopt that source's checkpoint (and flush its copy).
  if (before !== null && before.source !== source && (id === null || before.sourceRunId !== id.runId)) {
    throw new UsageError(`sync "${ctx.identity.id}" on the target belongs to the source ${before.source}, not ${source}: give this sync another --name (or, if it is the same data at a new address, forget the old entry with HDEL ${REGISTRY_KEY} ${ctx.identity.id})`);
  }
  checkSameSourceTwice(ctx, source, id?.runId ?? null);
  const upstream = new Set<string>();
  const known = id !== null && target.runId !== '';
  if (known) {
    if (id.runId === target.runId) {
      throw new UsageError(`the source ${source} and the target ${targetLabel} are the same server (run_id ${id.runId}): refusing to sync a server into itself; check --source and --target`);
    }
    // One replication history: the source is a (native) replica of the target, directly or through others.
    if (target.replid !== '' && id.replid === target.replid) {
      throw new UsageError(`replication loop: the source ${source} replicates the target ${targetLabel} (same replication id ${id.replid}): what Replicant writes would come back to it; check --source and --target`);
    }
    upstream.add(id.runId);
    const reg = await hs.call(['HGETALL', REGISTRY_KEY]);
    if (!(reg instanceof Error)) {
      for (const r of parseRegistry(reg).values()) {
        if (r.sourceRunId !== null) upstream.add(r.sourceRunId);
        for (const u of r.upstream) upstream.add(u);
      }
    }
    if (upstream.has(target.runId)) {
      throw new UsageError(`replication loop: the source ${source} is itself fed from the target ${targetLabel} (run_id ${target.runId}) by another Replicant sync; refusing to copy it back`);
    }
    upstream.delete(id.runId);
  }
  if (o.existingCheckPending) {
    o.existingCheckPending = false;
    await checkExistingKeys(ctx);
  }
  const entry = (): SyncRegistration => ({
    source,
    sourceRunId: known ? id.runId : null,
    upstream: [...upstream],
    checkpointKey: ctx.store.key ?? '',
    leaseKey: ctx.identity.leaseKey,
    since: Date.now(),
    ...(ctx.scope.fingerprint === '' ? {} : { filter: ctx.scope.fingerprint }),
  });
  // Without the source's identity, an entry written before (with it) is kept.
  o.registration = known ? entry() : (o.registration ?? entry());
  await ctx.target.controlCall(['HSET', REGISTRY_KEY, ctx.identity.id, JSON.stringify(o.registration)]);
  if (cp !== null && id !== null) {
    const why = fullResyncReason(id, cp.replid, cp.offset);
    if (why !== null) {
      o.resyncReason = why;
      // Refuse now rather than after the source has forked and sent its snapshot.
      await fullResyncPlan(ctx, why, cp.cleanStart);
    }
  }
}
