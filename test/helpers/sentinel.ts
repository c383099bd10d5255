/**
 * A Redis Sentinel setup for integration tests: a master, one replica and one `redis-sentinel`
 * (quorum 1), all on free loopback ports with private temp dirs, plus a lossless
 * `SENTINEL FAILOVER` driver. Sentinel rewrites its config file, so it gets its own writable one.
 * Always call `stop()` (afterEach/afterAll); the sentinel is also killed on process exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startRedis, waitFor, type RedisServer } from './redis.js';
import type { TlsFiles } from './tls.js';

export interface SentinelProcess {
  host: string;
  port: number;
  dir: string;
  process: ChildProcess;
  /** A new client to the sentinel (closed by stop()). */
  client(): Redis;
  stop(): Promise<void>;
}

export interface SentinelOptions {
  masterName: string;
  masterPort: number;
  masterHost?: string;
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /** The sentinel's own password (`requirepass`). */
  password?: string;
  /** The password of the monitored data nodes (`sentinel auth-pass`). */
  masterPassword?: string;
  /** Serve TLS only (`port 0`, `tls-port`) and reach the data nodes over TLS (`tls-replication yes`). */
  tls?: TlsFiles;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Start `redis-sentinel` monitoring one master (quorum 1). */
export async function startSentinel(opts: SentinelOptions): Promise<SentinelProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'replicant-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  const clients: Redis[] = [];
  const clientTls = opts.tls?.clientOptions();
  let output = '';
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(
      conf,
      [
        ...(opts.tls === undefined ? [`port ${port}`] : [
          'port 0', `tls-port ${port}`, `tls-cert-file ${opts.tls.serverCert}`, `tls-key-file ${opts.tls.serverKey}`,
          `tls-ca-cert-file ${opts.tls.ca}`, 'tls-auth-clients no', 'tls-replication yes',
        ]),
        'bind 127.0.0.1',
        `dir ${dir}`,
        'daemonize no',
        'logfile ""',
        `sentinel monitor ${opts.masterName} ${opts.masterHost ?? '127.0.0.1'} ${opts.masterPort} 1`,
        `sentinel down-after-milliseconds ${opts.masterName} ${opts.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${opts.masterName} ${opts.failoverTimeoutMs ?? 5000}`,
        ...(opts.password ? [`requirepass ${opts.password}`] : []),
        ...(opts.masterPassword ? [`sentinel auth-pass ${opts.masterName} ${opts.masterPassword}`] : []),
        '',
      ].join('\n'),
    );
    output = '';
    const proc = spawn('redis-sentinel', [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
    proc.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
    live.add(proc);
    try {
      await waitFor(async () => {
        if (proc.exitCode !== null) throw new Error(`redis-sentinel exited with ${proc.exitCode}: ${output}`);
        const c = new Redis({ port, host: '127.0.0.1', password: opts.password, tls: clientTls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
        c.on('error', () => {});
        try {
          await c.connect();
          return (await c.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      }, `redis-sentinel on ${port}`, 10_000, 50);
    } catch (e) {
      proc.kill('SIGKILL');
      live.delete(proc);
      if (attempt < 4 && /Address already in use/.test(output)) continue;
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    return {
      host: '127.0.0.1',
      port,
      dir,
      process: proc,
      client() {
        const c = new Redis({ port, host: '127.0.0.1', password: opts.password, tls: clientTls, maxRetriesPerRequest: 3 });
        c.on('error', () => {});
        clients.push(c);
        return c;
      },
      async stop() {
        for (const c of clients.splice(0)) c.disconnect();
        if (proc.exitCode === null && proc.signalCode === null) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
            proc.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            proc.kill('SIGTERM');
          });
        }
        live.delete(proc);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

export interface SentinelGroup {
  masterName: string;
  /** The master when the group started (a replica after a failover). */
  master: RedisServer;
  /** The replica when the group started (the master after a failover). */
  replica: RedisServer;
  sentinel: SentinelProcess;
  /** `sentinel://127.0.0.1:<port>/<masterName>` */
  url: string;
  /** Stop the sentinel first (so it does not react to the others going away), then the servers. */
  stop(): Promise<void>;
}

export interface SentinelGroupOptions {
  masterName?: string;
  /** Extra redis-server args for both data nodes (either may become the master). */
  args?: string[];
}

/** INFO replication field of a server. */
export async function replicationField(c: Redis, field: string): Promise<string | undefined> {
  const m = new RegExp(`^${field}:(.*)\\r?$`, 'm').exec((await c.info('replication')) as string);
  return m ? m[1]!.trim() : undefined;
}

/** What the sentinel says about a master's replicas: one field map per replica. */
async function sentinelReplicas(s: Redis, name: string): Promise<Record<string, string>[]> {
  const rows = (await s.call('SENTINEL', 'REPLICAS', name)) as string[][];
  return rows.map((r) => {
    const o: Record<string, string> = {};
    for (let i = 0; i + 1 < r.length; i += 2) o[r[i]!] = r[i + 1]!;
    return o;
  });
}

/** The master's address according to the sentinel. */
export async function sentinelMaster(s: Redis, name: string): Promise<{ host: string; port: number }> {
  const r = (await s.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string] | null;
  if (r === null) throw new Error(`the sentinel knows no master "${name}"`);
  return { host: r[0], port: Number(r[1]) };
}

/**
 * A master, a replica of it (link up) and a sentinel that has discovered the replica and
 * considers it a good failover candidate.
 */
export async function startSentinelGroup(opts: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const masterName = opts.masterName ?? 'mymaster';
  const args = opts.args ?? [];
  const master = await startRedis({ args });
  const started: Array<{ stop(): Promise<void> }> = [master];
  try {
    const replica = await startRedis({ args: [...args, '--replicaof', '127.0.0.1', String(master.port)] });
    started.push(replica);
    const rc = replica.client();
    await waitFor(async () => (await replicationField(rc, 'master_link_status')) === 'up', 'the replica link to come up', 20_000);
    const sentinel = await startSentinel({ masterName, masterPort: master.port });
    started.unshift(sentinel);
    const sc = sentinel.client();
    await waitFor(async () => {
      const reps = await sentinelReplicas(sc, masterName);
      return reps.some((r) => Number(r['port']) === replica.port && r['flags'] === 'slave' && r['master-link-status'] === 'ok');
    }, 'the sentinel to discover the replica', 30_000, 100);
    return {
      masterName,
      master,
      replica,
      sentinel,
      url: `sentinel://127.0.0.1:${sentinel.port}/${masterName}`,
      async stop() {
        for (const s of started) await s.stop();
      },
    };
  } catch (e) {
    for (const s of started) await s.stop().catch(() => undefined);
    throw e;
  }
}

/**
 * `SENTINEL FAILOVER`, then wait until the replica reports role:master and the sentinel names
 * it. Call it with the old master's offset frozen and the replica caught up (see
 * `freezeMaster`), or bytes the old master takes between the promotion and its demotion (the
 * sentinel's own hello PUBLISHes, replica PINGs, writes) are not in the new master's history.
 * `onPromoted` runs as soon as the replica reports role:master (e.g. to move a load to it).
 */
export async function failover(g: SentinelGroup, onPromoted?: () => void | Promise<void>, timeoutMs = 30_000): Promise<void> {
  const sc = g.sentinel.client();
  const rc = g.replica.client();
  const reply = await sc.call('SENTINEL', 'FAILOVER', g.masterName);
  if (reply !== 'OK') throw new Error(`SENTINEL FAILOVER answered ${String(reply)}`);
  await waitFor(async () => (await replicationField(rc, 'role')) === 'master', 'the replica to be promoted', timeoutMs, 20);
  if (onPromoted) await onPromoted();
  await waitFor(async () => (await sentinelMaster(sc, g.masterName)).port === g.replica.port, 'the sentinel to name the new master', timeoutMs, 50);
}

/**
 * Freeze the master's replication offset for a lossless failover, as Redis' own FAILOVER
 * command does: `CLIENT PAUSE WRITE` holds writes, the sentinel's hello PUBLISHes and the
 * replica PINGs. Resolves with the frozen offset once the replica has all of it.
 */
export async function freezeMaster(g: SentinelGroup, pauseMs = 60_000): Promise<number> {
  const mc = g.master.client();
  const rc = g.replica.client();
  await mc.call('CLIENT', 'PAUSE', String(pauseMs), 'WRITE');
  const offset = Number(await replicationField(mc, 'master_repl_offset'));
  await waitFor(async () => Number(await replicationField(rc, 'slave_repl_offset')) >= offset, 'the replica to reach the frozen master offset', 20_000, 20);
  return offset;
}

/** Lift the pause on the old master and wait until it replicates from the new one. */
export async function settleOldMaster(g: SentinelGroup, timeoutMs = 30_000): Promise<void> {
  const mc = g.master.client();
  await mc.call('CLIENT', 'UNPAUSE');
  await waitFor(
    async () => (await replicationField(mc, 'role')) === 'slave' && (await replicationField(mc, 'master_port')) === String(g.replica.port) && (await replicationField(mc, 'master_link_status')) === 'up',
    'the old master to replicate from the new one',
    timeoutMs,
    50,
  );
}
