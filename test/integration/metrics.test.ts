/** The metrics endpoint of a real sync: the scraped applied offset follows the source's master_repl_offset. */
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { masterOffset, runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';
import { startMetricsServer, type MetricsServer } from '../../src/observe/metrics.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
const endpoints: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(endpoints.splice(0).map((m) => m.close()));
  await Promise.all(syncs.splice(0).map((s) => s.stop().catch(() => {})));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

function sample(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('metrics of a running sync', () => {
  it('reports the applied offset, phase and counters of a live sync', async () => {
    // No diskless-sync delay: the full sync starts at once.
    const source = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
    const target = await startRedis();
    servers.push(source, target);
    const src = source.client();
    await src.set('before', 'snapshot');

    const sync = runSync({ source: source.url, target: target.url });
    syncs.push(sync);
    const metrics = await startMetricsServer(sync.session, { port: 0 });
    endpoints.push(metrics);
    const base = `http://127.0.0.1:${metrics.port}`;

    await waitCaughtUp(sync.session, src);
    for (let i = 0; i < 20; i++) await src.incr('counter');
    await src.rpush('list', 'a', 'b', 'c');
    await waitCaughtUp(sync.session, src);

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const offset = await masterOffset(src);
    expect(offset).toBeGreaterThan(0);
    expect(sample(text, 'replicant_applied_offset')).toBe(offset);
    expect(sample(text, 'replicant_received_offset')).toBe(offset);
    expect(sample(text, 'replicant_lag_bytes')).toBe(0);
    expect(sample(text, 'replicant_phase{phase="streaming"}')).toBe(1);
    expect(sample(text, 'replicant_phase{phase="full-sync"}')).toBe(0);
    expect(sample(text, 'replicant_full_syncs_total')).toBe(1);
    expect(sample(text, 'replicant_errors_total')).toBe(0);
    // 20 INCR + 1 RPUSH at least (the source also sends PINGs and SELECTs).
    expect(sample(text, 'replicant_commands_applied_total')).toBeGreaterThanOrEqual(21);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    const status = (await (await fetch(`${base}/status`)).json()) as { phase: string; appliedOffset: number; replid: string };
    expect(status.phase).toBe('streaming');
    expect(status.appliedOffset).toBe(offset);
    expect(status.replid).toMatch(/^[0-9a-f]{40}$/);
    const healthy = await fetch(`${base}/healthz`);
    expect(healthy.status).toBe(200);
    await healthy.text();

    // Once stopped, the endpoint (still up) says so.
    await sync.stop();
    const stopped = await fetch(`${base}/healthz`);
    expect(stopped.status).toBe(503);
    expect(await stopped.json()).toEqual({ ok: false, phase: 'stopped' });
    expect(await target.client().get('counter')).toBe('20');
  });
});
