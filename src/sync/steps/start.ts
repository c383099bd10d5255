/**
 * starting: everything before the first connection to the source. Target connected and able to
 * take the copy, the source answering, the lease ours, the registry read, the checkpoint found
 * and checked. Read-only checks come first: a target that cannot take the writes gets no lease.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../errors.js';
import { FileCheckpointStore, NoCheckpointStore, TargetCheckpointStore, type CheckpointStore } from '../../checkpoint/store.js';
import type { Checkpoint } from '../../checkpoint/checkpoint.js';
import { encodeCommands, type Arg } from '../../resp/encode.js';
import { readSourceInfoWithin } from '../../replication/server-info.js';
import { preflightTarget, type DbWrite } from '../../writer/preflight.js';
import type { SyncContext } from '../context.js';
import type { State } from '../phases.js';
import { checkFilterChange, checkOwner, checkTargetKept, checkpointOutlivedTarget } from '../ownership/checks.js';
import { readRegistry, refuseSourceIsTarget, yieldToEarlierSync } from '../ownership/registry.js';
import { renewalCall } from '../ownership/lease-renewal.js';
import { parseInfo } from '../../commands/info.js';

export async function start(ctx: SyncContext, onLeaseLost: (e: Error) => void): Promise<State> {
  const writer = await ctx.target.open();
  const i = writer.info;
  ctx.log.info({ target: ctx.target.label, version: i.version, rdbVersion: i.rdbVersion, keys: i.dbsize, cluster: i.cluster }, 'target connected');
  if (ctx.target.cluster) ctx.log.info({ masters: writer.masters }, 'target is a cluster: commands are routed by slot');
  if (!(await waitWhileLoading(ctx))) return { at: 'stopped', halt: { why: 'stop' } };
  await preflight(ctx);
  // Ownership next: the checkpoint read below must not be moved by an older instance.
  const control = await ctx.target.controlWriter();
  if (!(await ctx.lease.acquire((a) => control.call(a), control.nodeCalls(), (ms) => ctx.run.sleep(ms), () => ctx.run.stopping))) {
    ctx.log.info('stopped while waiting for the lease');
    return { at: 'stopped', halt: { why: 'stop' } };
  }
  ctx.lease.startRenewing(
    () => renewalCall((a) => ctx.target.controlCall(a), ctx.identity.id),
    onLeaseLost,
    (retaken) => {
      void checkTargetKept(ctx, retaken).catch(() => undefined);
      void readRegistry(ctx).then(() => yieldToEarlierSync(ctx, onLeaseLost)).catch(() => undefined);
    },
  );
  await readRegistry(ctx);
  ctx.store = createStore(ctx);
  let cp = await ctx.store.load();
  ctx.log.info({ sync: ctx.identity.id, checkpoint: ctx.store.where, otherSyncs: [...ctx.owner.otherSyncs.keys()] }, 'checkpoint store');
  if (cp) checkOwner(ctx, cp);
  if (cp) cp = checkFilterChange(ctx, cp);
  if (cp && checkpointOutlivedTarget(ctx, cp)) cp = null;
  adoptCheckpoint(ctx, cp);
  return { at: 'connecting', resume: cp };
}

/** How often a loading target is asked how far it is, and how often that is logged. */
const LOADING_POLL_MS = 200;
const LOADING_LOG_MS = 2000;

/**
 * A target still loading its data set (just restarted with it) answers every write with
 * -LOADING: wait for it, saying how far it is, rather than fail the start (a target and
 * Replicant started together, a supervisor restarting both). False when stopped meanwhile.
 */
async function waitWhileLoading(ctx: SyncContext): Promise<boolean> {
  let loggedAt = 0;
  for (;;) {
    const reply = await ctx.target.data.call(['INFO', 'persistence']).catch(() => null);
    const f = reply === null ? null : parseInfo(String(reply));
    if (f === null || f.get('loading') !== '1') return true;
    if (ctx.run.stopping) return false;
    if (Date.now() - loggedAt >= LOADING_LOG_MS) {
      loggedAt = Date.now();
      ctx.log.info({ target: ctx.target.label, loadedPercent: Number(f.get('loading_loaded_perc') ?? NaN) }, 'the target is loading its data set: waiting before writing anything');
    }
    await ctx.run.sleep(LOADING_POLL_MS);
  }
}

