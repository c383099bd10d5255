/** The work behind `replicant verify` (defined in ./verify.ts), loaded only when that command runs. */
import { ExitCode } from '../errors.js';
import { redactUrl } from '../observe/redact.js';
import { createLogger } from '../observe/logger.js';
import { ProgressReporter, formatCount } from '../observe/progress.js';
import { formatReport, reportToJson, type VerifyReport } from '../verify/report.js';
import { parseSample } from '../verify/sample.js';
import { partialSpec } from './partial-options.js';
import { resolvePasswords } from './secrets.js';
import { resolveTls } from './tls.js';
import type { VerifyCliOptions } from './verify.js';

export async function runVerifyCommand(o: VerifyCliOptions): Promise<void> {
  // Loaded on use: the verifier pulls in ioredis, which other commands do not need.
  const { Verifier } = await import('../verify/verifier.js');
  const logger = createLogger({ level: o.logLevel });
  const { source, target } = resolvePasswords(o);
  const verifier = new Verifier({
    source,
    target,
    tls: resolveTls({ ...o, source, target }, logger),
    dbs: o.db,
    // The same selection as the sync's (its --db is `dbs`): the filtered image is compared.
    partial: partialSpec({ ...o, db: undefined }),
    sample: o.sample !== undefined ? parseSample(o.sample) : null,
    maxDiffs: o.maxDiffs,
    settleMs: o.settle,
    useDigest: o.digest,
    digestMaxKeys: o.digestMaxKeys,
    batchSize: o.batch,
    logger,
  });
  logger.info({ source: redactUrl(o.source), target: redactUrl(o.target) }, 'replicant verify starting');
  const progress = new ProgressReporter(
    () => {
      const s = verifier.status();
      return {
        phase: s.phase,
        fields: { scanned: s.scanned, compared: s.compared, differences: s.differences, keysPerSec: Math.round(s.keysPerSec), rechecksPending: s.rechecksPending },
        line: `keys ${formatCount(s.scanned)}  ${formatCount(s.keysPerSec)} keys/s  differences ${formatCount(s.differences)}${s.rechecksPending ? `  rechecks pending ${formatCount(s.rechecksPending)}` : ''}`,
      };
    },
    logger,
    o.progressInterval,
  );
  if (o.progress) progress.start();
  let report: VerifyReport;
  try {
    report = await verifier.run();
  } finally {
    progress.stop();
    await new Promise<void>((r) => logger.flush(() => r()));
  }
  process.stdout.write(o.json ? `${JSON.stringify(reportToJson(report), null, 2)}\n` : formatReport(report));
  process.exitCode = report.equal ? ExitCode.OK : ExitCode.DIFFERENT;
}
