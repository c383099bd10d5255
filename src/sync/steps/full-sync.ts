/**
 * full-sync: the RDB snapshot, decoded as it arrives from the spool (64 KiB at a time) and
 * written to the target as units, then the RDB trailer. The snapshot's own checkpoint says
 * `full-sync` until the whole copy is applied; then the streaming checkpoint replaces it (and
 * proves the target kept the copy meanwhile), and the source is ACKed at once.
 */
import { ExitCode, ReplicantError, printableKey, TargetError } from '../../errors.js';
import { RdbDecoder } from '../../rdb/decoder.js';
import { DECODE_SLICE_BYTES } from '../../rdb/read.js';
import { EOF_MARK_LENGTH, RdbTrailer } from '../../replication/rdb-trailer.js';
import { encodeCommand } from '../../resp/encode.js';
import { keySlot } from '../../commands/slot.js';
import { SnapshotApplier } from '../apply/snapshot-writer.js';
import { RESERVED_PREFIX } from '../../checkpoint/reserved.js';
import type { SyncContext } from '../context.js';
import type { State } from '../phases.js';
import { SnapshotScope } from '../relay/selection.js';
import { Halted, Reconnect } from '../run-control.js';
import type { FullOutcome, SourceConnection } from './source-connection.js';
import { explainRdbCut } from './rdb-cut.js';
import { keepsLedger, ledgerCommand } from '../ownership/foreign-writes.js';

/** Spool memory budget while a long string streams (at most the configured one). */
const LONG_STRING_SPOOL_MEMORY = 4 * 1024 * 1024;
/**
 * Target in-flight budget during the snapshot (at most the configured one, which streaming
 * keeps): 16 units of 512 KiB keep the target busy, and answered units are freed by V8 late, so
 * a bigger budget only raises the peak RSS of a big snapshot (3M × 100 B: 183-218 MB with 32 MB).
 */
const SNAPSHOT_INFLIGHT = 8 * 1024 * 1024;

