/**
 * `replicant status`: which syncs write to a target, who runs each (host and pid of its lease
 * holder), where each stands (its checkpoint), and for a cluster source which process holds
 * which shard — read from the target alone, nothing written. Exit 0; 5 when the target cannot
 * be read; 2 for a bad command line or a --name no sync uses.
 */
import { Option, type Command } from 'commander';
import { LOG_LEVELS } from './options.js';

export interface StatusCliOptions {
  target: string;
  name?: string;
  json?: boolean;
  targetPasswordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsInsecure?: boolean;
  logLevel: string;
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .showHelpAfterError(false)
    .description("the syncs writing to a target, read from the target alone: who runs each (lease holder), where each stands (checkpoint), and which process holds which shard of a cluster source")
    .requiredOption('-t, --target <url>', 'target: redis[s]://[user:pass@]host:port (any node of a cluster)')
    .option('--name <name>', 'only this sync (its --name, or the source address it defaults to)')
    .option('--json', 'print the view as JSON')
    .option('--target-password-file <path>', 'read the target password from a file (or set REPLICANT_TARGET_PASSWORD)')
    .option('--tls-ca <file>', "PEM CA certificate(s) that issued the target's certificate (rediss://)")
    .option('--tls-cert <file>', 'PEM client certificate; needs --tls-key')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-insecure', "do not verify the target's certificate nor its name")
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).default('warn'))
    .action(async (o: StatusCliOptions) => {
      const { runStatusCommand } = await import('./status-run.js');
      await runStatusCommand(o);
    });
}
