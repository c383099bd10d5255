/** The relay stages of a sync, built as the streaming step builds them, for unit tests. */
import { silentLogger } from '../../src/observe/logger.js';
import type { CommandTable } from '../../src/commands/table.js';
import { SyncFigures } from '../../src/sync/figures.js';
import { LostKeys } from '../../src/sync/lost-keys.js';
import { ErrorPolicy } from '../../src/sync/policy.js';
import { buildRelay } from '../../src/sync/relay/stages.js';
import { PartialScope, type PartialSyncSpec } from '../../src/sync/relay/selection.js';

export interface TestRelayOptions {
  onError?: 'fail' | 'skip';
  cluster?: boolean;
  partial?: PartialSyncSpec;
  table?: CommandTable | null;
  otherSyncs?: string[];
}

export function testRelay(o: TestRelayOptions = {}) {
  const log = silentLogger();
  const figures = new SyncFigures(new LostKeys(log, undefined, undefined));
  const policy = new ErrorPolicy(o.onError ?? 'skip', figures, figures.lost, log);
  const { chain } = buildRelay({
    log,
    policy,
    scope: new PartialScope(o.partial),
    shard: null,
    cluster: o.cluster ?? false,
    targetLabel: 'target:1',
    sourceLabel: 'source:1',
    commandTable: () => o.table ?? null,
    otherSyncs: () => o.otherSyncs ?? [],
  });
  return { relay: chain, figures };
}
