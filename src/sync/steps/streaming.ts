/**
 * streaming: the replication stream, read from the spool, through the relay's stages, cut into
 * units by the batcher, each with its checkpoint, to the target. When the spool has nothing
 * more for now, the open unit goes out (latency over batch size). A FLUSH in a cluster shard's
 * stream becomes the deletion of the shard's own keys. The step ends when the link ends (or is
 * interrupted): what was received up to the last complete command is applied first.
 */
import { ReplicantError, TargetError } from '../../errors.js';
import { describeSource } from '../../replication/source.js';
import { encodeCommand, encodeCommands } from '../../resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../resp/stream-parser.js';
import { TargetCommandError } from '../../writer/index.js';
import type { SyncContext } from '../context.js';
import type { State } from '../phases.js';
import { StreamBatcher, type StreamUnit } from '../relay/batcher.js';
import { buildRelay, type ShardStage } from '../relay/stages.js';
import { Reconnect } from '../run-control.js';
import { clearOwnKeys } from '../ownership/resync.js';
import { reservedFixup } from '../ownership/own-keys.js';
import { BIG_ARG_BYTES, BigCommandRelay } from './big-command.js';
import { ledgerAround } from '../ownership/foreign-writes.js';
import type { Backoff } from './reconnect.js';
import type { SourceConnection } from './source-connection.js';

const PING = encodeCommand(['PING']);

export async function stream(ctx: SyncContext, source: SourceConnection, first: Buffer | null, backoff: Backoff): Promise<State> {
  backoff.streaming();
  const units = ctx.units;
  ctx.run.enter('streaming', first === null ? 'resumed (+CONTINUE)' : 'the snapshot is applied', { replid: ctx.tracker.replid, offset: units.applied, db: units.db });
  const { chain, shardStage } = buildRelay({
    log: ctx.log,
    policy: ctx.policy,
    scope: ctx.scope,
    shard: ctx.shard,
    cluster: ctx.target.cluster,
    targetLabel: ctx.target.label,
    sourceLabel: describeSource(ctx.sourceSpec),
    commandTable: () => ctx.target.commandTable,
    otherSyncs: () => [...ctx.owner.otherSyncs.keys()],
  });
  // This shard's lane in the migration guard's order of RESTOREs: nothing of it is in flight yet.
  shardStage?.begin(units.applied ?? 0);
  try {
    const batcher = new StreamBatcher({ db: units.db, atomicUnits: ctx.store.atomicWithData, reservedDb: ctx.store.homeDb, relay: chain });
    // A big argument streams through (big-command.ts); a cluster shard's commands go through the migration guard whole.
    const parser = new ReplicationStreamParser(units.applied ?? 0, shardStage === null ? { bigArgBytes: BIG_ARG_BYTES } : {});
    const big = new BigCommandRelay(ctx, source.spool, batcher, chain);
    const out: StreamUnit[] = [];
    // A unit starting with a migrated key's RESTORE is held until ordered (restore-order.ts); the
    // RESTOREs that follow it join it, so a reshard's keys are ordered a batch at a time.
    let orderPending = false;
    const submitAll = async (): Promise<void> => {
      if (orderPending) {
        orderPending = false;
        await shardStage!.ordered();
      }
      for (const u of out) await submitStreamUnit(ctx, u);
      out.length = 0;
    };
    let chunk: Buffer | null = first;
    let read: Promise<Buffer | null> | null = null;
    for (;;) {
      if (chunk === null) {
        read ??= source.read();
        const next = await ctx.target.untilDown(read);
        if (next === undefined) {
          // The target writer failed while the source is quiet: recover now (bridge, or stop
          // on a fatal error), not at the next write, which may be a ping period away.
          await units.flush();
          continue;
        }
        read = null;
        chunk = next;
      }
      if (chunk === null) break;
      const cmds = parser.push(chunk);
      chunk = null;
      if (big.open) await big.pump(out);
      for (const c of cmds) {
        if (c.body !== null) {
          await big.start(c, out, submitAll);
          continue;
        }
        if (shardStage !== null && isFlush(c) && !batcher.inTransaction && !ctx.scope.excludedCommands.has(c.name)) {
          // Everything before it is applied first, then the shard's own keys are deleted.
          const before = batcher.cut();
          if (before !== null) out.push(before);
          await submitAll();
          await units.flush();
          await clearShardOnFlush(ctx, c, shardStage);
        }
        // A migrated key's RESTORE goes after what the other shards sent before it (restore-order.ts):
        // what came before it goes out now, the unit starting with it waits.
        const ordered = shardStage !== null && !batcher.inTransaction && shardStage.mustOrder(c);
        if (ordered && !orderPending) {
          const before = batcher.cut();
          if (before !== null) out.push(before);
          await submitAll();
        }
        batcher.push(c, out);
        if (ordered) orderPending = true;
      }
      if (source.spool.bufferedBytes === 0) {
        const u = batcher.cut();
        if (u !== null) out.push(u);
      }
      await submitAll();
    }
    // The link ended: apply what was received up to the last complete command.
    big.abandon();
    const u = batcher.cut();
    if (u !== null) out.push(u);
    await submitAll();
    await units.flush();
    return ended(ctx, source);
  } finally {
    shardStage?.end();
  }
}

