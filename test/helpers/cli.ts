/**
 * Running the built CLI (`node dist/cli/main.js`) from integration tests.
 * `ensureBuilt()` rebuilds dist when any file under src/ is newer than it; a lock directory
 * keeps two test files from building at the same time.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist/cli/main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

function stale(): boolean {
  return !existsSync(CLI) || statSync(CLI).mtimeMs < newestMtime(join(ROOT, 'src'));
}

export async function ensureBuilt(): Promise<void> {
  if (!stale()) return;
  const lock = join(ROOT, 'dist.build-lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`build lock ${lock} held for 2 minutes`);
      await new Promise((r) => setTimeout(r, 200));
      if (!existsSync(lock) && !stale()) return;
    }
  }
  try {
    if (!stale()) return;
    // Type errors elsewhere in the tree must not block the build of the CLI: tsc still emits.
    await new Promise<void>((resolve) => {
      execFile('node', [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT }, () => resolve());
    });
    if (!existsSync(CLI)) throw new Error('build did not produce dist/cli/main.js');
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/**
 * Run `node dist/cli/main.js ...args` to its exit, optionally piping `stdin` and with extra `env`; killed with
 * SIGKILL after `timeoutMs` (default 60 s; `code` is then -1).
 */
export function runCli(args: string[], opts: { stdin?: Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ? { ...process.env, ...opts.env } : process.env });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.stdin ?? Buffer.alloc(0));
  });
}

/** Run a bash script (with pipefail) to its exit, collecting its output. */
export function sh(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -o pipefail; ${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Run `fn` over `items` with at most `limit` at a time. */
export async function parallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** A CLI process running in the background (for commands that run until stopped, like `sync`). */
export interface BackgroundCli {
  code: Promise<number>;
  /** The child's process id (for /proc/<pid>/status). */
  pid: number;
  stderr: () => string;
  kill(sig: NodeJS.Signals): void;
}

/** Start `node dist/cli/main.js ...args`; SIGKILLed after `timeoutMs` (default 60 s). Exit code 128 when killed by a signal. */
export function startCli(args: string[], timeoutMs = 60_000): BackgroundCli {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.resume();
  const code = new Promise<number>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : -1))));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  void code.then(() => clearTimeout(timer));
  return { code, pid: child.pid!, stderr: () => err, kill: (sig) => void child.kill(sig) };
}
