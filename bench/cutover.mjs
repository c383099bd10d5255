#!/usr/bin/env node
/**
 * How long `replicant cutover` keeps writes paused on a source under load.
 *
 * A source with 100k keys, `replicant sync --metrics-port` streaming to a target, and a writer
 * SETting at --rate writes/s (default 100k) over 8 connections (src/bench/load.ts). Every
 * --every seconds, `replicant cutover --status-url ... --unpause --sample N --json` runs while
 * the load goes on; its proof gives the time writes were paused (PAUSE sent → UNPAUSE answered),
 * of which the catch-up (until the applied offset equals the paused master_repl_offset) and the
 * sampled verify. The achieved write rate is INFO total_commands_processed over the second before.
 * After the runs the target is compared with the source by DEBUG DIGEST (load stopped).
 *
 * Options: --runs N (default 5), --rate N (default 100000), --sample N (default 1000),
 * --every S (default 3).
 */
import { LoadWriter, fillDataset } from '../dist/bench/load.js';
import { freePort, info, sleep, startRedis, waitFor } from './lib/redis.mjs';
import { runMeasured } from './lib/processes.mjs';
import { CLI, startReplicant } from './lib/replicant.mjs';
import { median, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';

const opts = parseArgs(process.argv.slice(2), { runs: 5, rate: 100_000, sample: 1000, every: 3 });
const KEYS = 100_000;

async function main() {
  const loadBefore = warnIfBusy();
  const source = await startRedis({ name: 'cutover-source' });
  const target = await startRedis({ name: 'cutover-target' });
  const src = source.client();
  await fillDataset(src, KEYS, 64, () => {});
  const port = await freePort();
  const rep = startReplicant(source.url, target.url, { checkpoint: 'target', extraArgs: ['--metrics-port', String(port)] });
  await rep.waitPhase('streaming');
  const writers = Array.from({ length: 8 }, () => source.client());
  const load = new LoadWriter(writers, opts.rate, KEYS, 64);
  load.start();
  const rows = [];
  try {
    for (let i = 0; i < opts.runs; i++) {
      await sleep(opts.every * 1000 - 1000);
      const a = Number((await info(src, 'stats')).total_commands_processed);
      await sleep(1000);
      const b = Number((await info(src, 'stats')).total_commands_processed);
      const r = await runMeasured(process.execPath, [CLI, 'cutover', '-s', source.url, '-t', target.url, '--status-url', `http://127.0.0.1:${port}/status`, '--max-pause', '5s', '--unpause', '--sample', String(opts.sample), '--json']);
      if (r.code !== 0) throw new Error(`cutover exited with ${r.code}: ${r.stderr.slice(-2000)}`);
      const p = JSON.parse(r.stdout);
      rows.push({ run: i + 1, writesPerSec: b - a, behindBytes: p.behindAtPauseBytes, catchUpMs: p.catchUpMs, verifyMs: p.verify.durationMs, compared: p.verify.compared, pausedMs: p.pausedMs, cliMs: r.wallMs });
    }
  } finally {
    await load.stop();
  }
  // Load stopped: once the sync applied everything, stop it and compare without its own keys.
  await waitFor(async () => {
    const st = await (await fetch(`http://127.0.0.1:${port}/status`)).json();
    return st.appliedOffset === Number((await info(src, 'replication')).master_repl_offset);
  }, 'the sync to catch up after the load', 60_000, 50);
  await rep.stop();
  const tgt = target.client();
  const own = await tgt.keys('__replicant*');
  if (own.length > 0) await tgt.del(...own);
  const equal = (await src.call('DEBUG', 'DIGEST')) === (await tgt.call('DEBUG', 'DIGEST'));
  printTable(`cutover under load (target rate ${opts.rate.toLocaleString('en-US')} writes/s, verify sample ${opts.sample})`, [
    ['run', 'run'], ['writes/s', 'writesPerSec'], ['behind (B)', 'behindBytes'], ['catch-up ms', 'catchUpMs'], ['verify ms', 'verifyMs'], ['keys compared', 'compared'], ['paused ms', 'pausedMs'], ['cutover process ms', 'cliMs'],
  ], rows);
  const summary = { medianPausedMs: median(rows.map((r) => r.pausedMs)), maxPausedMs: Math.max(...rows.map((r) => r.pausedMs)), medianWritesPerSec: median(rows.map((r) => r.writesPerSec)), digestMatch: equal };
  console.log(`\npaused: median ${summary.medianPausedMs} ms, max ${summary.maxPausedMs} ms (goal < 1000 ms at 100k writes/s); target equal to source afterwards: ${equal}`);
  const custom = opts.given.length > 0;
  console.log(`results: ${writeResults('cutover', { options: opts, loadavgBefore: loadBefore, runs: rows, summary }, { custom })}`);
  await source.stop();
  await target.stop();
}

await main();
