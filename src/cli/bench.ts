/**
 * `replicant bench`: full-sync and streaming throughput, end-to-end lag, CPU and memory of
 * Replicant on the user's servers (or two local temporary ones), optionally next to a native
 * replica. A live progress line on stderr, a summary table (or --json) on stdout, and an
 * optional self-contained --report FILE.html / FILE.svg.
 */
import { writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { UsageError } from '../errors.js';
import { ProgressReporter } from '../observe/progress.js';
import { parseNonNegativeInt, parsePositiveDuration, parsePositiveInt } from './options.js';
import { resolvePasswords, addPasswordOptions, type PasswordFileOptions } from './secrets.js';
import { addTlsOptions, resolveTls, tlsArgs, type TlsCliOptions } from './tls.js';

interface BenchCliOptions extends PasswordFileOptions, TlsCliOptions {
  source?: string;
  target?: string;
  keys: number;
  valueSize: number;
  rate: number;
  duration: number;
  clients: number;
  compareNative?: boolean;
  existing: 'fail' | 'replace' | 'flush';
  json?: boolean;
  report?: string;
  progress: boolean;
}

export function registerBenchCommand(program: Command): void {
  const cmd = program
    .command('bench')
    .showHelpAfterError(false)
    .description('measure full-sync keys/s and MB/s, streaming ops/s, end-to-end lag, CPU and memory; without URLs on two local temporary servers')
    .option('-s, --source <url>', 'source to benchmark (bench keys are written under replicant-bench: and deleted at the end)')
    .option('-t, --target <url>', 'target (receives a copy of the whole source)');
  addTlsOptions(cmd);
  addPasswordOptions(cmd)
    .option('--keys <n>', 'keys written to the source before the full sync', parsePositiveInt, 200_000)
    .option('--value-size <bytes>', 'size of each value (random, so compression does not flatter MB/s)', parsePositiveInt, 64)
    .option('--rate <n>', 'writes per second while streaming; 0 = as fast as the source takes them', parseNonNegativeInt, 0)
    .option('--duration <duration>', 'how long the streaming load runs', parsePositiveDuration, 10_000)
    .option('--clients <n>', 'connections writing the load', parsePositiveInt, 4)
    .option('--compare-native', 'also measure a native replica: a local redis-server attached to the source with REPLICAOF')
    .addOption(new Option('--existing <policy>', 'passed to sync: when the target already holds keys').choices(['fail', 'replace', 'flush']).default('fail'))
    .option('--json', 'print the result as JSON instead of the table')
    .option('--report <file>', 'write a self-contained report with charts: FILE.html or FILE.svg')
    .option('--no-progress', 'no live progress line')
    .action(async (o: BenchCliOptions) => {
      if (o.report !== undefined && !/\.(html?|svg)$/i.test(o.report)) throw new UsageError(`--report ${o.report}: the file name must end in .html or .svg`);
      const { Bench } = await import('../bench/run.js');
      const { formatSummary, renderHtml, renderSvg } = await import('../bench/report.js');
      const { createLogger } = await import('../observe/logger.js');
      const logger = createLogger({ level: 'warn' });
      const urls = o.source !== undefined && o.target !== undefined ? resolvePasswords({ ...o, source: o.source, target: o.target }) : { source: o.source, target: o.target };
      const tls = urls.source !== undefined && urls.target !== undefined ? resolveTls({ ...o, source: urls.source, target: urls.target }, logger) : undefined;
      if (tls === undefined && tlsArgs(o).length > 0) throw new UsageError('the --tls-* options need --source and --target (the local servers do not use TLS)');
      const bench = new Bench({
        source: urls.source,
        target: urls.target,
        keys: o.keys,
        valueSize: o.valueSize,
        rate: o.rate,
        durationMs: o.duration,
        clients: o.clients,
        compareNative: o.compareNative === true,
        existing: o.existing,
        // The CLI script this process runs (the sync child is the same build; this module itself
        // may be a bundle chunk in another directory).
        cli: process.argv[1]!,
        tls,
        tlsArgs: tlsArgs(o),
        logger,
      });
      const progress = new ProgressReporter(() => ({ ...bench.status(), fields: {} }), logger, 1000, process.stderr.isTTY === true);
      if (o.progress) progress.start();
      // First Ctrl-C: stop and clean up (servers, bench keys); a second one exits at once.
      let signalled = false;
      const onSignal = (sig: NodeJS.Signals) => {
        if (signalled) process.exit(130);
        signalled = true;
        bench.interrupt(`interrupted by ${sig}`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let result;
      try {
        result = await bench.run();
      } finally {
        progress.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      process.stdout.write(o.json ? `${JSON.stringify(result, null, 2)}\n` : formatSummary(result));
      if (o.report !== undefined) {
        writeFileSync(o.report, /\.svg$/i.test(o.report) ? renderSvg(result) : renderHtml(result));
        process.stderr.write(`report written to ${o.report}\n`);
      }
    });
}

