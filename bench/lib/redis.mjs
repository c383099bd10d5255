/**
 * redis-server processes for benchmarks: a free loopback port (never 6379), a private temp
 * dir, no persistence unless asked, killed at exit (see processes.mjs).
 */
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { removeDir, spawnOwned, stopChild, tempDir } from './processes.mjs';

export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = srv.address().port;
        srv.close(() => resolve(p));
      });
    });
    if (port !== 6379) return port;
  }
}

/**
 * Start a redis-server. `args` are extra config pairs (['--name', 'value', ...]).
 * `tls` (files from tls.mjs makeTlsFiles()): serve TLS only (`--port 0 --tls-port <port>`, no
 * client certificates required) and replicate over TLS when made a replica (`tls-replication yes`);
 * url is then rediss://, and client() / the readiness check connect with TLS.
 * Returns { port, url, tls, dir, child, client(), clientOptions(), info(section), stop() }.
 */
export async function startRedis({ args = [], name = 'redis', tls = null } = {}) {
  const listen = (port) => tls === null ? ['--port', String(port)] : [
    '--port', '0', '--tls-port', String(port),
    '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca,
    '--tls-auth-clients', 'no', '--tls-replication', 'yes',
  ];
  const clientTls = tls === null ? {} : { tls: tls.clientOptions() };
  for (let attempt = 0; ; attempt++) {
    const dir = tempDir(`replicant-bench-${name}-`);
    const port = await freePort();
    const child = spawnOwned('redis-server', [
      ...listen(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
      '--enable-debug-command', 'yes', '--daemonize', 'no', '--logfile', '', '--protected-mode', 'no',
      ...args,
    ]);
    let log = '';
    const keep = (d) => {
      log = (log + d.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const clients = [];
    const server = {
      name,
      port,
      dir,
      child,
      url: `${tls === null ? 'redis' : 'rediss'}://127.0.0.1:${port}`,
      tls,
      log: () => log,
      /** ioredis connection options for this server (host, port, and `tls` when it serves TLS). */
      clientOptions: () => ({ port, host: '127.0.0.1', ...clientTls }),
      /** A new ioredis client, closed by stop(). */
      client() {
        const c = new Redis({ port, host: '127.0.0.1', ...clientTls, maxRetriesPerRequest: 1, enableAutoPipelining: false });
        c.on('error', () => {});
        clients.push(c);
        return c;
      },
      async stop() {
        for (const c of clients.splice(0)) c.disconnect();
        await stopChild(child);
        removeDir(dir);
      },
    };
    try {
      await waitReady(server);
      return server;
    } catch (e) {
      await server.stop();
      if (!/Address already in use/.test(log) || attempt >= 4) throw new Error(`redis-server (${name}) did not start: ${e.message}\n${log}`);
    }
  }
}

async function waitReady(server) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`exited with ${server.child.exitCode}`);
    const c = new Redis({ ...server.clientOptions(), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    c.on('error', () => {});
    try {
      await c.connect();
      const pong = await c.ping();
      c.disconnect();
      if (pong === 'PONG') return;
    } catch {
      c.disconnect();
    }
    await sleep(30);
  }
  throw new Error('not ready after 10 s');
}

/** INFO <section> as a { field: string } map. */
export async function info(client, section = '') {
  const text = section ? await client.info(section) : await client.info();
  const out = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Total keys over all dbs, from INFO keyspace. */
export async function totalKeys(client) {
  const ks = await info(client, 'keyspace');
  let n = 0;
  for (const v of Object.values(ks)) {
    const m = /keys=(\d+)/.exec(v);
    if (m) n += Number(m[1]);
  }
  return n;
}

export async function digest(client) {
  return client.call('DEBUG', 'DIGEST');
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `fn` every `everyMs` until it returns true; throws naming `what` after `timeoutMs`. */
export async function waitFor(fn, what, timeoutMs = 120_000, everyMs = 10) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
