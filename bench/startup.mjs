/**
 * CLI start-up: time from spawning `node dist/cli/main.js ...` to its first line of output.
 *
 *   npm run bench:startup [-- --runs 10] [--baseline /path/to/other/dist/cli/main.js]
 *
 * Scenarios (each run is a fresh process; figures are medians of --runs):
 *   node   `node -e "console.log(1)"`: the floor, Node's own start-up on this machine right now
 *   help   `--help`: first stdout line
 *   rdb    `rdb dump.rdb --format jsonl` on a small RDB the source below SAVEd: first stdout line
 *   sync   `sync --source redis://… --target redis://… --checkpoint none --existing replace` against two real
 *          redis-servers on free loopback ports: first log line on stderr (JSON, as stderr is a
 *          pipe), then the process is stopped with SIGTERM
 * Goal: `sync` logs its first line within 80 ms of process start.
 *
 * With --baseline, the other build runs the same scenarios, interleaved run by run with this one
 * (so a noisy moment hits both alike), and the table shows both side by side. Node's own start-up
 * varies with the machine's load, so the table also gives each median minus the `node` median.
 * A run with --runs writes startup-<date>-custom.json.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { exited, spawnOwned, stopChild } from './lib/processes.mjs';
import { startRedis } from './lib/redis.mjs';
import { ROOT_DIR, median, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';

const opts = parseArgs(process.argv.slice(2), { runs: 10, baseline: '' });
const GOAL_MS = 80;
const builds = [{ name: 'this build', cli: join(ROOT_DIR, 'dist', 'cli', 'main.js') }];
if (opts.baseline !== '') builds.push({ name: 'baseline', cli: opts.baseline });

/**
 * Spawn the CLI and resolve with ms until its first complete line on `stream` (stdout or stderr)
 * and that line; `stop` kills it then (sync runs until stopped), else it is awaited to its exit.
 */
async function firstLine(cli, args, stream, stop) {
  const t0 = process.hrtime.bigint();
  const child = spawnOwned(process.execPath, cli === null ? args : [cli, ...args]);
  let other = '';
  const first = await new Promise((resolve, reject) => {
    let text = '';
    const onData = (d) => {
      text += d.toString();
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      child[stream].off('data', onData);
      child[stream].resume(); // keep draining: a full pipe would block the child
      resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, line: text.slice(0, nl) });
    };
    child[stream].on('data', onData);
    const otherStream = stream === 'stdout' ? 'stderr' : 'stdout';
    child[otherStream].on('data', (d) => {
      other = (other + d.toString()).slice(-4000);
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code}) before printing a line:\n${other}`)));
  });
  if (stop) await stopChild(child);
  else await exited(child);
  return first;
}

/** A log line (JSON) by its message, other lines as they are. */
function shown(line) {
  try {
    const msg = JSON.parse(line).msg;
    if (typeof msg === 'string') return `log: ${msg}`;
  } catch {
    // not JSON
  }
  return line.slice(0, 100);
}

async function main() {
  const loadBefore = warnIfBusy();
  const source = await startRedis({ name: 'startup-source' });
  const target = await startRedis({ name: 'startup-target' });
  try {
    // A few keys, so `rdb` has records to print and `sync` a snapshot to copy.
    const c = source.client();
    await c.call('DEBUG', 'POPULATE', '1000', 'key', '16');
    await c.save();
    const rdbFile = join(source.dir, 'dump.rdb');
    const scenarios = [
      { name: 'node', args: ['-e', 'console.log(1)'], stream: 'stdout', stop: false, floor: true },
      { name: 'help', args: ['--help'], stream: 'stdout', stop: false },
      { name: 'rdb', args: ['rdb', rdbFile, '--format', 'jsonl'], stream: 'stdout', stop: false },
      { name: 'sync', args: ['sync', '--source', source.url, '--target', target.url, '--checkpoint', 'none', '--existing', 'replace'], stream: 'stderr', stop: true },
    ];
    // The floor does not depend on the build: measured once per round.
    const buildsOf = (s) => (s.floor ? [{ name: '-', cli: null }] : builds);
    const samples = new Map();
    for (const s of scenarios) for (const b of buildsOf(s)) samples.set(`${s.name}|${b.name}`, { ms: [], line: '' });
    // One warm-up per build and scenario (disk cache), not counted.
    for (const s of scenarios) for (const b of buildsOf(s)) await firstLine(b.cli, s.args, s.stream, s.stop);
    for (let i = 0; i < opts.runs; i++) {
      for (const s of scenarios) {
        for (const b of buildsOf(s)) {
          const r = await firstLine(b.cli, s.args, s.stream, s.stop);
          const entry = samples.get(`${s.name}|${b.name}`);
          entry.ms.push(r.ms);
          entry.line = shown(r.line);
        }
      }
    }
    const rows = [];
    for (const s of scenarios) {
      for (const b of buildsOf(s)) {
        const e = samples.get(`${s.name}|${b.name}`);
        rows.push({ scenario: s.name, build: b.name, cli: b.cli, medianMs: median(e.ms), minMs: Math.min(...e.ms), maxMs: Math.max(...e.ms), samplesMs: e.ms, firstLine: e.line });
      }
    }
    // Node's own start-up moves with the machine's load: what each command adds to it is the comparable figure.
    const floor = rows.find((r) => r.scenario === 'node').medianMs;
    for (const r of rows) r.overNodeMs = r.scenario === 'node' ? null : r.medianMs - floor;
    printTable(`time from spawn to the first line of output, median of ${opts.runs} runs (goal for sync: ≤ ${GOAL_MS} ms)`, [
      ['scenario', 'scenario'],
      ['build', 'build'],
      ['median ms', 'medianMs'],
      ['min ms', 'minMs'],
      ['max ms', 'maxMs'],
      ['median − node', 'overNodeMs'],
      ['first line', (r) => r.firstLine.slice(0, 60)],
    ], rows);
    const sync = rows.find((r) => r.scenario === 'sync' && r.build === 'this build');
    console.log(`\ngoal: sync's first log line within ${GOAL_MS} ms: ${sync.medianMs <= GOAL_MS ? 'met' : 'not met'} (${Math.round(sync.medianMs)} ms)`);
    const out = writeResults('startup', { runs: opts.runs, loadavgBefore: loadBefore, loadavgAfter: loadavg()[0], goalMs: GOAL_MS, rows }, { custom: opts.given.includes('runs') });
    console.log(`results: ${out}`);
  } finally {
    await source.stop();
    await target.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
