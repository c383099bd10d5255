/**
 * `replicant sync`: pose as a replica of --source and keep --target in step until stopped.
 * SIGINT/SIGTERM stop gracefully (apply what was received, store the checkpoint, exit 0);
 * a second signal exits at once.
 */
import { Command, Option } from 'commander';
import { parseCheckpointSpec } from '../checkpoint/store.js';
import { createLogger, redactUrl } from '../observe/logger.js';
import { startMetricsServer, type MetricsServer } from '../observe/metrics.js';
import { ProgressReporter, formatBytes, formatCount, formatDuration } from '../observe/progress.js';
import { SyncSession, type SyncStatus } from '../sync/session.js';
import { parseDuration, parsePort, parseSize } from './options.js';

interface SyncCliOptions {
  source: string;
  target: string;
  writeMode: 'auto' | 'restore' | 'commands';
  bigKeyBytes: number;
  existing: 'fail' | 'replace' | 'flush';
  onError: 'fail' | 'skip';
  onFullResync: 'flush' | 'fail';
  checkpoint: string;
  spoolDir?: string;
  spoolMemory: number;
  spoolDisk: number;
  listeningPort?: number;
  readTimeout: number;
  verifyChecksum: boolean;
  exitAfterFullSync: boolean;
  progress: boolean;
  progressInterval: number;
  logLevel: string;
  metricsPort?: number;
  metricsHost: string;
}

export function registerSyncCommand(program: Command): void {
  program
    .command('sync')
    .description('connect to the source as a replica, copy its snapshot to the target, then apply every write it makes until stopped')
    .requiredOption('-s, --source <url>', 'source: redis://[user:pass@]host:port')
    .requiredOption('-t, --target <url>', 'target: redis://[user:pass@]host:port')
    .addOption(new Option('--write-mode <mode>', 'how the snapshot is written: auto (SET for strings, RESTORE for the rest when the target allows), restore, commands').choices(['auto', 'restore', 'commands']).default('auto'))
    .option('--big-key-bytes <size>', 'keys above this size go as chunked commands, never RESTORE', parseSize, 16 * 1024 * 1024)
    .addOption(new Option('--existing <policy>', 'when the target already holds keys at the first full sync: fail, replace (overwrite the source keys, keep others), flush (empty the target first)').choices(['fail', 'replace', 'flush']).default('fail'))
    .addOption(new Option('--on-error <policy>', 'a write the target rejects, or a corrupt key: fail (stop, exit 5/3) or skip (log, count, go on)').choices(['fail', 'skip']).default('fail'))
    .addOption(new Option('--on-full-resync <policy>', 'when resuming is answered with a full resync: flush (empty the target and copy again) or fail (exit 7)').choices(['flush', 'fail']).default('flush'))
    .option('--checkpoint <where>', 'where the applied offset is stored: target[:KEY] (atomically with each batch), file:PATH (at-least-once), none', 'target')
    .option('--spool-dir <dir>', 'directory for spool segments (default: the OS temp dir)')
    .option('--spool-memory <size>', 'stream bytes kept in memory before spilling to disk', parseSize, 64 * 1024 * 1024)
    .option('--spool-disk <size>', 'disk budget for the spool; past it the source is no longer read', parseSize, 4 * 1024 * 1024 * 1024)
    .option('--listening-port <port>', 'port announced with REPLCONF listening-port', parsePort)
    .option('--read-timeout <duration>', 'source silence after which the link is dropped and resumed', parseDuration, 60_000)
    .option('--no-verify-checksum', 'do not verify the RDB CRC64')
    .option('--exit-after-full-sync', 'exit once the snapshot is applied (for one-off copies and benchmarks)', false)
    .option('--no-progress', 'no progress display / progress log lines')
    .option('--progress-interval <duration>', 'progress log period when stderr is not a TTY', parseDuration, 10_000)
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .option('--metrics-port <port>', 'serve Prometheus /metrics, /status (JSON) and /healthz on this port (default: off)', parsePort)
    .option('--metrics-host <host>', 'address the metrics endpoint binds to', '127.0.0.1')
    .action(async (o: SyncCliOptions) => {
      const logger = createLogger({ level: o.logLevel });
      const session = new SyncSession({
        source: o.source,
        target: o.target,
        writeMode: o.writeMode,
        bigKeyBytes: o.bigKeyBytes,
        existing: o.existing,
        onError: o.onError,
        onFullResync: o.onFullResync,
        checkpoint: parseCheckpointSpec(o.checkpoint),
        spoolDir: o.spoolDir,
        spoolMemoryBytes: o.spoolMemory,
        spoolDiskBytes: o.spoolDisk,
        listeningPort: o.listeningPort,
        readTimeoutMs: o.readTimeout,
        verifyChecksum: o.verifyChecksum,
        exitAfterFullSync: o.exitAfterFullSync,
        logger,
      });
      logger.info({ source: redactUrl(o.source), target: redactUrl(o.target), writeMode: o.writeMode, checkpoint: o.checkpoint }, 'replicant sync starting');
      // Before anything else starts: a port already in use fails fast with exit 2.
      const metrics: MetricsServer | null = o.metricsPort === undefined ? null : await startMetricsServer(session, { port: o.metricsPort, host: o.metricsHost, logger });
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
      }
    });
}

function snapshot(s: SyncStatus): { phase: string; fields: Record<string, number | string | null>; line: string } {
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