/** Why the stream ended, as the next state. */
function ended(ctx: SyncContext, source: SourceConnection): State {
  const t = ctx.target;
  if (t.failure !== null) ctx.units.fail(t.failure);
  if (ctx.run.copyLost !== null) return { at: 'reconnecting', side: 'target', cause: ctx.run.copyLost };
  if (ctx.run.halt !== null) return { at: 'stopping', halt: ctx.run.halt };
  const err = source.linkError;
  return { at: 'reconnecting', side: 'source', cause: err ? `source link failed: ${err.message}` : 'source closed the replication link', error: err ?? undefined };
}

/**
 * A FLUSHALL/FLUSHDB in one shard's stream (a cluster source flushes master by master): on
 * the target it means "delete this shard's keys", which is done here (the command itself is
 * then dropped). A crash before the next checkpoint replays it: deleting again is harmless.
 */
async function clearShardOnFlush(ctx: SyncContext, cmd: StreamCommand, stage: ShardStage): Promise<void> {
  stage.flushCleared = cmd.offset;
  ctx.log.info({ command: cmd.name.toUpperCase(), offset: cmd.offset }, "source flush in this shard's stream: deleting this shard's keys from the target (not the other shards')");
  try {
    await clearOwnKeys(ctx);
  } catch (e) {
    if (e instanceof ReplicantError || e instanceof TargetCommandError) throw e;
    throw new Reconnect('target', `deleting the shard's keys for the source ${cmd.name.toUpperCase()} at offset ${cmd.offset} failed`, { cause: e });
  }
}

/**
 * One unit of the stream to the target, with its checkpoint (and Replicant's keys put back after
 * a flush or swap in it), between the foreign-writes ledger's scripts when the sync keeps one.
 */
export async function submitStreamUnit(ctx: SyncContext, u: StreamUnit): Promise<void> {
  const units = ctx.units;
  const cluster = ctx.target.cluster;
  // The target connection is in the mapped db after the unit.
  const targetDbAfter = ctx.scope.connectionDb(u.dbAfter);
  // (A cluster has no SWAPDB, and its keys live on several nodes: the lease renewal re-takes it there.)
  const fixup = u.reservedReset !== undefined && !cluster ? reservedFixup(ctx, u.reservedReset, targetDbAfter) : null;
  if (u.reservedReset !== undefined && cluster) ctx.markers.suspendUntil(u.offset);
  const ledger = ledgerAround(ctx, u.reservedReset);
  const before = ledger === null ? fixup : [...(fixup ?? []), ledger.close];
  const cp = ctx.tracker.current('streaming', u.offset, u.dbAfter);
  const inline = ctx.tracker.inline(ctx.store, cp, targetDbAfter, before, u.reservedReset?.kind === 'flush');
  // One Buffer per unit: the writer holds units until the target replies, and a view per
  // command would keep hundreds of thousands of small objects (and the spool chunks) alive.
  let payload = u.commands.length > 1 ? [Buffer.concat(u.commands, u.bytes)] : u.commands;
  let count = u.commands.length;
  if (ledger !== null) {
    payload = [ledger.open, ...payload];
    count++;
  }
  if (inline.commands !== null) {
    payload = [...payload, encodeCommands(inline.commands)];
    count += inline.commands.length;
  } else if (count === 0) {
    // Only PINGs/REPLCONFs: still move the applied offset forward, in order.
    payload = [PING];
    count = 1;
  }
  units.db = u.dbAfter;
  const atomic = u.atomic || inline.commands !== null;
  if (atomic && cluster && ctx.target.data.atomicSlot({ payload, count }) === null) {
    // A source transaction over several slots cannot be applied atomically on a cluster.
    const what = `source transaction of ${count} commands completing offset ${u.offset} spans several cluster slots`;
    ctx.policy.dropCommands(() => new TargetError(`${what}: it cannot be applied atomically on a cluster target (use --on-error skip to skip such transactions)`), {
      count,
      fields: { offset: u.offset, commands: count },
      msg: `${what}: skipped (--on-error skip)`,
    });
    await units.submit([PING], 1, false, u.offset, u.dbAfter, undefined, undefined, u.ackNow);
    return;
  }
  await units.submit(payload, count, atomic, u.offset, u.dbAfter, { lead: ledger === null ? 0 : 1, tail: inline.commands?.length ?? 0 }, inline.onExecReply, u.ackNow);
  await units.afterSubmit();
}

function isFlush(cmd: StreamCommand): boolean {
  return cmd.name === 'flushall' || cmd.name === 'flushdb';
}
