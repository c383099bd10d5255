/**
 * `replicant bench`: how fast Replicant copies and follows a source, measured end to end.
 *
 *  1. fill the source with `keys` strings under `replicant-bench:`;
 *  2. run `replicant sync` as a child process (its own CPU and memory, as in production) with
 *     --metrics-port, sampling its /status every 250 ms: full-sync keys/s and MB/s;
 *  3. once it streams, write at `rate` SETs/s (0 = flat out) for `durationMs` while a probe key
 *     measures the lag end to end (probe.ts): ops/s written and applied, lag p50/p99/max;
 *  4. optionally (`compareNative`) the same with a local redis-server attached by REPLICAOF.
 *
 * Without URLs every server is a throw-away local one; with URLs the bench keys, and the
 * bench sync's checkpoint, lease and registry entry, are deleted at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REGISTRY_KEY, syncIdentity } from '../checkpoint/identity.js';
import { ReplicantError, ExitCode, UsageError } from '../errors.js';
import { parseSourceUrl, resolveSource } from '../replication/source.js';
import { parseRedisUrl, type SourceEndpoint } from '../replication/url.js';
import { PASSWORD_ENV, withoutPassword } from '../cli/secrets.js';
import { silentLogger, type Logger } from '../observe/logger.js';
import { tlsConnectOptions, type TlsSettings } from '../net/tls.js';
import { fetchSyncStatus } from '../observe/status-client.js';
import type { SyncStatus } from '../sync/session.js';
import { BENCH_PREFIX, LoadWriter, fillDataset } from './load.js';
import { freePort, startLocalServer, type LocalServer } from './local-servers.js';
import { LagProbe } from './probe.js';
import { percentile, procCpuMs, procPeakRssKb } from './stats.js';

export interface BenchOptions {
  /** Both or neither: without them, two local temporary servers. */
  source?: string;
  target?: string;
  keys: number;
  valueSize: number;
  /** SETs per second during streaming; 0 = as fast as the source takes them. */
  rate: number;
  durationMs: number;
  clients: number;
  compareNative: boolean;
  existing: 'fail' | 'replace' | 'flush';
  /** The replicant CLI script to run `sync` with (dist/cli/main.js). */
  cli: string;
  /** TLS settings of a rediss:// / sentinels:// side, and the --tls-* arguments that gave them (for the sync child). */
  tls?: { source?: TlsSettings; target?: TlsSettings };
  tlsArgs?: string[];
  logger?: Logger;
}

export interface TimelinePoint {
  /** Seconds since the tool's full sync started. */
  t: number;
  phase: string;
  /** Keys applied per second during the full sync. */
  keysPerSec: number | null;
  writeOpsPerSec: number | null;
  appliedOpsPerSec: number | null;
  /** Highest probe lag among the probes sent in this interval (ms). */
  lagMs: number | null;
}

export interface ToolResult {
  tool: 'replicant' | 'native';
  fullSync: { keys: number; rdbBytes: number | null; ms: number; keysPerSec: number; mbPerSec: number | null };
  streaming: {
    targetRate: number | null;
    seconds: number;
    writeOpsPerSec: number;
    /** Commands the tool applied per second (its own count; null for a native replica). */
    appliedOpsPerSec: number | null;
    lag: { p50: number | null; p99: number | null; max: number | null; probes: number; unseen: number };
    drainMs: number | null;
  };
  /** CPU of the process doing the copy (Replicant, or the native replica's redis-server). */
  cpu: { fullSyncMs: number | null; fullSyncPct: number | null; streamingMs: number | null; streamingPct: number | null };
  peakRssMB: number | null;
  timeline: TimelinePoint[];
}

export interface BenchResult {
  date: string;
  machine: { cpus: number; cpuModel: string | null; node: string };
  local: boolean;
  source: string;
  target: string;
  dataset: { keys: number; valueSize: number };
  replicant: ToolResult;
  native: ToolResult | null;
}

export interface BenchStatus {
  phase: string;
  line: string;
}

const SAMPLE_MS = 250;
/**
 * The load and the probe run this long before anything is counted, for each tool alike: the
 * first tool measured would otherwise meet this process's own load writer while it is still
 * cold (it falls behind its rate, then catches up in a burst: a lag spike that the tool measured
 * second never sees), and lag p99 means the steady state, not the first second.
 */
