/**
 * `replicant verify`: compare the target with the source and say whether it holds the same
 * data. Exit 0 when equal, 8 when differences were found (summary and examples on stdout),
 * 4 / 5 when the source / target cannot be read, 2 for a bad command line.
 */
import { Option, type Command } from 'commander';
import { addPartialOptions, type PartialCliOptions } from './partial-options.js';
import { LOG_LEVELS, parseDuration, parseNonNegativeInt, parsePositiveDuration, parsePositiveInt } from './options.js';
import { addPasswordOptions, type PasswordFileOptions } from './secrets.js';
import { addTlsOptions, type TlsCliOptions } from './tls.js';

export interface VerifyCliOptions extends PasswordFileOptions, TlsCliOptions, PartialCliOptions {
  source: string;
  target: string;
  sample?: string;
  maxDiffs: number;
  settle: number;
  digest: boolean;
  digestMaxKeys: number;
  batch: number;
  json?: boolean;
  progress: boolean;
  progressInterval: number;
  logLevel: string;
}

export function registerVerifyCommand(program: Command): void {
  const cmd = program
    .command('verify')
    .showHelpAfterError(false) // errors stay one line; --help has the rest
    .description('compare the target with the source key by key (or by DEBUG DIGEST when possible); exit 0 when equal, 8 when different')
    .requiredOption('-s, --source <url>', 'source: redis[s]://[user:pass@]host:port (any node of a cluster) or sentinel[s]://host:port/master (rediss, sentinels: TLS)')
    .requiredOption('-t, --target <url>', 'target: redis[s]://[user:pass@]host:port[/db] (any node of a cluster)');
  addTlsOptions(cmd);
  addPartialOptions(addPasswordOptions(cmd), { stream: false, dbHelp: 'only these (source) databases (default: every db holding keys on either side)' })
    .option('--sample <n|fraction>', 'check about n keys, or a fraction (0.1) or percentage (5%) of them, on each side')
    .option('--max-diffs <n>', 'differences listed as examples (all are counted)', parseNonNegativeInt, 20)
    .option('--settle <duration>', 're-check a differing key this long after (e.g. 2s) before reporting it: tells replication lag from real differences; 0 = no recheck', parseDuration, 0)
    .option('--no-digest', 'skip the whole-dataset DEBUG DIGEST fast path (it blocks each server while it runs)')
    .option('--digest-max-keys <n>', 'use the DEBUG DIGEST fast path only up to this many keys per server', parseNonNegativeInt, 1_000_000)
    .option('--batch <n>', 'keys per SCAN page and per pipelined batch', parsePositiveInt, 500)
    .option('--json', 'print the report as JSON')
    .option('--no-progress', 'no progress on stderr')
    .option('--progress-interval <duration>', 'progress log period when stderr is not a TTY', parsePositiveDuration, 10_000)
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).default('info'))
    .action(async (o: VerifyCliOptions) => {
      const { runVerifyCommand } = await import('./verify-run.js');
      await runVerifyCommand(o);
    });
}
