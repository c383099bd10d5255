/**
 * Full sync and live streaming: Replicant beside a native `REPLICAOF` of the same source,
 * in the same run.
 *
 *   npm run bench:sync [-- --only a,b,c] [--modes disk,diskless] [--live-seconds 10]
 *                         [--loads heavy,light] [--checkpoints none,file,target] [--no-verify]
 *                         [--filters none,all,key,type] [--tls | --transports tcp,tls]
 *
 * --tls: every server (source, native replica, Replicant's target) serves TLS only
 *     (`--port 0 --tls-port P`, `tls-replication yes` so the native replica replicates over TLS,
 *     `tls-auth-clients no`), with a throw-away CA + certificate for 127.0.0.1 made by openssl at
 *     the start of the run; Replicant runs with rediss:// URLs and `--tls-ca`, redis-benchmark and
 *     the lag probe connect with TLS too. Rows are labelled "disk tls" / "diskless tls" (full sync)
 *     and link "tls" (live). --transports tcp,tls runs both, one after the other for each dataset and
 *     load, in the same tables and JSON. Runs that include TLS write full-sync-tls-<date>-custom.json.
 *
 * (a) 1,000,000 keys × 16 B; (b) ≈ 200k keys of every type, some large (≈ 160 MB RDB).
 *     For each source mode (disk-based, diskless):
 *       native     a fresh redis-server: time from REPLICAOF to master_link_status:up with
 *                  the replica's key count equal to the source's
 *       replicant  `replicant sync --exit-after-full-sync --checkpoint none` into a fresh
 *                  redis-server: time from process start to exit (snapshot applied), under
 *                  /usr/bin/time -v for CPU and peak RSS
 *     Both copies are then checked with DEBUG DIGEST against the source (not timed).
 * (c) live: a source with 100k keys, one replica (native, or Replicant with each checkpoint
 *     kind) attached and streaming, then redis-benchmark `-t set,incr,lpush,hset -r 100000`
 *     at each load level for --live-seconds. Lag is measured end to end with probe writes
 *     (see src/bench/probe.ts); ops/s from INFO total_commands_processed deltas; afterwards the
 *     load stops, the replica must catch up (drain time) and match the source's DEBUG DIGEST.
 *     --filters adds partial-sync rows for each Replicant replica: `all` = `--exclude-key nomatch:*`
 *     (every command goes through the filter, every key is kept: the filter's own cost), `key` =
 *     `--key key:*` (only the SET keys of redis-benchmark are kept: a quarter of the load), `type` =
 *     `--type string,hash` (every command through both stages; LPUSH, a quarter of the load, dropped).
 */
