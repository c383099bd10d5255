/**
 * Child processes and temp dirs owned by a benchmark run: every redis-server, redis-benchmark
 * and Replicant child started through here is killed, and every temp dir removed, when the
 * script ends — normally, on an error, or on Ctrl-C / SIGTERM.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set();
const dirs = new Set();

/** A new temp dir, removed at exit. */
export function tempDir(prefix = 'replicant-bench-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

export function removeDir(d) {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

/**
 * spawn() whose child is killed at exit. Each child leads its own process group, so killing the
 * group also reaches what it started (e.g. the command under /usr/bin/time).
 */
export function spawnOwned(cmd, args, options = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Resolves with { code, signal } once the child exits (immediately if it already has). */
export function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  child.kill('SIGTERM');
  const t = setTimeout(() => killGroup(child), graceMs);
  await done;
  clearTimeout(t);
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function killAllNow() {
  for (const c of children) killGroup(c);
  children.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

process.once('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    process.stderr.write(`\n${sig}: stopping the benchmark's servers\n`);
    killAllNow();
    process.exit(130);
  });
}

/**
 * Run a command to completion under `/usr/bin/time -v` (when installed) and return its wall
 * time, CPU time and peak RSS. stdout is kept (up to `keepStdout` bytes) for callers that parse it,
 * or goes to /dev/null with `discardStdout`.
 */
export async function runMeasured(cmd, args, { keepStdout = 1 << 20, env, cwd, discardStdout = false } = {}) {
  const useTime = TIME_BIN !== null;
  // discardStdout: the child writes to /dev/null itself (like `> /dev/null`), not through a pipe to us.
  const stdio = ['ignore', discardStdout ? 'ignore' : 'pipe', 'pipe'];
  const child = useTime ? spawnOwned(TIME_BIN, ['-v', cmd, ...args], { env, cwd, stdio }) : spawnOwned(cmd, args, { env, cwd, stdio });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    if (stdout.length < keepStdout) stdout += d.toString();
  });
  child.stderr.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-64 * 1024);
  });
  const t0 = process.hrtime.bigint();
  const { code, signal } = await exited(child);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const m = useTime ? parseTimeV(stderr) : null;
  // /usr/bin/time reports "Command exited with non-zero status N" and exits with N itself.
  return { code, signal, wallMs, stdout, stderr, maxRssKb: m?.maxRssKb ?? null, cpuMs: m?.cpuMs ?? null };
}

function parseTimeV(text) {
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
  const user = /User time \(seconds\): ([\d.]+)/.exec(text);
  const sys = /System time \(seconds\): ([\d.]+)/.exec(text);
  return {
    maxRssKb: rss ? Number(rss[1]) : null,
    cpuMs: user && sys ? Math.round((Number(user[1]) + Number(sys[1])) * 1000) : null,
  };
}

function findTime() {
  try {
    accessSync('/usr/bin/time', constants.X_OK);
    return '/usr/bin/time';
  } catch {
    return null;
  }
}
export const TIME_BIN = findTime();

// CPU time of a live process: shared with `replicant bench` (src/bench/stats.ts).
export { procCpuMs } from '../../dist/bench/stats.js';
