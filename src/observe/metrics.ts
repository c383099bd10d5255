/**
 * Prometheus metrics and a status endpoint for a running sync.
 *
 *   GET /metrics  Prometheus text format: phase, offsets, lag, counters, snapshot progress,
 *                 plus the standard process_* / nodejs_* metrics
 *   GET /status   the session's status() as JSON
 *   GET /healthz  200 while full-syncing or streaming (a cluster source: every shard), 503 otherwise
 *
 * Dependency: prom-client (15.x). It is the maintained, de-facto Prometheus client for Node:
 * it gets the text exposition format (escaping, HELP/TYPE lines, counter conventions) right
 * and provides the standard process/runtime metrics (CPU, memory, event-loop lag, GC) that
 * dashboards expect, which would be a lot of code to write and keep correct here.
 *
 * Every figure is read from `status()` when a scrape asks for it (prom-client `collect`
 * callbacks), so the sync's hot path does no metrics work at all; the only listener is on
 * the rare `phase` event.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { UsageError } from '../errors.js';
import type { SyncStatus } from '../sync/figures.js';
import { PHASES, type Phase } from '../sync/phases.js';
import type { ClusterSyncStatus, ShardStatus } from '../sync/cluster/coordinator.js';
import { silentLogger, type Logger } from './logger.js';

/** What the metrics read: a `SyncSession`, or anything shaped like one. */
export interface MetricsSource {
  status(): SyncStatus;
  on(event: 'phase', listener: (phase: Phase, info: Record<string, unknown>) => void): unknown;
  off(event: 'phase', listener: (phase: Phase, info: Record<string, unknown>) => void): unknown;
}

export interface SyncMetricsOptions {
  /** Also expose prom-client's default process_* / nodejs_* metrics. Default true. */
  defaultMetrics?: boolean;
}

export interface SyncMetrics {
  readonly registry: Registry;
  /** Stop listening to the source's events. */
  detach(): void;
}

/** Every phase (declared once, in sync/phases.ts), so the `replicant_phase` gauge has a 0 for each phase it is not in. */
export { PHASES } from '../sync/phases.js';

/** Phases in which the sync is doing its job (what /healthz reports as healthy). */
const HEALTHY: ReadonlySet<Phase> = new Set<Phase>(['full-sync', 'streaming']);

export function isHealthy(status: Pick<SyncStatus, 'phase'>): boolean {
  return HEALTHY.has(status.phase);
}

let processRegistry: Registry | null = null;

