/**
 * The work behind `replicant sync`, loaded only when that command runs (keeps the startup
 * of the other commands free of the sync machinery). Within it, what only some runs need is
 * loaded on use: the metrics endpoint (prom-client) with --metrics-port, the cluster
 * coordinator for a cluster source.
 */
import { parseCheckpointSpec, resolveSyncOptions } from '../sync/options.js';
import { createLogger } from '../observe/logger.js';
import { redactUrl } from '../observe/redact.js';
import type { MetricsServer } from '../observe/metrics.js';
import { ProgressReporter, formatBytes, formatCount, formatDuration } from '../observe/progress.js';
import type { SyncOptions, SyncStatus } from '../sync/session.js';
import type { ClusterSyncStatus } from '../sync/cluster/coordinator.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { TlsSettings } from '../net/tls.js';
import type { ServerInfo } from '../replication/server-info.js';
import { isSentinelUrl, parseRedisUrl } from '../replication/url.js';
import { resolvePasswords, type PasswordFileOptions } from './secrets.js';
import { resolveTls, type TlsCliOptions } from './tls.js';
import { partialSpec, type PartialCliOptions } from './partial-options.js';

export interface SyncCliOptions extends PasswordFileOptions, TlsCliOptions, PartialCliOptions {
  acceptFilterChange: boolean;
  allowOverlap: boolean;
  maxShards?: number;
  source: string;
  target: string;
  writeMode: 'auto' | 'restore' | 'commands';
  bigKeyBytes: number;
  existing: 'fail' | 'replace' | 'flush';
  onError: 'fail' | 'skip';
  onFullResync: 'flush' | 'flush-all' | 'replace' | 'fail';
  name?: string;
  leaseTtl: number;
  /** Absent: the default (a target key; a file on a cluster target, chosen once the target is known). */
  checkpoint?: string;
  spoolDir?: string;
  report?: string;
  spoolMemory: number;
  maxInflight: number;
  spoolDisk: number;
  listeningPort?: number;
  readTimeout: number;
  connectTimeout: number;
  maxFullSyncAttempts: number;
  verifyChecksum: boolean;
  exitAfterFullSync: boolean;
  progress: boolean;
  progressInterval: number;
  logLevel: string;
  metricsPort?: number;
  metricsHost: string;
  preferReplica: boolean;
  clusterParallelSyncs: number;
}

export async function runSyncCommand(o: SyncCliOptions): Promise<void> {
  const logger = createLogger({ level: o.logLevel });
  const { source, target } = resolvePasswords(o);
  rejectDbInUrl(source, 'source');
  rejectDbInUrl(target, 'target');
  const tls = resolveTls({ ...o, source, target }, logger);
  const options: SyncOptions = {
    source,
    target,
    tls,
    writeMode: o.writeMode,
    bigKeyBytes: o.bigKeyBytes,
    existing: o.existing,
    onError: o.onError,
    onFullResync: o.onFullResync,
    name: o.name,
    leaseTtlMs: o.leaseTtl,
    ...(o.checkpoint === undefined ? {} : { checkpoint: parseCheckpointSpec(o.checkpoint) }),
    spoolDir: o.spoolDir,
    report: o.report,
    spoolMemoryBytes: o.spoolMemory,
    maxInflightBytes: o.maxInflight,
    spoolDiskBytes: o.spoolDisk,
    listeningPort: o.listeningPort,
    readTimeoutMs: o.readTimeout,
    connectTimeoutMs: o.connectTimeout,
    maxFullSyncAttempts: o.maxFullSyncAttempts,
    verifyChecksum: o.verifyChecksum,
    exitAfterFullSync: o.exitAfterFullSync,
    partial: partialSpec(o),
    acceptFilterChange: o.acceptFilterChange,
    allowOverlap: o.allowOverlap,
    logger,
  };
  // Refused before any connection: a bad value is a usage error (exit 2), whatever the servers say.
  resolveSyncOptions(options);
  // Logged as soon as the options are known to be valid, before the sync machinery loads
  // (≈ 40 ms of modules): the operator sees at once that the sync started, and with what.
  logger.info({ source: redactUrl(o.source), target: redactUrl(o.target), writeMode: o.writeMode, checkpoint: o.checkpoint ?? 'default' }, 'replicant sync starting');
  // The session's modules load while the source answers INFO.
  const sessionModule = import('../sync/session.js');
  // Handled at once, so a failing cluster check does not leave this promise's rejection unhandled.
  sessionModule.catch(() => {});
  const cluster = await isClusterSource(source, tls.source, o.connectTimeout, logger);
  if (!cluster && o.maxShards !== undefined) throw new UsageError('--max-shards: the source is not a Redis Cluster (only the shards of a cluster source are shared among processes)');
  if (!cluster && o.preferReplica) throw new UsageError('--prefer-replica: the source is not a Redis Cluster (for a sentinel-managed source, name a replica as --source)');
  const session = cluster
    ? new (await import('../sync/cluster/coordinator.js')).ClusterSourceSync({ ...options, preferReplica: o.preferReplica, parallelSyncs: o.clusterParallelSyncs, ...(o.maxShards === undefined ? {} : { maxShards: o.maxShards }) })
    : new (await sessionModule).SyncSession(options);
  const selection = session.selection;
  if (selection !== null) logger.info({ selection }, 'partial sync');
  // Before anything else starts: a port already in use fails fast with exit 2.
  const metrics: MetricsServer | null = o.metricsPort === undefined ? null : await (await import('../observe/metrics.js')).startMetricsServer(session, { port: o.metricsPort, host: o.metricsHost, logger });
  const progress = new ProgressReporter(() => snapshot(session.status()), logger, o.progressInterval);
  if (o.progress) progress.start();
  session.on('phase', () => progress.tick());
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // A signal sent to the whole process group can arrive twice at once: only a second
    // signal a moment later means "exit now".
    if (firstSignalAt > 0 && Date.now() - firstSignalAt < 1000) return;
    if (firstSignalAt > 0) {
      logger.warn({ signal: sig }, 'second signal: exiting now without waiting for the target');
      process.exit(130);
    }
    firstSignalAt = Date.now();
    logger.info({ signal: sig }, 'stopping: applying what was received, then storing the checkpoint');
    session.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await session.run();
  } finally {
    await metrics?.close();
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await new Promise<void>((r) => logger.flush(() => r()));
    exitIfStillOpen(logger);
  }
}

