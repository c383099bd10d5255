/**
 * A/B of two builds on the hot paths, side by side in one run: this build (dist/) and another
 * one (--baseline path/to/dist/cli/main.js, e.g. a worktree of an earlier commit, built).
 *
 *   npm run bench:ab -- --baseline ../old/dist/cli/main.js [--keys 1000000] [--rounds 3] [--ops 400000]
 *
 * full sync   a source of --keys × 16 B strings (diskless); each side runs
 *             `sync --exit-after-full-sync --checkpoint none` into a flushed target; CPU of the
 *             Replicant process per key (µs), median of --rounds runs, sides alternating.
 * streaming   a source with no keys; each side streams with the default target checkpoint while
 *             redis-benchmark sends --ops SET/INCR/LPUSH/HSET (pipelined); CPU of the Replicant
 *             process per source command (µs), median of --rounds runs, sides alternating.
 * CPU time rather than wall time: it measures the code, and moves less when the machine is busy.
 */
import { existsSync } from 'node:fs';
import { populateSmallKeys } from './lib/datasets.mjs';
import { procCpuMs, spawnOwned, exited } from './lib/processes.mjs';
import { info, sleep, startRedis, waitFor } from './lib/redis.mjs';
import { CLI, replicantFullSync, startReplicant } from './lib/replicant.mjs';
import { median, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';

const opts = parseArgs(process.argv.slice(2), { baseline: '', keys: 1_000_000, rounds: 3, ops: 400_000 });
if (opts.baseline === '' || !existsSync(opts.baseline)) {
  console.error('--baseline: the path of the other build\'s dist/cli/main.js (build it first)');
  process.exit(2);
}
const SIDES = [
  { side: 'this build', cli: CLI },
  { side: 'baseline', cli: opts.baseline },
];
const load = warnIfBusy();

async function fullSyncRounds() {
  const source = await startRedis({ name: 'ab-source', args: ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'] });
  const target = await startRedis({ name: 'ab-target' });
  const runs = { 'this build': [], baseline: [] };
  try {
    await populateSmallKeys(source.client(), opts.keys, 16);
    const t = target.client();
    for (let round = 0; round < opts.rounds; round++) {
      for (const s of round % 2 === 0 ? SIDES : [...SIDES].reverse()) {
        await t.flushall();
        const r = await replicantFullSync(source.url, target.url, [], s.cli);
        runs[s.side].push((r.cpuMs * 1000) / opts.keys);
        await waitFor(async () => (await info(source.client(), 'replication')).connected_slaves === '0', 'the source to be idle', 30_000, 20);
      }
    }
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
  return runs;
}

async function streamingRounds() {
  const runs = { 'this build': [], baseline: [] };
  for (let round = 0; round < opts.rounds; round++) {
    for (const s of round % 2 === 0 ? SIDES : [...SIDES].reverse()) {
      const source = await startRedis({ name: 'ab-live-source', args: ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'] });
      const target = await startRedis({ name: 'ab-live-target' });
      let rep = null;
      try {
        rep = startReplicant(source.url, target.url, { checkpoint: 'target', cli: s.cli });
        await rep.waitPhase('streaming');
        const src = source.client();
        const before = { cmds: Number((await info(src, 'stats')).total_commands_processed), cpu: procCpuMs(rep.child.pid) };
        const bench = spawnOwned('redis-benchmark', ['-h', '127.0.0.1', '-p', String(source.port), '-t', 'set,incr,lpush,hset', '-P', '16', '-c', '20', '-n', String(Math.round(opts.ops / 4)), '-r', '100000', '-q']);
        await exited(bench);
        const sourceOffset = Number((await info(src, 'replication')).master_repl_offset);
        // Caught up: the replica Replicant poses as has ACKed the source's offset.
        await waitFor(async () => {
          const r = await info(src, 'replication');
          return Object.entries(r).some(([k, v]) => /^slave\d+$/.test(k) && Number(/offset=(\d+)/.exec(v)?.[1]) >= sourceOffset);
        }, 'Replicant to catch up', 120_000, 20);
        const after = { cmds: Number((await info(src, 'stats')).total_commands_processed), cpu: procCpuMs(rep.child.pid) };
        runs[s.side].push(((after.cpu - before.cpu) * 1000) / Math.max(1, after.cmds - before.cmds));
      } finally {
        if (rep !== null) await rep.stop();
        await Promise.all([source.stop(), target.stop()]);
      }
      await sleep(200);
    }
  }
  return runs;
}

const full = await fullSyncRounds();
const live = await streamingRounds();
const row = (what, runs) => {
  const a = median(runs['this build']);
  const b = median(runs.baseline);
  return { measure: what, thisBuild: a, baseline: b, ratio: a / b, runsThis: runs['this build'], runsBaseline: runs.baseline };
};
const rows = [row(`full sync, CPU µs per key (${opts.keys} × 16 B)`, full), row('streaming, CPU µs per source command (target checkpoint)', live)];
printTable(`A/B: this build vs ${opts.baseline} (medians of ${opts.rounds}, sides alternating)`, [
  ['measure', 'measure'],
  ['this build', 'thisBuild'],
  ['baseline', 'baseline'],
  ['ratio', 'ratio'],
], rows);
writeResults('ab', { baseline: opts.baseline, keys: opts.keys, ops: opts.ops, rounds: opts.rounds, loadAverageAtStart: load, rows });
