/**
 * Micro-benchmark of the per-command key lookups on the hot paths: the partial-sync stream filter
 * (by name, with a rename, by type), the cluster migration guard, and the cluster writer's slot
 * routing, over synthetic replication-stream commands. Run against dist/ (`npm run build` first):
 *   node bench/key-table.mjs [--commands 3000000] [--rounds 5] [--dist dist] [--no-write]
 * Prints CPU ns per command (process user+system time, median of the rounds: steadier than wall
 * time on a shared machine) and GC runs per million commands (an allocation proxy), and writes
 * bench/results/key-table-<date>.json.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT_DIR, median, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';

// --dist: another build to compare with (e.g. a copy of dist/ from before a change).
const opts = parseArgs(process.argv.slice(2), { commands: 3_000_000, rounds: 5, dist: 'dist', noWrite: false });
const dist = (p) => import(pathToFileURL(resolve(ROOT_DIR, opts.dist, p)).href);
const { encodeCommand } = await dist('resp/encode.js');
const { ReplicationStreamParser } = await dist('resp/stream-parser.js');
const { PartialScope } = await dist('sync/relay/selection.js');
const { StreamFilter } = await dist('sync/relay/by-name.js');
const { MigrationGuard } = await dist('sync/cluster/migration-guard.js');
const { routeOf } = await dist('writer/cluster/routing.js');
const BATCH = 200_000;

/** A stream mix: mostly single-key writes, some multi-key and store forms (keys a:* kept, b:* dropped). */
function mix(i) {
  const k = (p) => `${p}:${i % 1000}`;
  switch (i % 20) {
    case 0: return ['MSET', k('a'), 'v', k('b'), 'v'];
    case 1: return ['DEL', k('a'), k('b'), k('a') + 'x'];
    case 2: return ['ZUNIONSTORE', k('a'), '2', k('a') + 'y', k('a') + 'z'];
    case 3: return ['EVALSHA', 'abcdef', '1', k('a')];
    case 4: return ['LMOVE', k('a'), k('a') + 'q', 'LEFT', 'RIGHT'];
    case 5: return ['SORT', k('a'), 'LIMIT', '0', '10', 'STORE', k('a') + 's'];
    case 6: return ['HSET', k('b'), 'f', 'v'];
    case 7: return ['XADD', k('a'), '*', 'f', 'v'];
    case 8: return ['INCR', k('a')];
    case 9: return ['SUNIONSTORE', k('a'), k('a') + '1', k('a') + '2'];
    default: return ['SET', k(i % 2 ? 'a' : 'b'), 'value'];
  }
}

function batch(start) {
  const parts = [];
  for (let i = start; i < start + BATCH; i++) parts.push(encodeCommand(mix(i)));
  return Buffer.concat(parts);
}
const wire = [batch(0), batch(BATCH)];
const argArrays = Array.from({ length: BATCH }, (_, i) => mix(i).map((a) => Buffer.from(a)));

const noop = () => {};
const scenarios = {
  'filter: keys a:*': () => {
    const f = new StreamFilter(new PartialScope({ keys: ['a:*'] }), { onConflict: noop });
    return (c) => f.apply(c, 0);
  },
  'filter: keys a:* + rename': () => {
    const f = new StreamFilter(new PartialScope({ keys: ['a:*'], renamePrefix: ['a:', 'n:'] }), { onConflict: noop });
    return (c) => f.apply(c, 0);
  },
  'filter: types string,zset': () => {
    const f = new StreamFilter(new PartialScope({ types: ['string', 'zset', 'list', 'stream'] }), { onConflict: noop });
    return (c) => f.apply(c, 0);
  },
  'migration guard (1000 tracked)': () => {
    const g = new MigrationGuard();
    for (let i = 0; i < 1000; i++) g.noteSnapshotKey(Buffer.from(`c:${i}`), 'B');
    return (c) => g.apply(c, 'A');
  },
};

/** CPU time (user + system) since `t0`, in ns. */
function cpuNs(t0) {
  const d = process.cpuUsage(t0);
  return (d.user + d.system) * 1000;
}

let gcs = 0;
new PerformanceObserver((l) => (gcs += l.getEntries().length)).observe({ entryTypes: ['gc'] });

const load = warnIfBusy();
const rows = [];
const rounds = Math.max(1, Math.round(opts.commands / BATCH));
for (const [name, make] of Object.entries(scenarios)) {
  const run = make();
  const perRound = [];
  let gcTotal = 0;
  for (let r = 0; r < opts.rounds; r++) {
    let ns = 0;
    for (let b = 0; b < rounds; b++) {
      // Fresh StreamCommands each batch (their lazy argument views are cut on first use), not timed.
      const cmds = new ReplicationStreamParser(0).push(wire[b % 2]);
      const g0 = gcs;
      const t0 = process.cpuUsage();
      for (let i = 0; i < cmds.length; i++) run(cmds[i]);
      ns += cpuNs(t0);
      await new Promise((res) => setImmediate(res));
      gcTotal += gcs - g0;
    }
    perRound.push(ns / (rounds * BATCH));
  }
  rows.push({ scenario: name, nsPerCommand: median(perRound), gcPerMillion: (gcTotal / (opts.rounds * rounds * BATCH)) * 1e6 });
}
{
  const perRound = [];
  let gcTotal = 0;
  for (let r = 0; r < opts.rounds; r++) {
    const g0 = gcs;
    const t0 = process.cpuUsage();
    for (let b = 0; b < rounds; b++) for (let i = 0; i < argArrays.length; i++) routeOf(argArrays[i]);
    perRound.push(cpuNs(t0) / (rounds * BATCH));
    await new Promise((res) => setImmediate(res));
    gcTotal += gcs - g0;
  }
  rows.push({ scenario: 'cluster routeOf (Buffer args)', nsPerCommand: median(perRound), gcPerMillion: (gcTotal / (opts.rounds * rounds * BATCH)) * 1e6 });
}

printTable(`per-command key lookups, ${rounds * BATCH} commands x ${opts.rounds} rounds (median)`, [['scenario', 'scenario'], ['CPU ns/command', 'nsPerCommand'], ['GC runs / M commands', 'gcPerMillion']], rows);
if (!opts.noWrite) console.log(`\n${writeResults('key-table', { commands: rounds * BATCH, rounds: opts.rounds, loadavg1m: load, dist: opts.dist, rows }, { custom: opts.given.length > 0 })}`);
