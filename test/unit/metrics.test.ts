/** The metrics endpoint against a fake session (status() + events): no Redis involved. */
import { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { createSyncMetrics, PHASES, startMetricsServer, type MetricsServer, type MetricsSource } from '../../src/observe/metrics.js';
import type { SyncEvents, SyncSession, SyncStatus } from '../../src/sync/session.js';

// A SyncSession is a MetricsSource (compile-time check).
const sessionIsSource = (s: SyncSession): MetricsSource => s;
void sessionIsSource;

class FakeSession extends EventEmitter<SyncEvents> {
  calls = 0;
  current: SyncStatus = {
    phase: 'streaming',
    replid: '8f2c0e6b1d3a4f5e6a7b8c9d0e1f2a3b4c5d6e7f',
    receivedOffset: 12_345,
    appliedOffset: 12_000,
    lagBytes: 345,
    lagMs: 250,
    rdb: { bytes: 4096, totalBytes: 8192, keys: 77, keysPerSec: 1500.5 },
    opsPerSec: 42,
    commandsApplied: 1001,
    errors: 3,
    fullSyncs: 1,
    partialSyncs: 2,
    lostKeys: 4,
    lostKeysReport: '/tmp/lost.txt',
    skippedCommands: 5,
    complete: false,
  };
  status(): SyncStatus {
    this.calls++;
    return { ...this.current, rdb: this.current.rdb ? { ...this.current.rdb } : null };
  }
}

/** Prometheus text -> { 'name{labels}': value } (HELP/TYPE lines left out). */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(session: FakeSession, defaultMetrics = true): Promise<{ srv: MetricsServer; url: (path: string) => string }> {
  const srv = await startMetricsServer(session, { port: 0, defaultMetrics });
  servers.push(srv);
  return { srv, url: (path) => `http://127.0.0.1:${srv.port}${path}` };
}

async function scrape(url: string): Promise<{ text: string; samples: Map<string, number>; type: string | null }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, samples: parseExposition(text), type: res.headers.get('content-type') };
}

