/**
 * Throw-away `redis-server` processes on free loopback ports, each in its own directory, for
 * `replicant demo` and `replicant bench` without URLs. The caller kills them (`stop`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { LocalIoError } from '../errors.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface LocalServer {
  port: number;
  proc: ChildProcess;
  url: string;
  /** SIGKILL: the data is throw-away. */
  stop(): void;
}

/** A redis-server with no persistence, DEBUG allowed from loopback, no diskless-sync delay. */
export async function startLocalServer(dir: string, extraArgs: string[] = []): Promise<LocalServer> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--enable-debug-command', 'local', '--repl-diskless-sync-delay', '0', '--logfile', '', ...extraArgs], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    proc.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? new LocalIoError('redis-server is not installed (on Debian: apt-get install redis-server); it is needed to run without URLs') : e);
    });
    proc.once('spawn', () => resolve());
  });
  return { port, proc, url: `redis://127.0.0.1:${port}`, stop: () => void proc.kill('SIGKILL') };
}
