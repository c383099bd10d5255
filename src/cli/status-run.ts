/** The work behind `replicant status` (defined in ./status.ts), loaded only when that command runs. */
import { UsageError } from '../errors.js';
import { createLogger } from '../observe/logger.js';
import { redactUrl } from '../observe/redact.js';
import { parseRedisUrl, endpointLabel } from '../replication/url.js';
import { openTargetWriter } from '../sync/apply/target-connections.js';
import { formatTargetView, readTargetView } from '../status/target-view.js';
import { withPassword } from './secrets.js';
import { resolveTls } from './tls.js';
import type { StatusCliOptions } from './status.js';

export async function runStatusCommand(o: StatusCliOptions): Promise<void> {
  const logger = createLogger({ level: o.logLevel });
  const target = withPassword(o.target, 'target', o.targetPasswordFile);
  // Only the target is read: the TLS options are the target's.
  const tls = resolveTls({ ...o, source: 'redis://unused:0', target }, logger);
  const ep = parseRedisUrl(target, tls.target);
  const w = await openTargetWriter(ep, { onError: 'fail', logger });
  try {
    const view = await readTargetView((a) => w.call(a), o.name);
    if (o.name !== undefined && view.syncs.length === 0 && view.clusters.length === 0) {
      throw new UsageError(`no sync named "${o.name}" writes to ${redactUrl(o.target)} (replicant status without --name lists them)`);
    }
    process.stdout.write(o.json ? `${JSON.stringify(view, null, 2)}\n` : formatTargetView(view, endpointLabel(ep)));
  } finally {
    w.destroy();
  }
}