import { populateSmallKeys, writeMixedDataset } from './lib/datasets.mjs';
import { LagProbe } from './lib/probe.mjs';
import { join } from 'node:path';
import { procCpuMs, spawnOwned, stopChild, tempDir } from './lib/processes.mjs';
import { digest, info, sleep, startRedis, totalKeys, waitFor } from './lib/redis.mjs';
import { replicantFullSync, startReplicant } from './lib/replicant.mjs';
import { MB, median, percentile, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';
import { makeTlsFiles } from './lib/tls.mjs';

const opts = parseArgs(process.argv.slice(2), {
  only: 'a,b,c',
  modes: 'disk,diskless',
  liveSeconds: 10,
  loads: 'heavy,light',
  checkpoints: 'none,target',
  filters: 'none',
  noVerify: false,
  tls: false,
  transports: 'tcp',
});
if (opts.tls && opts.given.includes('transports')) {
  console.error('give --tls (TLS rows only) or --transports tcp,tls, not both');
  process.exit(2);
}
const TRANSPORTS = opts.tls ? ['tls'] : opts.transports.split(',').map((s) => s.trim()).filter(Boolean);
for (const t of TRANSPORTS) {
  if (t !== 'tcp' && t !== 'tls') {
    console.error(`--transports: unknown transport ${t} (tcp, tls)`);
    process.exit(2);
  }
}
// One throw-away CA + server certificate for the whole run (temp dir removed at exit).
const TLS_FILES = TRANSPORTS.includes('tls') ? makeTlsFiles() : null;
/** The `tls` option of startRedis for a transport. */
const serverTls = (transport) => (transport === 'tls' ? TLS_FILES : null);
/** Replicant's arguments for a source/target that serves TLS (its URLs are rediss:// already). */
const replicantTlsArgs = (server) => (server.tls ? ['--tls-ca', server.tls.ca] : []);
/** redis-cli / redis-benchmark arguments for a server that serves TLS. */
const cliTlsArgs = (server) => (server.tls ? ['--tls', '--cacert', server.tls.ca] : []);
// (`bench:probe` is the lag probe's key: kept, so lag is measured under every filter.)
const FILTERS = { none: [], all: ['--exclude-key', 'nomatch:*'], key: ['--key', 'key:*', '--key', 'bench:probe'], type: ['--type', 'string,hash'] };
const verify = !opts.noVerify;
for (const c of opts.checkpoints.split(',')) {
  if (!['none', 'file', 'target'].includes(c.trim())) {
    console.error(`--checkpoints: unknown checkpoint ${c} (none, file, target)`);
    process.exit(2);
  }
}
const LOADS = {
  // ≈ 0.75 M ops/s into an idle source on this machine; one core is redis-benchmark's.
  heavy: ['-P', '16', '-c', '50'],
  // ≈ 0.15 M ops/s: no pipelining, 20 clients.
  light: ['-P', '1', '-c', '20'],
};
const SYNCS_KEY = '__replicant:syncs';
const RESERVED = '__replicant';

const SOURCE_ARGS = ['--repl-diskless-sync-delay', '0', '--repl-diskless-sync-max-replicas', '0'];

async function setMode(src, mode) {
  await src.config('SET', 'repl-diskless-sync', mode === 'diskless' ? 'yes' : 'no');
}

/** No replica attached and no BGSAVE running: the next sync starts from scratch. */
async function sourceIdle(src) {
  await waitFor(async () => {
    const p = await info(src, 'persistence');
    const r = await info(src, 'replication');
    return p.rdb_bgsave_in_progress === '0' && r.connected_slaves === '0';
  }, 'the source to be idle (no replica, no BGSAVE)', 60_000, 20);
}

/** CPU time a redis-server has used so far (user + sys), in ms. */
async function serverCpu(c) {
  const i = await info(c, 'cpu');
  return Math.round((Number(i.used_cpu_user) + Number(i.used_cpu_sys)) * 1000);
}

async function nativeFullSync(source, sourceKeys, sourceDigest) {
  const replica = await startRedis({ name: 'native-replica', tls: source.tls });
  try {
    const c = replica.client();
    await c.ping();
    const t0 = performance.now();
    await c.replicaof('127.0.0.1', String(source.port));
    await waitFor(async () => {
      const r = await info(c, 'replication');
      return r.master_link_status === 'up' && r.master_sync_in_progress === '0' && (await totalKeys(c)) === sourceKeys;
    }, 'the native replica to finish its full sync', 300_000, 5);
    const ms = performance.now() - t0;
    const peak = Number((await info(c, 'memory')).used_memory_peak) / MB;
    const serverCpuMs = await serverCpu(c);
    const match = verify ? (await digest(c)) === sourceDigest : null;
    return { ms, usedMemoryPeakMB: peak, serverCpuMs, digestMatch: match };
  } finally {
    await replica.stop();
  }
}

async function replicantRun(source, sourceKeys, sourceDigest) {
  const target = await startRedis({ name: 'replicant-target', tls: source.tls });
  try {
    const r = await replicantFullSync(source.url, target.url, replicantTlsArgs(source));
    const c = target.client();
    const serverCpuMs = await serverCpu(c);
    // The registry of syncs into this target (issue 7 item 1) is Replicant's, not the source's.
    await c.del(SYNCS_KEY);
    const keys = await totalKeys(c);
    const match = verify ? (await digest(c)) === sourceDigest : null;
    if (keys !== sourceKeys) throw new Error(`replicant's target holds ${keys} keys, the source ${sourceKeys}`);
    return {
      ms: r.wallMs,
      internalMs: r.fullSync?.ms ?? null,
      rdbMB: r.fullSync?.rdbBytes ? r.fullSync.rdbBytes / MB : null,
      writeMode: r.writeMode,
      cpuMs: r.cpuMs,
      serverCpuMs,
      peakRssMB: r.maxRssKb ? r.maxRssKb / 1024 : null,
      digestMatch: match,
    };
  } finally {
    await target.stop();
  }
}

async function fullSyncScenario(label, what, fill, transport) {
  const modes = opts.modes.split(',').map((s) => s.trim()).filter(Boolean);
  const source = await startRedis({ name: `source-${label}`, args: SOURCE_ARGS, tls: serverTls(transport) });
  const tls = transport === 'tls';
  const rows = [];
  try {
    const src = source.client();
    process.stdout.write(`(${label}${tls ? ', tls' : ''}) filling the source: ${what} ... `);
    const t0 = Date.now();
    await fill(src, source);
    const sourceKeys = await totalKeys(src);
    const sourceDigest = verify ? await digest(src) : null;
    console.log(`${sourceKeys.toLocaleString('en-US')} keys, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const mode of modes) {
      await setMode(src, mode);
      await sourceIdle(src);
      const native = await nativeFullSync(source, sourceKeys, sourceDigest);
      await sourceIdle(src);
      const rep = await replicantRun(source, sourceKeys, sourceDigest);
      await sourceIdle(src);
      const base = { dataset: label, mode, tls, keys: sourceKeys, rdbMB: rep.rdbMB };
      rows.push({ ...base, tool: 'native REPLICAOF', ms: native.ms, ratio: 1, serverCpuMs: native.serverCpuMs, peakMB: native.usedMemoryPeakMB, digestMatch: native.digestMatch });
      rows.push({ ...base, tool: `replicant (${rep.writeMode ?? '?'})`, ms: rep.ms, internalMs: rep.internalMs, cpuMs: rep.cpuMs, serverCpuMs: rep.serverCpuMs, ratio: rep.ms / native.ms, peakMB: rep.peakRssMB, digestMatch: rep.digestMatch });
      console.log(`  ${mode}${tls ? ' tls' : ''}: native ${Math.round(native.ms)} ms, replicant ${Math.round(rep.ms)} ms (${(rep.ms / native.ms).toFixed(2)}×)`);
    }
  } finally {
    await source.stop();
  }
  return rows;
}

// ---------------------------------------------------------------- live phase

async function attach(kind, checkpoint, source, filter) {
  const replica = await startRedis({ name: `live-${kind}`, tls: source.tls });
  const c = replica.client();
  if (kind === 'native') {
    await c.replicaof('127.0.0.1', String(source.port));
    await waitFor(async () => {
      const r = await info(c, 'replication');
      return r.master_link_status === 'up' && r.master_sync_in_progress === '0';
    }, 'the native replica link', 60_000, 10);
    return { replica, c, rep: null };
  }
  const spec = checkpoint === 'file' ? `file:${join(tempDir('replicant-bench-cp-'), 'checkpoint.json')}` : checkpoint;
  const rep = startReplicant(source.url, replica.url, { checkpoint: spec, extraArgs: [...FILTERS[filter], ...replicantTlsArgs(source)] });
  await rep.waitPhase('streaming');
  return { replica, c, rep };
}

function loadRun(source, load) {
  return spawnOwned('redis-benchmark', ['-h', '127.0.0.1', '-p', String(source.port), ...cliTlsArgs(source), '-t', 'set,incr,lpush,hset', ...LOADS[load], '-n', '2000000', '-r', '100000', '-l', '-q']);
}

async function counters(src, dst, probe, rep) {
  const [a, b, cpu] = await Promise.all([info(src, 'stats'), info(dst, 'stats'), serverCpu(dst)]);
  return {
    t: performance.now(),
    src: Number(a.total_commands_processed),
    dst: Number(b.total_commands_processed),
    dstCpuMs: cpu,
    repCpuMs: rep ? procCpuMs(rep.child.pid) : null,
    polls: probe.polls,
  };
}

async function liveRun(kind, checkpoint, load, filter = 'none', transport = 'tcp') {
  const source = await startRedis({ name: 'live-source', args: [...SOURCE_ARGS, '--repl-diskless-sync', 'yes'], tls: serverTls(transport) });
  let att = null;
  let bench = null;
  let probe = null;
  try {
    const src = source.client();
    await populateSmallKeys(src, 100_000, 16);
    att = await attach(kind, checkpoint, source, filter);
    probe = new LagProbe(source.clientOptions(), att.replica.clientOptions(), { everyMs: 10 });
    probe.start();
    await sleep(1000);
    const idleLags = probe.lagsBetween(performance.now() - 900, performance.now() - 100);
    const before = await counters(src, att.c, probe, att.rep);
    bench = loadRun(source, load);
    await sleep(opts.liveSeconds * 1000);
    const after = await counters(src, att.c, probe, att.rep);
    if (bench.exitCode !== null) throw new Error(`redis-benchmark exited early (${bench.exitCode})`);
    await stopChild(bench);
    const drainMs = await probe.drain(60_000);
    const lags = probe.lagsBetween(before.t, after.t);
    const secs = (after.t - before.t) / 1000;
    const row = {
      replica: kind === 'native' ? 'native replica' : `replicant (checkpoint ${checkpoint}${filter === 'none' ? '' : `, filter ${filter}`})`,
      load,
      link: transport,
      seconds: secs,
      sourceOps: (after.src - before.src) / secs,
      // The replica's own counter, minus the probe's GET polls (MULTI/EXEC/checkpoint writes count too).
      replicaOps: (after.dst - before.dst - (after.polls - before.polls)) / secs,
      // CPU per source command: what each replica costs, independent of how busy the machine is.
      serverCpuUsPerOp: ((after.dstCpuMs - before.dstCpuMs) * 1000) / Math.max(1, after.src - before.src),
      replicantCpuUsPerOp: att.rep ? ((after.repCpuMs - before.repCpuMs) * 1000) / Math.max(1, after.src - before.src) : null,
      replicantCpuShare: att.rep ? (after.repCpuMs - before.repCpuMs) / (after.t - before.t) : null,
      probes: lags.length,
      idleP50: percentile(idleLags, 50),
      lagP50: percentile(lags, 50),
      lagP99: percentile(lags, 99),
      lagMax: Math.max(...lags),
      drainMs,
      // Max lag per 250 ms of the window (JSON only): shows whether the tail is one stall or steady.
      lagTimeline: probe.timeline(before.t, after.t, 250),
    };
    if (att.rep) {
      const prog = att.rep.progress.filter((p) => p.t >= before.t && p.t <= after.t);
      const cmds = prog.filter((p) => typeof p.commands === 'number');
      row.replicantOps = cmds.length > 1 ? ((cmds.at(-1).commands - cmds[0].commands) * 1000) / (cmds.at(-1).t - cmds[0].t) : null;
      const selfLag = prog.map((p) => p.lagMs).filter((v) => typeof v === 'number');
      row.selfLagP99 = percentile(selfLag, 99);
      row.selfLagBytesMax = Math.max(0, ...prog.map((p) => p.lagBytes).filter((v) => typeof v === 'number'));
      row.peakRssMB = att.rep.peakRssKb() / 1024;
      row.exitCode = await att.rep.stop();
      if (row.exitCode !== 0) {
        console.log(`\nWARNING: replicant exited with ${row.exitCode} on SIGTERM (expected 0):\n${att.rep.tail.slice(-2000)}`);
        process.exitCode = 1;
      }
    }
    // A filter that drops keys leaves a target that is not a copy of the whole source.
    if (verify && drainMs !== null && filter !== 'key' && filter !== 'type') {
      if (kind !== 'native') {
        // Replicant's own keys (checkpoint, lease, registry) are not part of the comparison.
        const own = await att.c.keys(`${RESERVED}*`);
        if (own.length > 0) await att.c.del(...own);
      }
      row.digestMatch = (await digest(att.c)) === (await digest(src));
    }
    return row;
  } finally {
    if (bench) await stopChild(bench);
    if (probe) await probe.close();
    if (att?.rep) await att.rep.stop();
    if (att) await att.replica.stop();
    await source.stop();
  }
}

async function liveScenario() {
  const rows = [];
  const loads = opts.loads.split(',').map((s) => s.trim()).filter(Boolean);
  const cps = opts.checkpoints.split(',').map((s) => s.trim()).filter(Boolean);
  for (const load of loads) {
    if (!LOADS[load]) throw new Error(`--loads: unknown load ${load} (${Object.keys(LOADS).join(', ')})`);
    const filters = opts.filters.split(',').map((s) => s.trim()).filter(Boolean);
    for (const f of filters) if (!FILTERS[f]) throw new Error(`--filters: unknown filter ${f} (${Object.keys(FILTERS).join(', ')})`);
    for (const transport of TRANSPORTS) {
      for (const [kind, cp, f] of [['native', null, 'none'], ...cps.flatMap((c) => filters.map((f) => ['replicant', c, f]))]) {
        process.stdout.write(`(c) live, ${load} load, ${transport}, ${kind}${cp ? ` checkpoint ${cp}` : ''}${f === 'none' ? '' : ` filter ${f}`} ... `);
        const r = await liveRun(kind, cp, load, f, transport);
        console.log(`lag p99 ${r.lagP99 === Infinity ? 'unseen' : `${Math.round(r.lagP99)} ms`}, drain ${r.drainMs === null ? '> 60 s' : `${Math.round(r.drainMs)} ms`}`);
        rows.push(r);
      }
    }
  }
  return rows;
}

async function main() {
  const loadBefore = warnIfBusy();
  const only = new Set(opts.only.split(',').map((s) => s.trim()));
  const fullRows = [];
  for (const t of only.has('a') ? TRANSPORTS : []) fullRows.push(...(await fullSyncScenario('a', '1M keys × 16 B', (c) => populateSmallKeys(c, 1_000_000, 16), t)));
  for (const t of only.has('b') ? TRANSPORTS : []) fullRows.push(...(await fullSyncScenario('b', '≈200k mixed keys of every type', (c, server) => writeMixedDataset(c, { cliArgs: cliTlsArgs(server) }), t)));
  if (fullRows.length > 0) {
    printTable('full sync to a fresh server (ms: native = REPLICAOF → link up + same key count; replicant = process start → exit)', [
      ['dataset', 'dataset'],
      ['source', (r) => `${r.mode}${r.tls ? ' tls' : ''}`],
      ['tool', 'tool'],
      ['keys', 'keys'],
      ['RDB MB', 'rdbMB'],
      ['ms', 'ms'],
      ['× native', 'ratio'],
      ['internal ms', 'internalMs'],
      ['replicant cpu ms', 'cpuMs'],
      ['server cpu ms', 'serverCpuMs'],
      ['peak MB', 'peakMB'],
      ['digest ok', (r) => (r.digestMatch === null ? 'n/a' : r.digestMatch ? 'yes' : 'NO')],
    ], fullRows);
    console.log('internal ms: Replicant\'s own "full sync applied" figure (first RDB byte → snapshot applied; a disk-based source\'s BGSAVE comes before).');
    console.log('server cpu ms: CPU used by the receiving redis-server (native replica loading the RDB; Replicant\'s target applying commands).');
    console.log('peak MB: Replicant = peak RSS of its process; native = the replica\'s used_memory_peak (dataset included).');
    console.log('goal: Replicant within 1.5× of native.');
  }
  let liveRows = [];
  if (only.has('c')) {
    liveRows = await liveScenario();
    const title = `live streaming under redis-benchmark -t set,incr,lpush,hset -r 100000, ${opts.liveSeconds} s per row`;
    printTable(`${title}: throughput and CPU`, [
      ['replica', 'replica'],
      ['load', 'load'],
      ['link', 'link'],
      ['source ops/s', 'sourceOps'],
      ['replica ops/s', 'replicaOps'],
      ['replicant ops/s', 'replicantOps'],
      ['replicant cpu µs/op', 'replicantCpuUsPerOp'],
      ['replicant cores', 'replicantCpuShare'],
      ['server cpu µs/op', 'serverCpuUsPerOp'],
      ['replicant peak RSS MB', 'peakRssMB'],
    ], liveRows);
    printTable(`${title}: end-to-end lag (ms)`, [
      ['replica', 'replica'],
      ['load', 'load'],
      ['link', 'link'],
      ['idle p50', 'idleP50'],
      ['p50', 'lagP50'],
      ['p99', 'lagP99'],
      ['max', 'lagMax'],
      ['drain', 'drainMs'],
      ['self-reported p99', 'selfLagP99'],
      ['digest ok', (r) => (r.digestMatch === undefined ? 'n/a' : r.digestMatch ? 'yes' : 'NO')],
    ], liveRows);
    console.log([
      'lag: a probe SET every 10 ms on the source (send time noted); the replica is polled with GET every ~1 ms;',
      'lag = first time the replica shows the probe − send time (includes source queueing and one poll interval).',
      'replica ops/s: the replica\'s total_commands_processed delta minus the probe polls (includes MULTI/EXEC and',
      'checkpoint writes for checkpoint target). drain: after the load stops, time until the replica shows a last probe.',
      'cpu µs/op: CPU time per source command of the Replicant process and of the receiving redis-server (native replica,',
      'or Replicant\'s target); replicant cores: its CPU time / wall time (1.0 = one core saturated).',
      'goal: lag p99 < 100 ms at a load the native replica keeps up with.',
    ].join('\n'));
  }
  // A run with TLS rows never lands in (or replaces) the plain full-sync-<date>*.json files.
  const out = writeResults(TRANSPORTS.includes('tls') ? 'full-sync-tls' : 'full-sync', { options: opts, loadavgBefore: loadBefore, fullSync: fullRows, live: liveRows, summary: summarize(fullRows, liveRows) }, { custom: opts.given.some((g) => g !== 'noVerify') });
  console.log(`\nresults: ${out}`);
  const bad = [...fullRows, ...liveRows].filter((r) => r.digestMatch === false);
  if (bad.length > 0) {
    console.log(`DIGEST MISMATCH in ${bad.length} run(s): the copy differs from the source`);
    process.exitCode = 1;
  }
}

function summarize(fullRows, liveRows) {
  const ratios = fullRows.filter((r) => r.tool.startsWith('replicant')).map((r) => ({ dataset: r.dataset, mode: r.mode, tls: r.tls, ratio: r.ratio, within1_5: r.ratio <= 1.5 }));
  const live = liveRows.map((r) => ({ replica: r.replica, load: r.load, link: r.link, lagP99: r.lagP99, under100ms: r.lagP99 < 100 }));
  const byLink = TRANSPORTS.length > 1 ? { medianRatioTcp: median(ratios.filter((r) => !r.tls).map((r) => r.ratio)), medianRatioTls: median(ratios.filter((r) => r.tls).map((r) => r.ratio)) } : {};
  return { fullSyncRatios: ratios, medianRatio: median(ratios.map((r) => r.ratio)), ...byLink, live };
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