const WARMUP_MS = 1000;
/** Full syncs of a small dataset take well under a second: sampled more often. */
const FULL_SYNC_SAMPLE_MS = 100;
const BENCH_NAME = 'replicant-bench';

function client(e: SourceEndpoint): Redis {
  const c = new Redis({
    host: e.host,
    port: e.port,
    username: e.username,
    password: e.password,
    maxRetriesPerRequest: 20,
    enableAutoPipelining: false,
    ...(e.tls === undefined ? {} : { tls: tlsConnectOptions(e.host, e.tls) }),
  });
  c.on('error', () => {});
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Bench {
  private readonly log: Logger;
  private phase = 'starting';
  private line = '';
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  private stopReason: string | null = null;

  constructor(private readonly o: BenchOptions) {
    if ((o.source === undefined) !== (o.target === undefined)) throw new UsageError('give both --source and --target, or neither (two local temporary servers)');
    // A local replica would need its own TLS client setup (tls-replication, certificates): not attempted.
    if (o.compareNative && o.source !== undefined && /^(rediss|sentinels):\/\//i.test(o.source)) {
      throw new UsageError('--compare-native needs a plain redis:// source (the local replica it attaches does not speak TLS)');
    }
    this.log = o.logger ?? silentLogger();
  }

  /** Ctrl-C: the run stops at its next step and cleans up (servers, bench keys) before rejecting. */
  interrupt(reason: string): void {
    this.stopReason = reason;
  }

  private checkInterrupted(): void {
    if (this.stopReason !== null) throw new ReplicantError('INTERRUPTED', `bench ${this.stopReason}: stopped, temporary servers and bench keys removed`, 130);
  }

  status(): BenchStatus {
    return { phase: this.phase, line: this.line };
  }

  async run(): Promise<BenchResult> {
    try {
      return await this.runInner();
    } finally {
      for (const c of this.cleanups.reverse()) await Promise.resolve(c()).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'bench cleanup failed'));
    }
  }

  private async runInner(): Promise<BenchResult> {
    const local = this.o.source === undefined;
    let dir: string | null = null;
    const newDir = (): string => {
      if (dir === null) {
        const d = mkdtempSync(join(tmpdir(), 'replicant-bench-'));
        dir = d;
        this.cleanups.push(() => rmSync(d, { recursive: true, force: true }));
      }
      return mkdtempSync(join(dir, 'server-'));
    };
    const startServer = async (args: string[] = []): Promise<LocalServer> => {
      const s = await startLocalServer(newDir(), args);
      this.cleanups.push(() => s.stop());
      return s;
    };
    let sourceUrl = this.o.source;
    let targetUrl = this.o.target;
    if (local) {
      this.phase = 'starting';
      sourceUrl = (await startServer()).url;
      targetUrl = (await startServer()).url;
    }
    const spec = parseSourceUrl(sourceUrl!, this.o.tls?.source);
    const sourceEndpoint = await resolveSource(spec, this.log);
    const targetEndpoint = parseRedisUrl(targetUrl!, this.o.tls?.target);
    const src = client(sourceEndpoint);
    const tgt = client(targetEndpoint);
    this.cleanups.push(() => {
      src.disconnect();
      tgt.disconnect();
    });
    await waitPing(src, 'source');
    await waitPing(tgt, 'target');
    await refuseCluster(src, 'source');
    await refuseCluster(tgt, 'target');
    if (!local) this.cleanups.push(() => this.removeBenchData(src, tgt, spec));

    this.phase = 'filling';
    await fillDataset(src, this.o.keys, this.o.valueSize, (n) => {
      this.checkInterrupted();
      this.line = `source: ${n.toLocaleString('en-US')} / ${this.o.keys.toLocaleString('en-US')} keys written`;
    });
    const writers = Array.from({ length: this.o.clients }, () => client(sourceEndpoint));
    this.cleanups.push(() => writers.forEach((w) => w.disconnect()));

    const replicant = await this.measureReplicant(sourceUrl!, targetUrl!, src, tgt, writers);
    let native: ToolResult | null = null;
    if (this.o.compareNative) {
      const replica = await startServer([
        '--replicaof', sourceEndpoint.host, String(sourceEndpoint.port),
        ...(sourceEndpoint.password !== undefined ? ['--masterauth', sourceEndpoint.password] : []),
        ...(sourceEndpoint.username !== undefined ? ['--masteruser', sourceEndpoint.username] : []),
      ]);
      native = await this.measureNative(replica, src, writers);
    }
    this.phase = 'done';
    return {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, node: process.version },
      local,
      source: `${sourceEndpoint.host}:${sourceEndpoint.port}`,
      target: `${targetEndpoint.host}:${targetEndpoint.port}`,
      dataset: { keys: this.o.keys, valueSize: this.o.valueSize },
      replicant,
      native,
    };
  }

  private async measureReplicant(sourceUrl: string, targetUrl: string, src: Redis, tgt: Redis, writers: Redis[]): Promise<ToolResult> {
    const port = await freePort();
    const s = withoutPassword(sourceUrl);
    const t = withoutPassword(targetUrl);
    const env = { ...process.env };
    if (s.password !== undefined) env[PASSWORD_ENV.source] = s.password;
    if (t.password !== undefined) env[PASSWORD_ENV.target] = t.password;
    const args = [this.o.cli, 'sync', '-s', s.url, '-t', t.url, '--name', BENCH_NAME, '--existing', this.o.existing, '--metrics-port', String(port), '--no-progress', '--log-level', 'info', ...(this.o.tlsArgs ?? [])];
    const started = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    this.cleanups.push(() => void child.kill('SIGKILL'));
    const logs = collectLogs(child);
    const statusUrl = `http://127.0.0.1:${port}/status`;
    const timeline: TimelinePoint[] = [];
    let lastKeys = 0;
    let lastT = started;
    this.phase = 'full-sync';
    let full: { keys: number; rdbBytes: number; ms: number } | null = null;
    while (full === null) {
      await sleep(FULL_SYNC_SAMPLE_MS);
      this.checkInterrupted();
      if (child.exitCode !== null) throw new ReplicantError('BENCH', `replicant sync exited with ${child.exitCode} during the full sync: ${logs.tail()}`, ExitCode.INTERNAL);
      const st = await fetchStatus(statusUrl);
      const now = performance.now();
      const keys = st?.rdb?.keys ?? lastKeys;
      const kps = ((keys - lastKeys) * 1000) / (now - lastT);
      timeline.push({ t: (now - started) / 1000, phase: 'full-sync', keysPerSec: st?.phase === 'full-sync' ? kps : null, writeOpsPerSec: null, appliedOpsPerSec: null, lagMs: null });
      if (st?.rdb) this.line = `keys ${keys.toLocaleString('en-US')}  ${Math.round(kps).toLocaleString('en-US')} keys/s`;
      lastKeys = keys;
      lastT = now;
      full = logs.fullSync();
    }
    const fullSyncWallMs = performance.now() - started;
    const fullCpu = procCpuMs(child.pid!);
    const streaming = await this.stream(src, tgt, writers, timeline, started, async () => {
      const st = await fetchStatus(statusUrl);
      return st?.commandsApplied ?? null;
    });
    const streamCpu = procCpuMs(child.pid!);
    const peak = procPeakRssKb(child.pid!);
    child.kill('SIGTERM');
    await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
    return {
      tool: 'replicant',
      fullSync: { keys: full.keys, rdbBytes: full.rdbBytes, ms: full.ms, keysPerSec: (full.keys * 1000) / Math.max(1, full.ms), mbPerSec: full.rdbBytes / 1024 / 1024 / (Math.max(1, full.ms) / 1000) },
      streaming: streaming.result,
      cpu: cpuFigures(fullCpu, fullSyncWallMs, streamCpu, streaming.result.seconds * 1000),
      peakRssMB: peak === null ? null : peak / 1024,
      timeline,
    };
  }

  private async measureNative(replica: LocalServer, src: Redis, writers: Redis[]): Promise<ToolResult> {
    this.phase = 'native full-sync';
    const started = performance.now();
    const r = new Redis({ host: '127.0.0.1', port: replica.port, maxRetriesPerRequest: 20 });
    r.on('error', () => {});
    this.cleanups.push(() => r.disconnect());
    const timeline: TimelinePoint[] = [];
    const keysAt = async () => Number(/keys=(\d+)/.exec(String(await r.info('keyspace')))?.[1] ?? 0);
    let lastKeys = 0;
    let lastT = started;
    for (;;) {
      await sleep(FULL_SYNC_SAMPLE_MS / 5);
      this.checkInterrupted();
      const info = String(await r.info('replication').catch(() => ''));
      const done = /master_link_status:up/.test(info) && /master_sync_in_progress:0/.test(info);
      const now = performance.now();
      if (now - lastT >= FULL_SYNC_SAMPLE_MS || done) {
        const keys = await keysAt();
        timeline.push({ t: (now - started) / 1000, phase: 'full-sync', keysPerSec: ((keys - lastKeys) * 1000) / (now - lastT), writeOpsPerSec: null, appliedOpsPerSec: null, lagMs: null });
        this.line = `replica keys ${keys.toLocaleString('en-US')}`;
        lastKeys = keys;
        lastT = now;
      }
      if (done) break;
      if (now - started > 600_000) throw new ReplicantError('BENCH', 'the native replica did not finish its full sync within 10 minutes', ExitCode.INTERNAL);
    }
    const ms = performance.now() - started;
    const keys = await keysAt();
    const fullCpu = procCpuMs(replica.proc.pid!);
    const streaming = await this.stream(src, r, writers, timeline, started, null);
    const streamCpu = procCpuMs(replica.proc.pid!);
    const peak = procPeakRssKb(replica.proc.pid!);
    return {
      tool: 'native',
      fullSync: { keys, rdbBytes: null, ms, keysPerSec: (keys * 1000) / ms, mbPerSec: null },
      streaming: streaming.result,
      cpu: cpuFigures(fullCpu, ms, streamCpu, streaming.result.seconds * 1000),
      peakRssMB: peak === null ? null : peak / 1024,
      timeline,
    };
  }

  /** The streaming part, the same for both tools: load + probe for durationMs, sampled every 250 ms. */
  private async stream(src: Redis, dst: Redis, writers: Redis[], timeline: TimelinePoint[], t0: number, applied: (() => Promise<number | null>) | null): Promise<{ result: ToolResult['streaming'] }> {
    this.phase = applied ? 'streaming' : 'native streaming';
    const probeSrc = src.duplicate();
    const probeDst = dst.duplicate();
    probeSrc.on('error', () => {});
    probeDst.on('error', () => {});
    // One probe key per tool: a sequence number left by the previous run would read as already seen.
    const probe = new LagProbe(probeSrc, probeDst, `${BENCH_PREFIX}probe:${applied ? 'replicant' : 'native'}`);
    const writer = new LoadWriter(writers, this.o.rate, this.o.keys, this.o.valueSize);
    probe.start();
    writer.start();
    await sleep(WARMUP_MS);
    const firstApplied = applied ? await applied() : null;
    const from = performance.now();
    const points: { at: number; acked: number; applied: number | null }[] = [{ at: from, acked: writer.acked, applied: firstApplied }];
    while (performance.now() - from < this.o.durationMs && this.stopReason === null) {
      await sleep(SAMPLE_MS);
      const p = { at: performance.now(), acked: writer.acked, applied: applied ? await applied() : null };
      const prev = points[points.length - 1]!;
      const secs = (p.at - prev.at) / 1000;
      const w = (p.acked - prev.acked) / secs;
      const a = p.applied !== null && prev.applied !== null ? (p.applied - prev.applied) / secs : null;
      const recent = probe.lagsBetween(prev.at, p.at).filter(Number.isFinite);
      this.line = `${Math.round(w).toLocaleString('en-US')} writes/s${a !== null ? `  ${Math.round(a).toLocaleString('en-US')} applied/s` : ''}  lag ${recent.length ? `${Math.round(Math.max(...recent))} ms` : '-'}`;
      points.push(p);
    }
    const to = performance.now();
    if (this.stopReason !== null) {
      await writer.stop();
      await probe.close();
      probeSrc.disconnect();
      probeDst.disconnect();
      this.checkInterrupted();
    }
    const lastApplied = applied ? await applied() : null;
    await writer.stop();
    const drainMs = await probe.drain(60_000);
    await probe.close();
    probeSrc.disconnect();
    probeDst.disconnect();
    const lagLine = probe.timeline(from, to, SAMPLE_MS);
    for (let i = 1; i < points.length; i++) {
      const p = points[i]!;
      const prev = points[i - 1]!;
      const secs = (p.at - prev.at) / 1000;
      timeline.push({
        t: (p.at - t0) / 1000,
        phase: 'streaming',
        keysPerSec: null,
        writeOpsPerSec: (p.acked - prev.acked) / secs,
        appliedOpsPerSec: p.applied !== null && prev.applied !== null ? (p.applied - prev.applied) / secs : null,
        lagMs: lagLine[i - 1] ?? null,
      });
    }
    const lags = probe.lagsBetween(from, to);
    const seen = lags.filter(Number.isFinite);
    const seconds = (to - from) / 1000;
    return {
      result: {
        targetRate: this.o.rate > 0 ? this.o.rate : null,
        seconds,
        writeOpsPerSec: (points[points.length - 1]!.acked - points[0]!.acked) / seconds,
        appliedOpsPerSec: lastApplied !== null && firstApplied !== null ? (lastApplied - firstApplied) / seconds : null,
        lag: { p50: percentile(lags, 50), p99: percentile(lags, 99), max: seen.length ? Math.max(...seen) : null, probes: lags.length, unseen: lags.length - seen.length },
        drainMs,
      },
    };
  }

  /** On the user's servers: the bench keys on both sides, and the bench sync's own keys on the target. */
  private async removeBenchData(src: Redis, tgt: Redis, spec: ReturnType<typeof parseSourceUrl>): Promise<void> {
    this.phase = 'cleaning up';
    for (const c of [src, tgt]) {
      let cursor = '0';
      do {
        const [next, keys] = await c.scan(cursor, 'MATCH', `${BENCH_PREFIX}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await c.unlink(...keys);
      } while (cursor !== '0');
    }
    const id = syncIdentity(spec, BENCH_NAME);
    await tgt.del(id.checkpointKey, id.leaseKey, id.ledgerKey);
    await tgt.hdel(REGISTRY_KEY, id.id);
  }
}

/** The load, the probe and the bench keys use one connection per side: a cluster would answer MOVED. */
async function refuseCluster(c: Redis, side: string): Promise<void> {
  const info = String(await c.info('cluster').catch(() => ''));
  if (/cluster_enabled:1/.test(info)) {
    throw new UsageError(`bench: the ${side} is a Redis Cluster; bench measures standalone servers (for a cluster, run replicant sync with --metrics-port and read its /status)`);
  }
}

async function waitPing(c: Redis, side: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await c.ping();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new ReplicantError('BENCH', `${side} does not answer PING: ${(e as Error).message}`, side === 'source' ? ExitCode.SOURCE : ExitCode.TARGET);
      await sleep(50);
    }
  }
}

/** Null while the child is not listening yet (it is starting). */
async function fetchStatus(url: string): Promise<Partial<SyncStatus> | null> {
  return fetchSyncStatus(url).catch(() => null);
}

/** The child's JSON log lines: its "full sync applied" figures and a tail for errors. */
function collectLogs(child: ChildProcess): { fullSync: () => { keys: number; rdbBytes: number; ms: number } | null; tail: () => string } {
  let partial = '';
  let tail = '';
  let full: { keys: number; rdbBytes: number; ms: number } | null = null;
  child.stderr!.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    tail = (tail + text.slice(0, cut + 1)).slice(-4000);
    for (const line of text.slice(0, cut + 1).split('\n')) {
      if (!line.includes('"full sync applied"')) continue;
      try {
        const o = JSON.parse(line) as { keys: number; rdbBytes: number; ms: number };
        full = { keys: o.keys, rdbBytes: o.rdbBytes, ms: o.ms };
      } catch {
        // not a whole JSON line
      }
    }
  });
  return { fullSync: () => full, tail: () => tail };
}

function cpuFigures(fullCpu: number | null, fullWallMs: number, endCpu: number | null, streamWallMs: number): ToolResult['cpu'] {
  const streamingMs = fullCpu !== null && endCpu !== null ? endCpu - fullCpu : null;
  return {
    fullSyncMs: fullCpu,
    fullSyncPct: fullCpu === null ? null : (fullCpu / fullWallMs) * 100,
    streamingMs,
    streamingPct: streamingMs === null ? null : (streamingMs / streamWallMs) * 100,
  };
}