/**
 * prom-client's default metrics, created once per process: they start an event-loop delay
 * monitor and a GC observer that are never released, so they must not be made per session.
 */
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** A registry whose metrics are computed from `source.status()` on each collect. */
export function createSyncMetrics(source: MetricsSource, options: SyncMetricsOptions = {}): SyncMetrics {
  const registry = new Registry();
  const registers = [registry];

  // One status() per scrape: prom-client collects every metric synchronously within one
  // turn of the event loop, so the snapshot is dropped at the next microtask. Should that
  // ever change, a metric merely reads a fresher status().
  let cached: SyncStatus | null = null;
  const snap = (): SyncStatus => {
    if (cached === null) {
      cached = source.status();
      queueMicrotask(() => {
        cached = null;
      });
    }
    return cached;
  };

  let phaseChangedAt = Date.now();
  const onPhase = (): void => {
    phaseChangedAt = Date.now();
  };
  source.on('phase', onPhase);

  new Gauge({
    name: 'replicant_phase',
    help: 'Current phase of the sync: 1 for the phase it is in, 0 for the others.',
    labelNames: ['phase'] as const,
    registers,
    collect() {
      const phase = snap().phase;
      for (const p of PHASES) this.set({ phase: p }, p === phase ? 1 : 0);
    },
  });
  new Gauge({
    name: 'replicant_phase_changed_timestamp_seconds',
    help: 'Unix time of the last phase change (or of the start of the metrics, if none since).',
    registers,
    collect() {
      this.set(phaseChangedAt / 1000);
    },
  });

  // Figures that are unknown (null) have no sample rather than a misleading 0.
  const optionalGauge = (name: string, help: string, read: (s: SyncStatus) => number | null | undefined): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = read(snap());
        if (v === null || v === undefined) this.remove({});
        else this.set(v);
      },
    });
  };
  optionalGauge('replicant_received_offset', 'Replication offset of the last byte received from the source.', (s) => s.receivedOffset);
  optionalGauge('replicant_applied_offset', 'Replication offset applied on the target (what is ACKed to the source and checkpointed).', (s) => s.appliedOffset);
  optionalGauge('replicant_lag_bytes', 'Bytes of the replication stream received but not yet applied on the target.', (s) => s.lagBytes);
  optionalGauge('replicant_lag_seconds', 'How long the oldest received but unapplied bytes have waited.', (s) => (s.lagMs === null ? null : s.lagMs / 1000));
  optionalGauge('replicant_ops_per_second', 'Commands applied on the target per second (recent rate).', (s) => s.opsPerSec);
  optionalGauge('replicant_rdb_bytes', 'Bytes of the RDB snapshot read so far (only while a full sync runs).', (s) => s.rdb?.bytes);
  optionalGauge('replicant_rdb_total_bytes', 'Size of the RDB snapshot being read, when the source announced it (only while a full sync runs).', (s) => s.rdb?.totalBytes);
  optionalGauge('replicant_rdb_keys', 'Keys of the RDB snapshot applied so far (only while a full sync runs).', (s) => s.rdb?.keys);
  optionalGauge('replicant_rdb_keys_per_second', 'Snapshot keys applied per second, recent rate (only while a full sync runs).', (s) => s.rdb?.keysPerSec);
  optionalGauge('replicant_lost_keys', 'Snapshot keys of the last full sync that were not written to the target (listed in the --report file).', (s) => s.lostKeys);
  optionalGauge('replicant_copy_complete', '0 while the copy on the target is known to be short (snapshot unfinished, keys lost, commands skipped), else 1.', (s) => (s.complete ? 1 : 0));

  // The session keeps the totals; a counter is re-set to them on each collect.
  const total = (name: string, help: string, read: (s: SyncStatus) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read(snap()));
      },
    });
  };
  total('replicant_commands_applied_total', 'Commands of the replication stream applied on the target.', (s) => s.commandsApplied);
  total('replicant_errors_total', 'Writes the target rejected or keys that could not be decoded (counted under --on-error skip).', (s) => s.errors);
  total('replicant_skipped_commands_total', 'Stream commands the target rejected and that were left out (--on-error skip).', (s) => s.skippedCommands);
  total('replicant_full_syncs_total', 'Full synchronizations (snapshot copies) started.', (s) => s.fullSyncs);
  total('replicant_partial_syncs_total', 'Partial resynchronizations (PSYNC continues) accepted by the source.', (s) => s.partialSyncs);

  // A cluster source: the same figures per shard (labelled by shard key), for the shard that lags or is down.
  const shardGauge = (name: string, help: string, read: (s: ShardStatus) => number | null): void => {
    new Gauge({
      name,
      help,
      labelNames: ['shard'] as const,
      registers,
      collect() {
        this.reset();
        for (const sh of (snap() as Partial<ClusterSyncStatus>).shards ?? []) {
          const v = read(sh);
          if (v !== null) this.set({ shard: sh.shard }, v);
        }
      },
    });
  };
  // Shards shared among processes: what this one holds, and how many processes are alive.
  const sharingGauge = (name: string, help: string, read: (s: ClusterSyncStatus['sharing'], shards: number) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const s = snap() as Partial<ClusterSyncStatus>;
        if (s.sharing !== undefined) this.set(read(s.sharing, s.shards?.length ?? 0));
      },
    });
  };
  sharingGauge('replicant_shards_held', 'Cluster source: shards this process syncs now.', (_, held) => held);
  sharingGauge('replicant_shards_waiting', 'Cluster source: shards no live process syncs (every process holds its --max-shards).', (s) => s.waiting.length);
  sharingGauge('replicant_sync_processes', 'Cluster source: live processes sharing this sync (this one included).', (s) => s.members.length);
  shardGauge('replicant_shard_healthy', 'Cluster source: 1 while the shard is full-syncing or streaming, else 0.', (s) => (isHealthy(s) ? 1 : 0));
  shardGauge('replicant_shard_applied_offset', "Cluster source: the shard's replication offset applied on the target.", (s) => s.appliedOffset);
  shardGauge('replicant_shard_lag_bytes', "Cluster source: bytes of the shard's stream received but not yet applied.", (s) => s.lagBytes);

  return {
    registry: options.defaultMetrics ?? true ? Registry.merge([registry, processMetrics()]) : registry,
    detach: () => {
      source.off('phase', onPhase);
    },
  };
}

export interface MetricsServerOptions extends SyncMetricsOptions {
  /** TCP port; 0 picks a free one (see the returned `port`). */
  port: number;
  /** Address to bind. Default 127.0.0.1: the endpoint has no authentication. */
  host?: string;
  logger?: Logger;
}

export interface MetricsServer {
  readonly port: number;
  readonly host: string;
  /** Stop listening, drop open connections, stop listening to the source. Idempotent. */
  close(): Promise<void>;
}

/** Serve /metrics, /status and /healthz for `source` over HTTP. Rejects with a UsageError if it cannot listen. */
export async function startMetricsServer(source: MetricsSource, options: MetricsServerOptions): Promise<MetricsServer> {
  const log = options.logger ?? silentLogger();
  const host = options.host ?? '127.0.0.1';
  const metrics = createSyncMetrics(source, options);
  const server = createServer((req, res) => {
    handle(req, res, source, metrics.registry).catch((e: unknown) => {
      log.warn({ err: (e as Error).message, url: req.url }, 'metrics endpoint failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  try {
    await listen(server, options.port, host);
  } catch (e) {
    metrics.detach();
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`cannot serve metrics on ${host}:${options.port}: ${err.code ?? err.message} (choose another --metrics-port / --metrics-host)`);
  }
  server.on('error', (e) => log.warn({ err: e.message }, 'metrics server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics` }, 'serving metrics');

  let closing: Promise<void> | null = null;
  return {
    port,
    host,
    close() {
      closing ??= new Promise<void>((resolve) => {
        metrics.detach();
        server.close(() => resolve());
        // Keep-alive connections from a scraper would otherwise hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, source: MetricsSource, registry: Registry): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  const path = (req.url ?? '/').split('?', 1)[0];
  switch (path) {
    case '/metrics':
      return send(res, 200, registry.contentType, await registry.metrics());
    case '/status':
      return send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(source.status())}\n`);
    case '/healthz': {
      const s = source.status();
      const ok = isHealthy(s);
      return send(res, ok ? 200 : 503, 'application/json; charset=utf-8', `${JSON.stringify({ ok, phase: s.phase })}\n`);
    }
    default:
      return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /status or /healthz\n');
  }
}

function send(res: ServerResponse, code: number, contentType: string, body: string): void {
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}
