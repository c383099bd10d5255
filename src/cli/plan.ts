/**
 * `replicant plan`: before a sync, measure the source and check both servers; prints what to
 * expect and the exact settings to change. Exit 0 when the sync should work, 12 when a check
 * failed (warnings alone exit 0).
 */
import { Option, type Command } from 'commander';
import { ExitCode } from '../errors.js';
import { formatBytes, formatCount, formatDuration } from '../observe/progress.js';
import type { PlanReport } from '../plan/plan.js';
import { LOG_LEVELS, parseDuration, parsePositiveDuration, parsePositiveInt, parsePositiveNumber } from './options.js';
import { addPasswordOptions, resolvePasswords, type PasswordFileOptions } from './secrets.js';
import { addTlsOptions, resolveTls, type TlsCliOptions } from './tls.js';

interface PlanCliOptions extends PasswordFileOptions, TlsCliOptions {
  source: string;
  target: string;
  outage: number;
  sampleTime: number;
  keysPerSec: number;
  mbPerSec: number;
  fromBench?: string;
  sampleKeys: number;
  writeMode: 'auto' | 'restore' | 'commands';
  json?: boolean;
  logLevel: string;
}

export function registerPlanCommand(program: Command): void {
  const cmd = program
    .command('plan')
    .showHelpAfterError(false)
    .description('before a sync: measure the source, check buffers, compatibility, memory and permissions of both servers; exit 12 when something will fail')
    .requiredOption('-s, --source <url>', 'source: redis[s]://[user[:pass]@]host:port or sentinel[s]://... (rediss, sentinels: TLS)')
    .requiredOption('-t, --target <url>', 'target: redis[s]://[user[:pass]@]host:port');
  addTlsOptions(cmd);
  addPasswordOptions(cmd)
    .option('--outage <duration>', 'outage of the sync (network, restart) it must survive with a partial resync', parseDuration, 5 * 60_000)
    .option('--sample-time <duration>', "how long the source's write rate is measured", parsePositiveDuration, 5_000)
    .option('--keys-per-sec <n>', "Replicant's full-sync rate for the time estimate (keys/s; measure yours with replicant bench)", parsePositiveNumber, 500_000)
    .option('--mb-per-sec <n>', "Replicant's full-sync rate for the time estimate (RDB MB/s)", parsePositiveNumber, 50)
    .option('--from-bench <file>', 'take the two rates above from a replicant bench --json result (measured on your servers); explicit options still win')
    .option('--sample-keys <n>', 'keys sampled per db (DUMP sizes) to estimate the RDB', parsePositiveInt, 200)
    .addOption(new Option('--write-mode <mode>', 'the write mode the sync will use').choices(['auto', 'restore', 'commands']).default('auto'))
    .option('--json', 'print the plan as JSON')
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).default('warn'))
    .action(async (o: PlanCliOptions, command: Command) => {
      const { runPlan } = await import('../plan/plan.js');
      const { readBenchRates } = await import('../plan/bench-rates.js');
      const { createLogger } = await import('../observe/logger.js');
      const measured = o.fromBench !== undefined ? readBenchRates(o.fromBench) : null;
      const given = (name: string) => command.getOptionValueSource(name) === 'cli';
      const keysPerSec = measured && !given('keysPerSec') ? measured.keysPerSec : o.keysPerSec;
      const bytesPerSec = measured && !given('mbPerSec') ? measured.bytesPerSec : o.mbPerSec * 1024 * 1024;
      const logger = createLogger({ level: o.logLevel });
      const { source, target } = resolvePasswords(o);
      process.stderr.write(`measuring the source's write rate for ${formatDuration(o.sampleTime)}...\n`);
      const report = await runPlan({
        source,
        target,
        tls: resolveTls({ ...o, source, target }, logger),
        outageMs: o.outage,
        sampleMs: o.sampleTime,
        keysPerSec,
        bytesPerSec,
        sampleKeys: o.sampleKeys,
        writeMode: o.writeMode,
        logger,
      });
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatPlan(report));
      if (!report.ok) process.exitCode = ExitCode.PLAN_PROBLEMS;
      await new Promise<void>((r) => logger.flush(() => r()));
    });
}

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

function clusterText(masters: number | null): string {
  return masters === null ? '' : ` (cluster of ${masters} master${masters === 1 ? '' : 's'})`;
}

export function formatPlan(r: PlanReport): string {
  const w = r.writeRate;
  const lines = [
    `source ${r.source.address}: Redis ${r.source.version}${clusterText(r.source.masters)}, ${formatCount(r.source.keys)} keys, ${formatBytes(r.source.usedMemory)} used`,
    `target ${r.target.address}: Redis ${r.target.version}${clusterText(r.target.masters)}, ${formatCount(r.target.keys)} keys, ${formatBytes(r.target.usedMemory)} used`,
    '',
    `write rate      ${formatBytes(Math.round(w.bytesPerSec))}/s, ${formatCount(w.commandsPerSec)} commands/s over ${formatDuration(w.sampledMs)}${w.method === 'network-input' ? ' (network input: an upper bound, the source keeps no backlog yet)' : ''}`,
    `RDB             about ${formatBytes(r.rdb.bytes)} (${r.rdb.method === 'dump-sample' ? `DUMP sizes of ${formatCount(r.rdb.sampledKeys)} sampled keys` : 'used_memory_dataset: DUMP not allowed'})`,
    `full sync       about ${formatDuration(r.fullSync.estimatedSec * 1000)} at ${formatCount(r.fullSync.keysPerSec)} keys/s or ${formatBytes(r.fullSync.bytesPerSec)}/s (--keys-per-sec / --mb-per-sec / --from-bench)`,
    `write mode      auto will write ${r.autoWriteMode === 'commands' ? 'every key with plain commands' : 'strings with SET, other types with RESTORE'}`,
    `outage budget   ${formatDuration(r.outageSec * 1000)} (--outage)`,
    '',
  ];
  for (const c of r.checks) lines.push(`[${MARK[c.verdict]}] ${c.name}: ${c.detail}`);
  const fixes = r.checks.flatMap((c) => c.fix);
  if (fixes.length > 0) lines.push('', 'to fix (redis-cli on the source unless noted; also put them in redis.conf to survive a restart):', ...fixes.map((f) => `  ${f}`));
  lines.push('', r.ok ? 'plan: the sync should work' : 'plan: the sync as planned will FAIL (exit 12)');
  return `${lines.join('\n')}\n`;
}
