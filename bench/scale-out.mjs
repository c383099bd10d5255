/**
 * Scale-out: aggregate streaming throughput of one cluster source sync run by 1, 2 and 3
 * processes (same --name, the shards shared), on a 3-master cluster into a standalone target.
 *
 *   npm run bench:scale [-- --commands 600000 --runs 2]
 *
 * For each process count: the processes start and share the 3 shards (each streaming an empty
 * cluster); they are frozen (SIGSTOP), `redis-benchmark --cluster` writes `--commands` SETs into
 * the masters' replication streams, and they are thawed (SIGCONT): the time until every shard
 * has applied its master's offset is the relay capacity (commands / s), independent of how fast
 * the load generator writes. The lease TTL is long enough for the freeze. Median of --runs.
 * On a 2-core machine the processes, the three masters and the target share the same two cores:
 * more processes mostly show what one process costs, not a real scale-out (see bench/README.md).
 */
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, startRedis, sleep, waitFor } from './lib/redis.mjs';
import { CLI } from './lib/replicant.mjs';
import { median, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';
import { stopChild } from './lib/processes.mjs';

const opts = parseArgs(process.argv.slice(2), { commands: 600_000, runs: 2, processes: '1,2,3' });
const load = warnIfBusy();

async function startCluster() {
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    const bus = await freePort();
    nodes.push(await startRedis({ name: `cluster${i}`, args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus), '--repl-backlog-size', '256mb'] }));
    nodes[i].bus = bus;
  }
  const per = Math.floor(16384 / 3);
  for (let i = 0; i < 3; i++) {
    const c = nodes[i].client();
    await c.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1));
    await c.call('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(i === 2 ? 16383 : (i + 1) * per - 1));
  }
  for (const n of nodes.slice(1)) await nodes[0].client().call('CLUSTER', 'MEET', '127.0.0.1', String(n.port), String(n.bus));
  await waitFor(async () => {
    for (const n of nodes) if (!String(await n.client().call('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
    return true;
  }, 'the cluster to be ok', 30_000, 100);
  return nodes;
}

function startSync(seed, target, name) {
  return freePort().then((port) => {
    const child = spawn(process.execPath, [CLI, 'sync', '--no-progress', '--log-level', 'warn', '-s', seed, '-t', target, '--name', name, '--lease-ttl', '120s', '--existing', 'replace', '--metrics-port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    const status = async () => {
      const r = await fetch(`http://127.0.0.1:${port}/status`).catch(() => null);
      return r === null ? null : r.json();
    };
    return { child, status, err: () => err };
  });
}

async function offsets(nodes) {
  const out = new Map();
  for (const n of nodes) out.set(n.port, Number(/master_repl_offset:(\d+)/.exec(String(await n.client().info('replication')))[1]));
  return out;
}

async function shardsOf(procs) {
  return (await Promise.all(procs.map((p) => p.status()))).flatMap((s) => s?.shards ?? []);
}

async function runOnce(nodes, target, count, run) {
  const seed = `redis://127.0.0.1:${nodes[0].port}`;
  const name = `bench${count}x${run}`;
  await target.client().flushall();
  const procs = [];
  for (let i = 0; i < count; i++) procs.push(await startSync(seed, target.url, name));
  try {
    await waitFor(async () => {
      const s = await Promise.all(procs.map((p) => p.status()));
      return s.every((x) => x !== null && x.phase === 'streaming' && x.shards.length >= 1) && s.reduce((t, x) => t + x.shards.length, 0) === 3;
    }, 'the processes to share the shards', 60_000, 100);
    const held = (await Promise.all(procs.map((p) => p.status()))).map((s) => s.shards.length);
    for (const p of procs) p.child.kill('SIGSTOP');
    await new Promise((resolve, reject) => {
      const b = spawn('redis-benchmark', ['--cluster', '-h', '127.0.0.1', '-p', String(nodes[0].port), '-t', 'set', '-n', String(opts.commands), '-r', '1000000', '-d', '16', '-P', '32', '-c', '6', '-q'], { stdio: 'ignore' });
      b.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-benchmark exited with ${code}`))));
    });
    const want = await offsets(nodes);
    const t0 = performance.now();
    for (const p of procs) p.child.kill('SIGCONT');
    await waitFor(async () => {
      const shards = await shardsOf(procs);
      return shards.length === 3 && shards.every((s) => s.node !== null && (s.appliedOffset ?? 0) >= want.get(Number(s.node.split(':').pop())));
    }, 'every shard to apply the backlog', 300_000, 20);
    const seconds = (performance.now() - t0) / 1000;
    return { processes: count, shardsPerProcess: held.join('+'), seconds, opsPerSec: opts.commands / seconds };
  } finally {
    for (const p of procs) {
      p.child.kill('SIGCONT');
      await stopChild(p.child);
    }
  }
}

const nodes = await startCluster();
const target = await startRedis({ name: 'target' });
const rows = [];
try {
  for (const count of String(opts.processes).split(',').map(Number)) {
    const runs = [];
    for (let r = 0; r < opts.runs; r++) runs.push(await runOnce(nodes, target, count, r));
    const ops = median(runs.map((x) => x.opsPerSec));
    rows.push({ processes: count, shardsPerProcess: runs[0].shardsPerProcess, opsPerSec: ops, seconds: median(runs.map((x) => x.seconds)), runs: runs.map((x) => Math.round(x.opsPerSec)) });
    await sleep(200);
  }
} finally {
  await target.stop();
  for (const n of nodes) await n.stop();
}
const base = rows[0]?.opsPerSec ?? 1;
printTable(`aggregate streaming throughput, ${opts.commands.toLocaleString('en-US')} SETs over 3 shards (median of ${opts.runs})`, [
  ['processes', 'processes'],
  ['shards each', 'shardsPerProcess'],
  ['catch-up s', 'seconds'],
  ['commands/s', 'opsPerSec'],
  ['vs 1 process', (r) => r.opsPerSec / base],
], rows);
console.log(`results: ${writeResults('scale-out', { options: opts, loadAverageBefore: load, rows }, { custom: opts.given.length > 0 })}`);
process.exit(0);