export async function fullSync(ctx: SyncContext, source: SourceConnection, outcome: FullOutcome): Promise<State> {
  const started = Date.now();
  const { figures, units, opts } = ctx;
  units.reset(null);
  figures.startSnapshot(outcome.framing.kind === 'length' ? outcome.framing.length : null);
  ctx.run.enter('full-sync', ctx.owner.resyncReason ?? 'the source sends its snapshot (+FULLRESYNC)', { replid: outcome.replid, offset: outcome.offset, rdbBytes: figures.rdbTotal, framing: outcome.framing.kind });
  ctx.owner.wroteTarget = true;
  await ctx.store.write(ctx.tracker.current('full-sync', outcome.offset, 0), 0);
  const writer = ctx.target.data;
  const decoder = new RdbDecoder({
    verifyChecksum: opts.verifyChecksum,
    captureRaw: opts.writeMode !== 'commands',
    rawLimit: opts.bigKeyBytes,
    onCorruptValue: ctx.policy.skipping ? 'skip' : 'fail',
  });
  writer.setMaxInflight(Math.min(opts.maxInflightBytes, SNAPSHOT_INFLIGHT));
  // While one long string streams, the spool would fill with its pieces, and V8 frees them late:
  // a smaller memory tier keeps the peak of a 512 MB string under 150 MB at no measurable cost
  // in speed (bench/README.md, "One 512 MB string").
  const longString = (streaming: boolean): void => {
    source.spool.setMemoryBudget(streaming ? Math.min(opts.spoolMemoryBytes, LONG_STRING_SPOOL_MEMORY) : opts.spoolMemoryBytes);
  };
  const scope = new SnapshotScope(
    ctx.scope,
    (db, key) => {
      const why = 'the key already has the new prefix of --rename-prefix: it would collide with a renamed key';
      ctx.policy.loseKey(() => new ReplicantError('FILTER', `source key "${printableKey(key)}" in db ${db}: ${why}; use --on-error skip to leave such keys out (listed in the report)`, ExitCode.DATA), db, key, why);
    },
    await supersededByMigration(ctx),
    // Never copied whatever --on-error says (it would collide with Replicant's keys), but lost: the copy is short.
    (db, key) => ctx.lost.add(db, key, `the key is in Replicant's reserved namespace "${RESERVED_PREFIX}" on the target: never copied`),
    (db, key) => {
      const why = `the target ${ctx.target.label} has ${ctx.scope.targetDatabasesText}, no db ${ctx.scope.targetDb(db)}`;
      ctx.policy.loseKey(() => new TargetError(`source key "${printableKey(key)}" in db ${db}: ${why}; raise \`databases\` on the target, or use --db / --db-map (or --on-error skip to leave such keys out, listed in the report)`), db, key, why);
    },
  );
  let applier: SnapshotApplier | null = null;
  let trailer: RdbTrailer | null = null;
  let afterRdb: Buffer | null = null;
  try {
    while (afterRdb === null) {
      // A snapshot cannot be resumed half-way: on stop, leave at once (the checkpoint still says full-sync).
      if (ctx.run.stopping) throw new Halted();
      const chunk = await source.read();
      if (chunk === null) {
        if (ctx.run.stopping) throw new Halted();
        throw await rdbCut(source, outcome, started, figures.rdbBytes, figures.rdbTotal);
      }
      if (trailer !== null) {
        afterRdb = trailer.push(chunk);
        continue;
      }
      const before = decoder.bytesConsumed;
      let sliceEnd = 0;
      while (sliceEnd < chunk.length && !decoder.done) {
        const records = decoder.push(chunk.subarray(sliceEnd, sliceEnd + DECODE_SLICE_BYTES));
        sliceEnd = Math.min(chunk.length, sliceEnd + DECODE_SLICE_BYTES);
        if (applier === null && decoder.version > 0) ctx.snapshot = applier = snapshotApplier(ctx, decoder.version, longString);
        if (applier !== null && records.length > 0) await applier.apply(scope.apply(records));
      }
      if (applier !== null) figures.snapshotKeys(applier.stats.keys);
      figures.rdbBytes += decoder.bytesConsumed - before;
      if (!decoder.done) continue;
      trailer = new RdbTrailer(outcome.framing, decoder.bytesConsumed);
      const rest = sliceEnd < chunk.length ? Buffer.concat([decoder.remainder(), chunk.subarray(sliceEnd)]) : decoder.remainder();
      afterRdb = trailer.push(rest);
    }
  } finally {
    // The buffers get their configured sizes back even if the transfer failed mid-value.
    longString(false);
    writer.setMaxInflight(opts.maxInflightBytes);
  }
  if (applier === null) throw new ReplicantError('RDB', 'RDB ended before its header', ExitCode.DATA);
  await applier.finish();
  // (Batches the target rejected are sent again key by key meanwhile: wait for those too.)
  do await units.flush();
  while ((ctx.target.writer?.pendingUnits ?? 0) > 0);
  ctx.snapshot = null;
  units.db = applier.replStreamDb;
  units.applied = outcome.offset;
  source.startStream(outcome.offset, decoder.bytesConsumed + (outcome.framing.kind === 'eof' ? EOF_MARK_LENGTH : 0));
  const replaced = await ctx.store.write(ctx.tracker.current('streaming', outcome.offset, units.db), applier.currentDb);
  ctx.tracker.expect(outcome.offset);
  if (!ctx.store.atomicWithData || ctx.tracker.verifySnapshotKept(replaced, outcome.offset)) figures.snapshotUnfinished = false;
  // The transfer is over: keys other clients create from now on are counted (foreign-writes.ts).
  if (keepsLedger(ctx)) await units.submit([encodeCommand(ledgerCommand(ctx, 'reset'))], 1, false, undefined);
  if (!ctx.target.cluster) await units.submit([encodeCommand(['SELECT', ctx.scope.connectionDb(units.db)])], 1, false, undefined);
  source.link.setAppliedOffset(outcome.offset);
  source.link.ackNow();
  source.endTurn();
  const ms = Date.now() - started;
  summarize(ctx, applier, decoder.emptyKeysSkipped, ms, scope);
  ctx.emit.fullSyncDone({ replid: outcome.replid, offset: outcome.offset, keys: applier.stats.keys, ms });
  figures.rdbTotal = null;
  if (opts.exitAfterFullSync) return { at: 'stopping', halt: { why: 'done' } };
  return { at: 'streaming', source, first: afterRdb };
}

function snapshotApplier(ctx: SyncContext, sourceRdbVersion: number, longString: (streaming: boolean) => void): SnapshotApplier {
  const writer = ctx.target.data;
  const info = writer.info;
  const cluster = ctx.target.cluster;
  const wanted = ctx.opts.writeMode;
  const restoreOk = info.rdbVersion >= sourceRdbVersion;
  const mode = wanted === 'commands' || !restoreOk ? 'commands' : wanted === 'restore' ? 'restore' : 'auto';
  if (wanted === 'restore' && !restoreOk) {
    ctx.log.warn({ sourceRdb: sourceRdbVersion, targetRdb: info.rdbVersion }, 'the target cannot RESTORE payloads of the source RDB version: writing commands instead');
  }
  ctx.log.info({ mode, sourceRdbVersion, targetRdbVersion: info.rdbVersion }, 'snapshot write mode');
  return new SnapshotApplier({
    writer,
    logger: ctx.log,
    coalesceSets: !cluster,
    onLongString: longString,
    onForeignDb: cluster
      ? (db, key) => ctx.policy.loseKey(() => new TargetError(`source key "${printableKey(key)}" in db ${db}: a cluster target has only db 0 (use --on-error skip to leave other dbs out)`), db, key, `db ${db} does not exist on a cluster target`)
      : undefined,
    translate: {
      mode,
      // A shard's keys may already be there: an interrupted copy of its slots, or keys that migrated.
      replace: !ctx.tracker.cleanStart || ctx.shard !== null,
      restoreBufferBytes: ctx.opts.bigKeyBytes,
      targetVersion: `${info.major}.${info.minor}`,
      emitSelect: !cluster,
      onUntranslatable: ctx.policy.mode,
      onIssue: (issue) => {
        if (issue.lost && issue.key !== null) ctx.lost.add(issue.db ?? 0, issue.key, issue.message);
        else ctx.log.warn({ db: issue.db, key: issue.key ? printableKey(issue.key) : undefined }, issue.message);
      },
    },
  });
}

