/**
 * `replicant sync`: pose as a replica of --source and keep --target in step until stopped.
 * SIGINT/SIGTERM stop gracefully (apply what was received, store the checkpoint, exit 0; exit 9
 * when the copy is incomplete, e.g. stopped during the full sync); a second signal exits at once.
 */
import { Command, Option } from 'commander';
import type { SyncCliOptions } from './sync-run.js';
import { LOG_LEVELS, parsePositiveInt, parsePort, parsePositiveDuration, parseSize } from './options.js';
import { addPasswordOptions } from './secrets.js';
import { addTlsOptions } from './tls.js';
import { addPartialOptions } from './partial-options.js';
import { SYNC_DEFAULTS as D } from '../sync/options.js';

export function registerSyncCommand(program: Command): void {
  const cmd = program
    .command('sync')
    .showHelpAfterError(false) // errors stay one line; --help has the rest
    .description('connect to the source as a replica, copy its snapshot to the target, then apply every write it makes until stopped')
    .requiredOption('-s, --source <url>', 'source: redis[s]://[user[:pass]@]host:port or sentinel[s]://[user[:pass]@]host:port[,host:port]/master (rediss, sentinels: TLS)')
    .requiredOption('-t, --target <url>', 'target: redis[s]://[user[:pass]@]host:port (each source db goes to the same db number: no /db)');
  addTlsOptions(cmd);
  addPartialOptions(addPasswordOptions(cmd), { stream: true, dbHelp: 'only these source databases (default: every db)' })
    .option('--accept-filter-change', "when the checkpoint was made with other filters: copy again (full sync) instead of refusing to start", false)
    .option('--allow-overlap', 'run next to another partial sync of the same source whose selection is not provably disjoint from this one (default: refused, exit 2; a key in both gets every write twice)', false)
    .addOption(new Option('--write-mode <mode>', 'how the snapshot is written: auto (SET for strings, RESTORE for the rest when the target allows), restore, commands').choices(['auto', 'restore', 'commands']).default(D.writeMode))
    .option('--big-key-bytes <size>', 'keys above this size go as chunked commands, never RESTORE', parseSize, D.bigKeyBytes)
    .addOption(new Option('--existing <policy>', 'when the target already holds keys at the first full sync: fail, replace (overwrite the source keys, keep others), flush (empty the target first)').choices(['fail', 'replace', 'flush']).default(D.existing))
    .addOption(new Option('--on-error <policy>', 'a write the target rejects, or a corrupt key: fail (stop, exit 5/3) or skip (log, count, go on)').choices(['fail', 'skip']).default(D.onError))
    .addOption(new Option('--on-full-resync <policy>', 'when the source or a target that lost its data requires copying again: flush (empty the target, only if it holds nothing this sync did not write; else exit 7), flush-all (empty it anyway), replace (copy over it without flushing), fail (exit 7)').choices(['flush', 'flush-all', 'replace', 'fail']).default(D.onFullResync))
    .option('--name <name>', "this sync's identity on the target (checkpoint, lease); default: the source address (a cluster source: each shard is <name>@<shard>)")
    .option('--prefer-replica', 'cluster source: replicate each shard from one of its replicas (its master when it has none that is up)', false)
    .option('--max-shards <n>', 'cluster source: most shards this process syncs when several processes with the same source, target and --name share them (default: its fair share)', parsePositiveInt)
    .option('--cluster-parallel-syncs <n>', 'cluster source: shards whose snapshot is taken at the same time (each one forks its node)', parsePositiveInt, 1)
    .option('--lease-ttl <duration>', 'how long a dead instance keeps a restarted one waiting; a live one renews it every third', parsePositiveDuration, D.leaseTtlMs)
    .option('--checkpoint <where>', 'where the applied offset is stored: target[:KEY] (atomically with each batch; the default), file:PATH (at-least-once; the default on a cluster target, in --spool-dir or the home directory), none')
    .option('--spool-dir <dir>', 'directory for spool segments (default: the OS temp dir)')
    .option('--report <path>', 'file listing the snapshot keys not written to the target, one per line with db and reason (default: replicant-lost-keys-<time>.txt under --spool-dir or the temp dir, created only if a key is lost)')
    .option('--spool-memory <size>', 'stream bytes kept in memory before spilling to disk (at most 4mb while a string of 1 MiB or more streams)', parseSize, D.spoolMemoryBytes)
    .option('--max-inflight <size>', 'bytes written to the target and not yet answered (pipelining depth; lower it to bound memory; at most 8mb during the full sync)', parseSize, D.maxInflightBytes)
    .option('--spool-disk <size>', 'disk budget for the spool; past it the source is no longer read', parseSize, D.spoolDiskBytes)
    .option('--listening-port <port>', 'port announced with REPLCONF listening-port', parsePort)
    .option('--read-timeout <duration>', 'source silence after which the link is dropped and resumed', parsePositiveDuration, D.readTimeoutMs)
    .option('--connect-timeout <duration>', 'how long the first connection to the source is retried before giving up with exit 4 (later reconnects retry forever)', parsePositiveDuration, D.connectTimeoutMs)
    .option('--max-full-sync-attempts <n>', 'full syncs in a row the source may cut before the snapshot is applied (each one forks the source); then exit 4 with the reason (e.g. its replica output-buffer limit) instead of asking for another', parsePositiveInt, D.maxFullSyncAttempts)
    .option('--no-verify-checksum', 'do not verify the RDB CRC64')
    .option('--exit-after-full-sync', 'exit once the snapshot is applied (for one-off copies and benchmarks)', false)
    .option('--no-progress', 'no progress display / progress log lines')
    .option('--progress-interval <duration>', 'progress log period when stderr is not a TTY', parsePositiveDuration, 10_000)
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).default('info'))
    .option('--metrics-port <port>', 'serve Prometheus /metrics, /status (JSON) and /healthz on this port (default: off)', parsePort)
    .option('--metrics-host <host>', 'address the metrics endpoint binds to', '127.0.0.1')
    .action(async (o: SyncCliOptions) => {
      const { runSyncCommand } = await import('./sync-run.js');
      await runSyncCommand(o);
    });
}