/**
 * A stopped sync has closed everything it opened, so Node exits by itself. Should a connection
 * or timer have been left open (a bug), the process must still end with its exit code rather
 * than hang under a supervisor that waits for it: say what was left, then exit.
 */
function exitIfStillOpen(logger: Logger): void {
  setTimeout(() => {
    logger.warn({ open: process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap') }, 'resources still open 3 s after the sync stopped (please report this); exiting');
    logger.flush(() => process.exit());
  }, 3000).unref();
}

/**
 * Whether the source is a node of a Redis Cluster (INFO's cluster_enabled): the sync then
 * follows every shard. A source that refuses INFO is taken as a standalone server.
 */
async function isClusterSource(url: string, tls: TlsSettings | undefined, timeoutMs: number, logger: Logger): Promise<boolean> {
  if (isSentinelUrl(url)) return false;
  // Loaded here, after the first log line, with the session's modules (they share them).
  const [{ readSourceInfoWithin }, { parseSourceUrl }] = await Promise.all([import('../replication/server-info.js'), import('../replication/source.js')]);
  // The retries wait on unreferenced timers: nothing else keeps the process alive yet (Node would
  // exit with 13 in the middle of the wait).
  const keepAlive = setInterval(() => {}, 60_000);
  let info: ServerInfo | null;
  try {
    info = await readSourceInfoWithin(parseSourceUrl(url, tls), timeoutMs, logger);
  } finally {
    clearInterval(keepAlive);
  }
  const cluster = info?.fields.get('cluster_enabled') === '1';
  if (cluster) logger.info({ source: redactUrl(url) }, 'the source is a Redis Cluster: one replication link per shard');
  return cluster;
}

/**
 * sync copies every source db to the same db number of the target, so a `/db` in a URL
 * could only be ignored: refuse it rather than surprise (verify, which compares one db, honours it).
 */
function rejectDbInUrl(url: string, side: 'source' | 'target'): void {
  if (isSentinelUrl(url)) return;
  const db = parseRedisUrl(url).db;
  if (db !== undefined && db !== 0) {
    throw new UsageError(`--${side} names db ${db}: sync copies each source db to the same db number of the target; remove /${db} from the URL (replicant verify --db ${db} checks one db)`);
  }
}

function snapshot(s: SyncStatus | ClusterSyncStatus): { phase: string; fields: Record<string, number | string | null>; line: string } {
  const shown = snapshotOfOne(s);
  if (!('shards' in s)) return shown;
  // A cluster source: how many shards are where, then the sums.
  const streaming = s.shards.filter((x) => x.phase === 'streaming').length;
  return { ...shown, fields: { ...shown.fields, shards: s.shards.length, shardsStreaming: streaming }, line: `shards ${streaming}/${s.shards.length} streaming  ${shown.line}` };
}

function snapshotOfOne(s: SyncStatus): { phase: string; fields: Record<string, number | string | null>; line: string } {
  if (s.phase === 'full-sync' && s.rdb) {
    const r = s.rdb;
    const eta = r.totalBytes && r.bytes > 0 && r.keysPerSec > 0 ? formatDuration(((r.totalBytes - r.bytes) / r.bytes) * (r.keys / r.keysPerSec) * 1000) : '?';
    return {
      phase: s.phase,
      fields: { rdbBytes: r.bytes, rdbTotalBytes: r.totalBytes, keys: r.keys, keysPerSec: Math.round(r.keysPerSec) },
      line: `rdb ${formatBytes(r.bytes)}${r.totalBytes ? ` / ${formatBytes(r.totalBytes)}` : ''}  keys ${formatCount(r.keys)}  ${formatCount(r.keysPerSec)} keys/s  eta ${eta}`,
    };
  }
  return {
    phase: s.phase,
    fields: { appliedOffset: s.appliedOffset, receivedOffset: s.receivedOffset, lagBytes: s.lagBytes, lagMs: s.lagMs, opsPerSec: Math.round(s.opsPerSec), commands: s.commandsApplied, errors: s.errors },
    line: `offset ${s.appliedOffset ?? '-'}  ${formatCount(s.opsPerSec)} ops/s  lag ${s.lagBytes === null ? '-' : formatBytes(s.lagBytes)} / ${s.lagMs === null ? '-' : `${s.lagMs} ms`}  applied ${formatCount(s.commandsApplied)}  errors ${s.errors}`,
  };
}
