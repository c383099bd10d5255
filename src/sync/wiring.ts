/**
 * Builds the collaborators of one sync and wires them to each other: what happens when the
 * target applies a unit (ACK the source, checkpoint, count), rejects a command, or fails. The
 * session (the driver) and tests get the same context.
 */
import { silentLogger, type Logger } from '../observe/logger.js';
import { parseRedisUrl, endpointLabel } from '../replication/url.js';
import { parseSourceUrl, type SourceSpec } from '../replication/source.js';
import { ClusterMarkers } from '../checkpoint/cluster-markers.js';
import { syncIdentity } from '../checkpoint/identity.js';
import { SyncLease } from '../checkpoint/lease.js';
import { NoCheckpointStore } from '../checkpoint/store.js';
import { CheckpointTracker } from '../checkpoint/tracker.js';
import { TargetCommandError } from '../writer/index.js';
import { AppliedLog } from './apply/applied-log.js';
import { TargetConnections } from './apply/target-connections.js';
import { onUnitAborted } from './apply/unit-abort.js';
import type { SessionEmitter, SyncContext } from './context.js';
import { SyncFigures } from './figures.js';
import { LostKeys } from './lost-keys.js';
import { resolveSyncOptions, type SyncOptions } from './options.js';
import { loseCopy } from './ownership/checks.js';
import { Ownership } from './ownership/registry.js';
import type { Phase } from './phases.js';
import { ErrorPolicy } from './policy.js';
import { PartialScope } from './relay/selection.js';
import { RunControl } from './run-control.js';
import { bridgeTargetOutage, canBridge } from './steps/bridge.js';

export interface SessionEvents extends SessionEmitter {
  phase(phase: Phase, info: Record<string, unknown>): void;
}

export function createSyncContext(options: SyncOptions, events: SessionEvents): SyncContext {
  const opts = resolveSyncOptions(options);
  const log: Logger = opts.logger ?? silentLogger();
  const shard = opts.shard ?? null;
  const sourceSpec: SourceSpec = shard !== null ? { kind: 'cluster-shard', shard: shard.source } : parseSourceUrl(opts.source, opts.tls?.source);
  const targetEp = parseRedisUrl(opts.target, opts.tls?.target);
  const identity = syncIdentity(sourceSpec, opts.name);
  const scope = new PartialScope(opts.partial);
  const lost = new LostKeys(log, opts.report, opts.spoolDir);
  const figures = new SyncFigures(lost);
  const lease = shard?.lease ?? new SyncLease({ key: identity.leaseKey, id: identity.id, clientPrefix: identity.clientPrefix, ttlMs: opts.leaseTtlMs, logger: log });
  const run = new RunControl(log, events.phase);
  const target = new TargetConnections(targetEp, { maxInflightBytes: opts.maxInflightBytes, onError: opts.onError, logger: log, clientName: lease.clientName, connectTimeoutMs: opts.connectTimeoutMs }, {
    applied: (offset) => ctx.units.onApplied(offset),
    commandError: (e) => commandRejected(ctx, e),
    failed: (e) => writerFailed(ctx, e),
    onExecAbort: (e) => onUnitAborted(ctx, e),
  });
  const ctx: SyncContext = {
    opts,
    log,
    identity,
    sourceSpec,
    shard,
    scope,
    run,
    figures,
    policy: new ErrorPolicy(opts.onError, figures, lost, log),
    lost,
    lease,
    markers: new ClusterMarkers(identity.id),
    target,
    units: new AppliedLog(target, {
      check: () => {
        if (run.leaseLost !== null) throw run.leaseLost;
      },
      canBridge: (e) => canBridge(ctx, e),
      bridge: () => bridgeTargetOutage(ctx),
      applied: (offset, db, n, ack) => applied(ctx, offset, db, n, ack),
    }),
    tracker: new CheckpointTracker({ sync: identity.id, target: endpointLabel(targetEp), filter: scope.fingerprint }, (evidence, fields) => loseCopy(ctx, evidence, fields)),
    owner: new Ownership(),
    // Until the target is known (starting): nothing is stored.
    store: new NoCheckpointStore(),
    sourceInfo: null,
    source: null,
    snapshot: null,
    emit: events,
  };
  // A halt or a lost copy stops reading the source: the running step then ends.
  run.onInterrupt(() => ctx.source?.interrupt());
  return ctx;
}

/** The target applied `offset`: ACK it to the source, checkpoint it, count it. */
function applied(ctx: SyncContext, offset: number, db: number, commands: number, ack: boolean): void {
  ctx.figures.applied(commands);
  const link = ctx.source?.link;
  link?.setAppliedOffset(offset);
  if (ack) link?.ackNow();
  ctx.store.applied(ctx.tracker.current('streaming', offset, db));
  ctx.emit.applied(offset);
  const exitAt = ctx.run.exitAtOffset;
  if (exitAt !== null && offset >= exitAt) ctx.run.stop({ why: 'done', what: `caught up with the source at offset ${offset} (--exit-after-full-sync on a resumed sync)` });
}

/** A command the target rejected under --on-error skip: a batch of snapshot keys is tried again key by key, anything else counted. */
function commandRejected(ctx: SyncContext, e: TargetCommandError): void {
  const snapshot = ctx.snapshot;
  if (snapshot !== null && snapshot.retryRejected(e)) {
    ctx.log.warn({ reply: e.reply }, 'the target rejected a batch of snapshot strings (MSET): its keys are sent again one by one, so that only the rejected ones are lost');
    return;
  }
  ctx.policy.targetRejected(e, snapshot === null ? null : (snapshot.dbOf(e.payload) ?? 0));
}

function writerFailed(ctx: SyncContext, e: Error): void {
  if (e instanceof TargetCommandError) {
    // A rejected write under --on-error fail (or an abort skip cannot recover): stop reading; the step reports it.
    ctx.log.error({ err: (ctx.target.fatal ?? e).message }, 'target rejected a write: stopping');
    ctx.source?.interrupt();
  } else {
    ctx.log.warn({ err: e.message }, 'target connection failed');
  }
}
