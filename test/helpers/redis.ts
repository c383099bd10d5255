/**
 * Real redis-server processes for integration tests: a free loopback port, a private
 * temp dir, `--enable-debug-command yes`, and a guaranteed stop (call `stop()` in
 * afterAll/afterEach; `stopAllRedis()` is also registered on process exit).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { TlsFiles } from './tls.js';

export interface RedisServer {
  port: number;
  host: string;
  dir: string;
  url: string;
  process: ChildProcess;
  /** A new ioredis client (closed by stop()). */
  client(db?: number): Redis;
  /** Stop the server (SIGKILL if it does not exit within 5 s) and remove its dir unless keepDir. */
  stop(opts?: { keepDir?: boolean }): Promise<void>;
  /** Restart on the same port and dir (e.g. to test persistence). */
  restart(extraArgs?: string[]): Promise<void>;
}

export interface StartRedisOptions {
  /** Extra config as ['--name', 'value', ...]. */
  args?: string[];
  password?: string;
  /** Reuse a dir (e.g. to load a dump.rdb); otherwise a new temp dir. */
  dir?: string;
  /** Start redis-sentinel mode instead (config file written in dir). */
  binary?: string;
  /**
   * Serve TLS only (`--port 0 --tls-port <port>`) with the server certificate of `files`;
   * `authClients` (default false) requires a client certificate from its CA. `url` is then
   * rediss://, and `client()` trusts the CA and presents the client certificate.
   */
  tls?: { files: TlsFiles; authClients?: boolean };
}

const live = new Set<RedisServer>();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('no port'));
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

type ClientTls = ReturnType<TlsFiles['clientOptions']> | undefined;

async function waitReady(port: number, password: string | undefined, proc: ChildProcess, log: () => string, tls: ClientTls): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${log()}`);
    const c = new Redis({ port, host: '127.0.0.1', password, tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    c.on('error', () => {});
    try {
      await c.connect();
      const pong = await c.ping();
      c.disconnect();
      if (pong === 'PONG') return;
    } catch {
      c.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server on ${port} not ready after 10 s: ${log()}`);
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'replicant-test-'));
  const ownsDir = opts.dir === undefined;
  let port = 0;
  let proc: ChildProcess | undefined;
  let output = '';
  const clients: Redis[] = [];
  const tls = opts.tls;
  const clientTls: ClientTls = tls?.files.clientOptions();
  const listen = () => tls === undefined ? ['--port', String(port)] : [
    '--port', '0', '--tls-port', String(port),
    '--tls-cert-file', tls.files.serverCert, '--tls-key-file', tls.files.serverKey, '--tls-ca-cert-file', tls.files.ca,
    '--tls-auth-clients', tls.authClients === true ? 'yes' : 'no',
  ];
  const baseArgs = (extra: string[]) => [
    ...listen(), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--enable-debug-command', 'yes', '--daemonize', 'no', '--logfile', '',
    '--protected-mode', 'no',
    // Replication tests should not wait 5 s for a diskless BGSAVE to start; args may override it.
    '--repl-diskless-sync-delay', '0',
    ...(opts.password ? ['--requirepass', opts.password, '--masterauth', opts.password] : []),
    ...(opts.args ?? []), ...extra,
  ];
  const launch = async (extra: string[]) => {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (port === 0 || attempt > 0) port = await freePort();
      output = '';
      proc = spawn(opts.binary ?? 'redis-server', baseArgs(extra), { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
      proc.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
      try {
        await waitReady(port, opts.password, proc, () => output, clientTls);
        return;
      } catch (e) {
        proc.kill('SIGKILL');
        if (!/Address already in use/.test(output) || attempt === 4) throw e;
      }
    }
  };
  await launch([]);
  const keepPort = () => port;
  const stopProc = async () => {
    const p = proc!;
    if (p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      p.once('exit', () => { clearTimeout(t); resolve(); });
      p.kill('SIGTERM');
    });
  };
  const server: RedisServer = {
    get port() { return keepPort(); },
    host: '127.0.0.1',
    dir,
    get url() { return `${tls === undefined ? 'redis' : 'rediss'}://${opts.password ? `:${encodeURIComponent(opts.password)}@` : ''}127.0.0.1:${keepPort()}`; },
    get process() { return proc!; },
    client(db = 0) {
      const c = new Redis({ port: keepPort(), host: '127.0.0.1', password: opts.password, db, tls: clientTls, maxRetriesPerRequest: 3, lazyConnect: false });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    async stop(o) {
      for (const c of clients.splice(0)) c.disconnect();
      await stopProc();
      live.delete(server);
      if (ownsDir && !o?.keepDir) rmSync(dir, { recursive: true, force: true });
    },
    async restart(extra = []) {
      for (const c of clients.splice(0)) c.disconnect();
      await stopProc();
      const p = port;
      // Keep the same port so clients that reconnect find the server again.
      output = '';
      proc = spawn(opts.binary ?? 'redis-server', baseArgs(extra), { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
      proc.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
      await waitReady(p, opts.password, proc, () => output, clientTls);
    },
  } as RedisServer;
  live.add(server);
  return server;
}

export async function stopAllRedis(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

process.once('exit', () => {
  for (const s of live) s.process.kill('SIGKILL');
});

/** DEBUG DIGEST of a server (all dbs), as hex. */
export async function digest(c: Redis): Promise<string> {
  return (await c.call('DEBUG', 'DIGEST')) as string;
}

/** Wait until `fn` returns true, polling; throws after `timeoutMs` with `what`. */
export async function waitFor(fn: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A numeric field of INFO <section> (e.g. infoField(c, 'stats', 'sync_full')). */
export async function infoField(c: Redis, section: string, name: string): Promise<number> {
  const m = new RegExp(`^${name}:(\\d+)`, 'm').exec((await c.info(section)) as string);
  if (!m) throw new Error(`INFO ${section} has no ${name}`);
  return Number(m[1]);
}

/** Make `target` an exact copy of `source` (values, expiries, stream groups) by replication, then detach it. */
export async function replicate(source: RedisServer, target: RedisServer): Promise<void> {
  const t = target.client();
  await t.replicaof('127.0.0.1', String(source.port));
  await waitFor(async () => {
    const info = (await t.info('replication')) as string;
    return /master_link_status:up/.test(info) && /master_sync_in_progress:0/.test(info);
  }, 'the copy to finish', 20_000, 50);
  await t.replicaof('NO', 'ONE');
}