/** What the checkpoint (or its absence) says about the target before anything is written. */
function adoptCheckpoint(ctx: SyncContext, cp: Checkpoint | null): void {
  if (cp) {
    ctx.log.info({ replid: cp.replid, offset: cp.offset, db: cp.db, state: cp.state, checkpoint: ctx.store.where }, 'checkpoint found');
    ctx.tracker.cleanStart = cp.cleanStart;
    if (cp.state === 'streaming') {
      // What the target holds until the resume says otherwise (status, a stop before resuming).
      ctx.units.applied = cp.offset;
      ctx.tracker.replid = cp.replid;
    }
  } else if (ctx.shard !== null) {
    // The coordinator checked the target once for every shard.
    ctx.tracker.cleanStart = ctx.shard.cleanStart;
  } else ctx.owner.existingCheckPending = true;
  // An earlier run stopped in the middle of a snapshot: the target is short until one completes.
  if (cp?.state === 'full-sync') ctx.figures.snapshotUnfinished = true;
}

/**
 * Before the first PSYNC: the source must answer within --connect-timeout (else exit 4), and
 * the target must be able to take the copy (else exit 5 with what is missing).
 */
async function preflight(ctx: SyncContext): Promise<void> {
  try {
    ctx.sourceInfo = await readSourceInfoWithin(ctx.sourceSpec, ctx.opts.connectTimeoutMs, ctx.log, () => ctx.run.stopping);
  } catch (e) {
    if (ctx.run.stopping) return;
    throw e;
  }
  // Before the first write (the target's probes, the lease): a source that is the target, or replicates it, is refused untouched.
  const s = ctx.sourceInfo;
  refuseSourceIsTarget(ctx, s && { runId: s.runId, replid: s.masterReplid, masterAddress: s.masterAddress });
  const cp = ctx.opts.checkpoint;
  const i = ctx.target.data.info;
  // A standalone target's db count, when it says: known missing dbs are refused now, and any
  // met later (a db the source starts using) are left out of the snapshot and the stream.
  const databases = ctx.target.cluster || i.databasesKnown === false ? undefined : { count: i.databases, writes: writtenDbs(ctx) };
  if (databases !== undefined) ctx.scope.limitTargetDbs(databases.count);
  await preflightTarget({
    target: ctx.target.ep,
    cluster: ctx.target.cluster,
    writeMode: ctx.opts.writeMode,
    checkpointInTarget: cp === undefined ? !ctx.target.cluster : cp.kind === 'target',
    source: ctx.sourceInfo,
    logger: ctx.log,
    ...(databases === undefined ? {} : { databases }),
    // A standalone target is checked on the data connection, idle until the first unit.
    ...(ctx.target.cluster ? {} : { call: (args: readonly Arg[]) => ctx.target.data.call(args) }),
  });
}

/** The source dbs holding keys now that the selection keeps (--db), with their target db (--db-map). */
function writtenDbs(ctx: SyncContext): DbWrite[] {
  const out: DbWrite[] = [];
  for (const [db, keys] of ctx.sourceInfo?.keys ?? []) if (keys > 0 && ctx.scope.keepsDb(db)) out.push({ source: db, target: ctx.scope.targetDb(db), keys });
  return out;
}

/** The checkpoint store: on the target (standalone default), in a file (cluster default), or none. */
function createStore(ctx: SyncContext): CheckpointStore {
  const cluster = ctx.target.cluster;
  const ep = ctx.target.ep;
  // One transaction cannot cover a batch spread over cluster nodes: keep the checkpoint in a file there.
  const spec =
    ctx.opts.checkpoint ??
    (cluster
      ? { kind: 'file' as const, path: join(ctx.opts.spoolDir ?? homedir(), `.replicant-checkpoint-${ep.host}-${ep.port}-${ctx.identity.id.replace(/[^A-Za-z0-9._-]/g, '_')}.json`) }
      : { kind: 'target' as const, db: 0 });
  if (spec.kind === 'target' && cluster) {
    throw new UsageError(`--checkpoint target: the target ${ctx.target.label} is a cluster, where one transaction cannot cover a batch; use --checkpoint file:PATH`);
  }
  if (spec.kind === 'none') return new NoCheckpointStore();
  if (spec.kind === 'file') return new FileCheckpointStore(spec.path);
  return new TargetCheckpointStore(
    {
      // After everything already submitted, on the data connection: the order of writes is kept.
      runAtomic: async (commands: Arg[][]) => {
        let replies: unknown[] = [];
        await ctx.units.submit([encodeCommands(commands)], commands.length, true, undefined, ctx.units.db, undefined, (r) => (replies = r));
        await ctx.units.flush();
        return replies;
      },
      get: async (db: number, key: string) => {
        const w = ctx.target.data;
        await w.call(['SELECT', db]);
        const v = (await w.call(['GET', key])) as Buffer | string | null;
        await w.call(['SELECT', ctx.scope.connectionDb(ctx.units.db)]);
        return v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v);
      },
    },
    spec.key ?? ctx.identity.checkpointKey,
    spec.db,
  );
}
