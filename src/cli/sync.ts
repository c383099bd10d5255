/**
 * `replicant sync`: pose as a replica of --source and keep --target in step until stopped.
 * SIGINT/SIGTERM stop gracefully (apply what was received, store the checkpoint, exit 0; exit 9
 * when the copy is incomplete, e.g. stopped during the full sync); a second signal exits at once.
 */
import { Command, Option } from 'commander';
import type { SyncCliOptions } from './sync-run.js';
import { parseDuration, parsePort, parseSize } from './options.js';

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
    .option('--report <path>', 'file listing the snapshot keys not written to the target, one per line with db and reason (default: replicant-lost-keys-<time>.txt under --spool-dir or the temp dir, created only if a key is lost)')
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
      const { runSyncCommand } = await import('./sync-run.js');
      await runSyncCommand(o);
    });
}
