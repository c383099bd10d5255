/**
 * `replicant cutover`: pause writes on the source, wait for the running sync to apply the
 * last byte, verify, print the proof; then unpause (--unpause) or leave the source paused for
 * the application switch. Exit 0 on success, 11 when it aborted (the source is unpaused).
 */
import { Option, type Command } from 'commander';
import { formatCount } from '../observe/progress.js';
import { parseSample } from '../verify/sample.js';
import type { CutoverProof } from '../cutover/cutover.js';
import { LOG_LEVELS, parsePositiveDuration } from './options.js';
import { addPasswordOptions, resolvePasswords, type PasswordFileOptions } from './secrets.js';
import { addTlsOptions, resolveTls, type TlsCliOptions } from './tls.js';

interface CutoverCliOptions extends PasswordFileOptions, TlsCliOptions {
  source: string;
  target: string;
  statusUrl?: string;
  name?: string;
  maxPause: number;
  sample?: string;
  unpause?: boolean;
  json?: boolean;
  logLevel: string;
}

export function registerCutoverCommand(program: Command): void {
  const cmd = program
    .command('cutover')
    .showHelpAfterError(false)
    .description('pause writes on the source, wait until the running sync applied everything, verify, print the proof; exit 11 (source unpaused) when anything fails')
    .requiredOption('-s, --source <url>', 'source of the running sync: redis[s]://[user[:pass]@]host:port or sentinel[s]://... (rediss, sentinels: TLS)')
    .requiredOption('-t, --target <url>', 'target of the running sync: redis[s]://[user[:pass]@]host:port');
  addTlsOptions(cmd);
  addPasswordOptions(cmd)
    .option('--status-url <url>', "the sync's /status (http://127.0.0.1:PORT/status of its --metrics-port); default: read its checkpoint key on the target")
    .option('--name <name>', 'the --name of the sync, to find its checkpoint key (default: the source address)')
    .option('--max-pause <duration>', 'longest time writes stay paused: CLIENT PAUSE timeout, and budget for catching up and verifying', parsePositiveDuration, 5_000)
    .option('--sample <n|fraction>', 'verify about n keys (or 0.1 / 5% of them) instead of every key')
    .option('--unpause', 'resume writes on the source once verified (default: leave it paused for the application switch)')
    .option('--json', 'print the proof as JSON')
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).default('warn'))
    .action(async (o: CutoverCliOptions) => {
      const { Cutover } = await import('../cutover/cutover.js');
      const { parseStatusUrl } = await import('../cutover/position.js');
      const { createLogger } = await import('../observe/logger.js');
      const logger = createLogger({ level: o.logLevel });
      const { source, target } = resolvePasswords(o);
      const cutover = new Cutover({
        source,
        target,
        tls: resolveTls({ ...o, source, target }, logger),
        statusUrl: o.statusUrl !== undefined ? parseStatusUrl(o.statusUrl) : undefined,
        name: o.name,
        maxPauseMs: o.maxPause,
        sample: o.sample !== undefined ? parseSample(o.sample) : null,
        unpause: o.unpause === true,
        logger,
      });
      // Ctrl-C while paused: abort, which unpauses the source; before or after, just exit.
      const onSignal = (sig: NodeJS.Signals) => {
        if (!cutover.interrupt(`interrupted by ${sig}`)) process.exit(130);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const proof = await cutover.run();
        process.stdout.write(o.json ? `${JSON.stringify(proof, null, 2)}\n` : formatProof(proof));
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await new Promise<void>((r) => logger.flush(() => r()));
      }
    });
}

export function formatProof(p: CutoverProof): string {
  const v = p.verify;
  const lines = [
    `cutover: target ${p.target} holds everything source ${p.source} wrote`,
    `  replication id     ${p.replid}`,
    `  source offset      ${p.sourceOffset} (master_repl_offset, frozen by the pause)`,
    `  applied offset     ${p.appliedOffset} (${p.positionFrom}); ${formatCount(p.behindAtPauseBytes)} bytes behind when paused, caught up in ${p.catchUpMs} ms`,
    `  verify             ${v.sample ?? 'every key'} (${v.method}): ${formatCount(v.compared)} compared, ${formatCount(v.equal)} equal, ${v.differences} differences, ${v.durationMs} ms`,
    `  keys               source ${formatCount(p.sourceKeys)}, target ${formatCount(p.targetKeys)} (Replicant's own keys left out)`,
  ];
  for (const s of p.shards ?? []) lines.splice(lines.length - 2, 0, `  shard              master ${s.master}: replication id ${s.replid}, offset ${s.sourceOffset}, applied ${s.appliedOffset}`);
  if (p.unpaused) {
    lines.push(`  writes paused      ${p.pausedMs} ms, resumed (--unpause)`);
  } else {
    const left = Math.max(0, (p.pauseEndsAt ?? 0) - Date.now());
    lines.push(
      `  writes paused      ${p.pausedMs} ms so far, and STILL PAUSED: the pause ends by itself at ${new Date(p.pauseEndsAt ?? 0).toISOString()} (${(left / 1000).toFixed(1)} s from now, --max-pause)`,
      '',
      'Switch the application to the target now. To resume writes on the source before then (undo):',
    );
    for (const master of p.shards?.map((s) => s.master) ?? [p.source]) {
      const [host, port] = splitLabel(master);
      lines.push(`  redis-cli -h ${host} -p ${port} CLIENT UNPAUSE`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function splitLabel(label: string): [string, string] {
  const i = label.lastIndexOf(':');
  return [label.slice(0, i).replace(/^\[|\]$/g, ''), label.slice(i + 1)];
}