describe('metrics endpoint', () => {
  it('exposes the status figures in Prometheus text format, with the default process metrics', async () => {
    const session = new FakeSession();
    const { url } = await start(session);
    const { text, samples, type } = await scrape(url('/metrics'));
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const p of PHASES) expect(samples.get(`replicant_phase{phase="${p}"}`)).toBe(p === 'streaming' ? 1 : 0);
    expect(samples.get('replicant_received_offset')).toBe(12_345);
    expect(samples.get('replicant_applied_offset')).toBe(12_000);
    expect(samples.get('replicant_lag_bytes')).toBe(345);
    expect(samples.get('replicant_lag_seconds')).toBe(0.25);
    expect(samples.get('replicant_ops_per_second')).toBe(42);
    expect(samples.get('replicant_commands_applied_total')).toBe(1001);
    expect(samples.get('replicant_errors_total')).toBe(3);
    expect(samples.get('replicant_lost_keys')).toBe(4);
    expect(samples.get('replicant_skipped_commands_total')).toBe(5);
    expect(samples.get('replicant_copy_complete')).toBe(0);
    expect(samples.get('replicant_full_syncs_total')).toBe(1);
    expect(samples.get('replicant_partial_syncs_total')).toBe(2);
    expect(samples.get('replicant_rdb_bytes')).toBe(4096);
    expect(samples.get('replicant_rdb_total_bytes')).toBe(8192);
    expect(samples.get('replicant_rdb_keys')).toBe(77);
    expect(samples.get('replicant_rdb_keys_per_second')).toBe(1500.5);
    expect(text).toContain('# TYPE replicant_commands_applied_total counter');
    expect(text).toContain('# TYPE replicant_applied_offset gauge');
    expect(samples.has('process_cpu_user_seconds_total')).toBe(true);
    expect(samples.has('nodejs_heap_size_used_bytes')).toBe(true);
  });

  it('reads status() at each scrape, once per scrape', async () => {
    const session = new FakeSession();
    const { url } = await start(session, false);
    await scrape(url('/metrics'));
    expect(session.calls).toBe(1);
    session.current = { ...session.current, phase: 'reconnecting', appliedOffset: 99_999, commandsApplied: 5000, partialSyncs: 3 };
    const { samples } = await scrape(url('/metrics'));
    expect(session.calls).toBe(2);
    expect(samples.get('replicant_phase{phase="reconnecting"}')).toBe(1);
    expect(samples.get('replicant_phase{phase="streaming"}')).toBe(0);
    expect(samples.get('replicant_applied_offset')).toBe(99_999);
    expect(samples.get('replicant_commands_applied_total')).toBe(5000);
    expect(samples.get('replicant_partial_syncs_total')).toBe(3);
    expect(samples.has('process_cpu_user_seconds_total')).toBe(false);
  });

  it('leaves out figures that are unknown instead of reporting 0, and brings them back once known', async () => {
    const session = new FakeSession();
    const { url } = await start(session, false);
    const known = session.current;
    session.current = { ...known, phase: 'connecting', receivedOffset: null, appliedOffset: null, lagBytes: null, lagMs: null, rdb: null, replid: null };
    const { text, samples } = await scrape(url('/metrics'));
    for (const name of ['replicant_received_offset', 'replicant_applied_offset', 'replicant_lag_bytes', 'replicant_lag_seconds', 'replicant_rdb_bytes', 'replicant_rdb_total_bytes', 'replicant_rdb_keys', 'replicant_rdb_keys_per_second']) {
      expect(samples.has(name), name).toBe(false);
      expect(text).toContain(`# HELP ${name} `);
    }
    // Counters are always there.
    expect(samples.get('replicant_errors_total')).toBe(3);
    // A snapshot of unknown size: only that figure is missing.
    session.current = { ...known, rdb: { bytes: 10, totalBytes: null, keys: 1, keysPerSec: 0 } };
    const again = (await scrape(url('/metrics'))).samples;
    expect(again.get('replicant_applied_offset')).toBe(12_000);
    expect(again.get('replicant_rdb_bytes')).toBe(10);
    expect(again.has('replicant_rdb_total_bytes')).toBe(false);
  });

  it('records when the phase last changed, and stops listening on close', async () => {
    const session = new FakeSession();
    const before = Date.now() / 1000;
    const { srv, url } = await start(session, false);
    expect(session.listenerCount('phase')).toBe(1);
    const first = (await scrape(url('/metrics'))).samples.get('replicant_phase_changed_timestamp_seconds')!;
    expect(first).toBeGreaterThanOrEqual(Math.floor(before));
    await new Promise((r) => setTimeout(r, 20));
    session.emit('phase', 'reconnecting', {});
    const second = (await scrape(url('/metrics'))).samples.get('replicant_phase_changed_timestamp_seconds')!;
    expect(second).toBeGreaterThan(first);
    await srv.close();
    expect(session.listenerCount('phase')).toBe(0);
    await expect(fetch(url('/metrics'))).rejects.toThrow();
  });

  it('serves /status as the JSON of status()', async () => {
    const session = new FakeSession();
    const { url } = await start(session, false);
    const res = await fetch(url('/status'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual(session.current);
  });

  it('/healthz: 200 while full-syncing or streaming, 503 otherwise', async () => {
    const session = new FakeSession();
    const { url } = await start(session, false);
    for (const phase of PHASES) {
      session.current = { ...session.current, phase };
      const res = await fetch(url('/healthz'));
      const healthy = phase === 'streaming' || phase === 'full-sync';
      expect(res.status, phase).toBe(healthy ? 200 : 503);
      expect(await res.json()).toEqual({ ok: healthy, phase });
    }
  });

  it('answers 404 for other paths and 405 for other methods; ignores a query string', async () => {
    const session = new FakeSession();
    const { url } = await start(session, false);
    const missing = await fetch(url('/nope'));
    expect(missing.status).toBe(404);
    await missing.text();
    const post = await fetch(url('/metrics'), { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    await post.text();
    expect((await scrape(url('/metrics?name[]=x'))).samples.get('replicant_applied_offset')).toBe(12_000);
  });

  it('close() does not wait for idle keep-alive connections, and can be called twice', async () => {
    const session = new FakeSession();
    const { srv, url } = await start(session, false);
    // fetch keeps the connection alive after this.
    await scrape(url('/metrics'));
    const closed = Promise.all([srv.close(), srv.close()]);
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('close() hung')), 5000).unref());
    await Promise.race([closed, timeout]);
  });

  it('rejects with a UsageError naming the address when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    const session = new FakeSession();
    try {
      const err = await startMetricsServer(session, { port, host: '127.0.0.1', defaultMetrics: false }).then(
        (s) => {
          servers.push(s);
          return null;
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(`127.0.0.1:${port}`);
      expect((err as Error).message).toContain('EADDRINUSE');
      expect(session.listenerCount('phase')).toBe(0);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('several sessions in one process each expose the (shared) process metrics', async () => {
    const a = createSyncMetrics(new FakeSession());
    const b = createSyncMetrics(new FakeSession());
    for (const m of [a, b]) {
      const samples = parseExposition(await m.registry.metrics());
      expect(samples.has('process_cpu_user_seconds_total')).toBe(true);
      expect(samples.get('replicant_applied_offset')).toBe(12_000);
      m.detach();
    }
  });

  it('createSyncMetrics gives a registry usable without the HTTP server', async () => {
    const session = new FakeSession();
    const m = createSyncMetrics(session, { defaultMetrics: false });
    const samples = parseExposition(await m.registry.metrics());
    expect(samples.get('replicant_applied_offset')).toBe(12_000);
    expect(samples.get('replicant_phase{phase="streaming"}')).toBe(1);
    m.detach();
    expect(session.listenerCount('phase')).toBe(0);
  });
});
