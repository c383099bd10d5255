/**
 * Replicant's `sync` command as a child process (its own CPU and memory, like in production),
 * with its JSON log lines parsed as they arrive.
 */
import { procPeakRssKb } from '../../dist/bench/stats.js';
import { join } from 'node:path';
import { exited, runMeasured, spawnOwned, stopChild } from './processes.mjs';
import { ROOT_DIR } from './report.mjs';

// REPLICANT_CLI points the benchmarks at another build (e.g. a patched copy of dist/) for A/B runs.
export const CLI = process.env.REPLICANT_CLI ?? join(ROOT_DIR, 'dist', 'cli', 'main.js');

/** JSON log lines out of a chunk of stderr text (other lines are ignored). */
export function parseLogLines(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a line cut by the tail buffer
    }
  }
  return out;
}

/**
 * One full sync with --exit-after-full-sync, timed from process start to exit, under
 * /usr/bin/time -v. Returns { wallMs, cpuMs, maxRssKb, fullSync: { keys, ms, ... } | null }.
 */
export async function replicantFullSync(sourceUrl, targetUrl, extraArgs = [], cli = CLI) {
  const r = await runMeasured(process.execPath, [
    cli, 'sync', '--source', sourceUrl, '--target', targetUrl, '--exit-after-full-sync',
    '--checkpoint', 'none', '--no-progress', '--log-level', 'info', ...extraArgs,
  ]);
  const logs = parseLogLines(r.stderr);
  if (r.code !== 0) throw new Error(`replicant sync exited with ${r.code}${r.signal ? ` (${r.signal})` : ''}:\n${r.stderr.slice(-3000)}`);
  const done = logs.find((l) => l.msg === 'full sync applied') ?? null;
  const mode = logs.find((l) => l.msg === 'snapshot write mode')?.mode ?? null;
  return { wallMs: r.wallMs, cpuMs: r.cpuMs, maxRssKb: r.maxRssKb, fullSync: done, writeMode: mode };
}

/**
 * A long-running `replicant sync` child. `progress` collects the progress log lines
 * (every `progressMs`), `phases` the phase changes with their arrival time.
 */
export function startReplicant(sourceUrl, targetUrl, { checkpoint = 'none', progressMs = 200, extraArgs = [], cli = CLI } = {}) {
  const child = spawnOwned(process.execPath, [
    cli, 'sync', '--source', sourceUrl, '--target', targetUrl, '--checkpoint', checkpoint,
    '--progress-interval', `${progressMs}ms`, '--log-level', 'info', ...extraArgs,
  ]);
  const state = { child, progress: [], phases: [], errors: [], tail: '' };
  let partial = '';
  child.stderr.on('data', (d) => {
    const text = partial + d.toString();
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    state.tail = (state.tail + text.slice(0, cut + 1)).slice(-8000);
    const now = performance.now();
    for (const l of parseLogLines(text.slice(0, cut + 1))) {
      if (l.msg === 'progress') state.progress.push({ t: now, ...l });
      else if (typeof l.msg === 'string' && l.msg.startsWith('phase: ')) state.phases.push({ t: now, phase: l.phase });
      if (l.level >= 50) state.errors.push(l.msg);
    }
  });
  child.stdout.resume();
  state.waitPhase = async (phase, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!state.phases.some((p) => p.phase === phase)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`replicant exited (${child.exitCode ?? child.signalCode}) before phase ${phase}:\n${state.tail}`);
      if (Date.now() > deadline) throw new Error(`replicant did not reach phase ${phase} within ${timeoutMs} ms:\n${state.tail}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** Peak RSS so far (VmHWM), in KB. */
  state.peakRssKb = () => procPeakRssKb(child.pid);
  /** Graceful stop (SIGTERM: apply what was received, store the checkpoint); returns the exit code. */
  state.stop = async () => {
    await stopChild(child, 15_000);
    return (await exited(child)).code;
  };
  return state;
}