/**
 * A cluster shard's snapshot and the migrations around it (see migration-guard): a key that
 * migrated here before the fork may still have its DEL in another shard's stream. The other
 * shards first apply what they have received (migrations done before the fork), and keys of
 * slots still importing are tracked as this shard's, so a later DEL from elsewhere is dropped.
 * A key that another shard has restored since is left out: this snapshot's copy is older.
 */
async function supersededByMigration(ctx: SyncContext): Promise<((key: Buffer) => boolean) | undefined> {
  const shard = ctx.shard;
  if (shard === null) return undefined;
  const importing = new Set(await shard.source.importingSlots());
  await shard.othersSettled();
  const me = shard.source.key;
  if (importing.size > 0) ctx.log.info({ importing: [...importing] }, 'snapshot taken while slots migrate into this shard: their keys are tracked by the migration guard');
  return (key) => {
    const owner = shard.guard.ownerOf(key);
    if (owner !== undefined) return owner !== me;
    if (importing.size > 0 && importing.has(keySlot(key))) shard.guard.noteSnapshotKey(key, me);
    return false;
  };
}

/**
 * The 'full sync applied' line. `keys` counts the keys read from the RDB; `lostKeys` those of
 * them that are not on the target (rejected, corrupt, untranslatable, in a db the target lacks):
 * with any, a warning says the copy is incomplete and where the full list is.
 */
function summarize(ctx: SyncContext, applier: SnapshotApplier, emptyKeysSkipped: number, ms: number, scope: SnapshotScope): void {
  const lostKeys = ctx.lost;
  lostKeys.flush();
  const s = applier.stats;
  const lost = lostKeys.count;
  ctx.log.info(
    {
      keys: s.keys,
      commands: s.commands,
      expiredSkipped: applier.translatorStats.expiredSkipped,
      skipped: s.skipped,
      lostKeys: lost,
      complete: lost === 0,
      ...(lost > 0 ? { report: lostKeys.path } : {}),
      functions: s.functions,
      rdbBytes: ctx.figures.rdbBytes,
      ms,
      emptyKeysSkipped,
      ...(ctx.scope.identity ? {} : { filteredKeys: scope.filtered }),
      ...(scope.reserved > 0 ? { reservedKeysSkipped: scope.reserved } : {}),
      ...(scope.superseded > 0 ? { migratedKeys: scope.superseded } : {}),
    },
    'full sync applied',
  );
  if (scope.reserved > 0) {
    ctx.log.warn({ reservedKeysSkipped: scope.reserved }, "the source's snapshot holds Replicant's own keys (it is itself the target of another Replicant sync): they were not copied");
  }
  if (lost > 0) {
    ctx.log.warn(
      { lostKeys: lost, report: lostKeys.path, first: lostKeys.sample },
      `the copy is incomplete: ${lost} keys of the snapshot were not written to the target; ${lostKeys.path === null ? 'the report could not be written (see above)' : `the full list is in ${lostKeys.path}`}`,
    );
  }
}

/** The source ended the link mid-RDB: the reconnection, with what the source shows of why (rdb-cut.ts). */
async function rdbCut(source: SourceConnection, outcome: FullOutcome, startedAt: number, rdbBytes: number, rdbTotal: number | null): Promise<Reconnect> {
  const of = rdbTotal === null ? '' : ` of ${rdbTotal}`;
  const link = source.linkError === null ? 'the source closed the link' : source.linkError.message;
  const why = await explainRdbCut({ endpoint: source.endpoint, forkOffset: outcome.offset, startedAt, rdbBytes, rdbTotal });
  return new Reconnect('source', `source link ended during the RDB transfer after ${rdbBytes}${of} bytes (${link})${why === '' ? '' : `: ${why}`}`);
}
