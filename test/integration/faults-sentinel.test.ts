/**
 * A sentinel source (`sentinel://host:port/mymaster`): master + replica + one sentinel, a
 * non-idempotent load, and `SENTINEL FAILOVER` while Replicant streams. Replicant must follow the
 * promoted replica and resume with a partial resync (PSYNC2 keeps the old replication id), so
 * the target ends equal to the new master with a single full sync in total.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { infoField, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { populate, startLoad, type Load } from '../helpers/dataset.js';
import { digestWithoutReserved, runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';
import { failover, freezeMaster, settleOldMaster, startSentinelGroup, type SentinelGroup } from '../helpers/sentinel.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';

const groups: SentinelGroup[] = [];
const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
const loads: Load[] = [];
afterEach(async () => {
  await Promise.all(loads.splice(0).map((l) => l.stop().catch(() => 0)));
  await Promise.all(syncs.splice(0).map((s) => s.stop().catch(() => {})));
  for (const g of groups.splice(0)) await g.stop();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);


describe('sentinel source', () => {
  it('follows SENTINEL FAILOVER under load with a partial resync: target equal to the new master, one full sync in total', async () => {
    const group = await startSentinelGroup({ args: ['--repl-backlog-size', '64mb', '--repl-diskless-sync-delay', '0'] });
    groups.push(group);
    const target = await startRedis();
    servers.push(target);
    const oldMaster = group.master.client();
    const newMaster = group.replica.client();
    await populate(oldMaster, { seed: 31 });

    const logs: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    const loadOld = startLoad(group.master.client(), { delayMs: 1 });
    loads.push(loadOld);
    const sync = runSync({ source: group.url, target: target.url, logger });
    syncs.push(sync);
    await new Promise<void>((resolve, reject) => {
      sync.session.once('fullSyncDone', () => resolve());
      sync.done.then(() => reject(new Error('sync ended before the full sync finished')), reject);
    });
    const firstApplied = sync.session.status().appliedOffset ?? 0;
    await waitFor(() => (sync.session.status().appliedOffset ?? 0) > firstApplied, 'streaming from the first master', 20_000, 20);

    // Stop writing to the old master and freeze its offset (as a graceful failover does), so the
    // promoted replica has every byte Replicant may have applied.
    await loadOld.stop();
    const offset = await freezeMaster(group);
    let loadNew: Load | null = null;
    await failover(group, () => {
      // The load moves to the promoted replica at once, while Replicant is still being moved.
      loadNew = startLoad(group.replica.client(), { seed: 8, delayMs: 1 });
      loads.push(loadNew);
    });
    // Writes after the failover reach the target through the new master.
    await waitFor(() => (sync.session.status().appliedOffset ?? 0) > offset + 10_000, 'the sync to apply writes made on the new master', 30_000, 50);
    await settleOldMaster(group);
    const sent = await loadNew!.stop();
    expect(sent).toBeGreaterThan(100);
    await waitCaughtUp(sync.session, newMaster, 60_000);
    await sync.stop();

    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(newMaster));
    const st = sync.session.status();
    expect(st.fullSyncs).toBe(1);
    expect(st.partialSyncs).toBeGreaterThanOrEqual(1);
    // Replicant's resume is a partial resync on the promoted replica.
    expect(await infoField(newMaster, 'stats', 'sync_partial_ok')).toBeGreaterThanOrEqual(1);
    const resumed = logs.filter((l) => typeof l['msg'] === 'string' && /partial resync \(\+CONTINUE\)/.test(l['msg']));
    expect(resumed.length, JSON.stringify(logs.slice(-20))).toBeGreaterThanOrEqual(1);
    expect(logs.filter((l) => l['msg'] === 'full sync applied')).toHaveLength(1);

    // The CLI takes the same URL and finds the new master through the sentinel.
    const copy = await startRedis();
    servers.push(copy);
    const cli = await runCli(['sync', '--source', group.url, '--target', copy.url, '--exit-after-full-sync', '--no-progress']);
    expect(cli.code, cli.stderr.slice(-2000)).toBe(0);
    expect(cli.stderr).toContain(`127.0.0.1:${group.replica.port}`);
    expect(await digestWithoutReserved(copy.client())).toBe(await digestWithoutReserved(newMaster));
  });
});
