/**
 * RDB decode throughput and peak memory: Replicant's decoder beside redis-check-rdb, on the
 * same files in the same run.
 *
 *   npm run bench:rdb [-- --runs 3] [--regen] [--profile] [--only small,large]
 *
 * Datasets (generated once with redis-server + SAVE, cached under bench/.data/):
 *   small  1,000,000 string keys × 16 B (DEBUG POPULATE)
 *   small3m  the same with 3,000,000 keys (issue 15's figure)
 *   large  a few huge keys: list/set/zset/hash of 0.5–1M elements, a 200k-entry stream,
 *          two 32 MB random strings and a 64 MB zero-filled (LZF-compressed) one
 *   mixed  ≈200k keys of every type (the full-sync benchmark's dataset (b)): mostly small
 *          listpack/ziplist/intset encodings, 10 % with a TTL, a few large collections
 *
 * Each decoder runs in its own process under /usr/bin/time -v (peak RSS of that process):
 *   replicant-lib   bench/lib/decode-child.mjs: RdbDecoder over a file stream of 1 MiB chunks
 *                   (as the CLI reads), CRC64 checked
 *   replicant-lib-64k  the same with 64 KiB chunks
 *   replicant-cli   node dist/cli/main.js rdb FILE --format stats --json (end to end)
 *   redis-check-rdb redis-check-rdb FILE (loads every object, checks the CRC64)
 * Figures are the median of --runs runs (wall time includes process start-up for all three).
 * --profile also runs the library decode under `node --cpu-prof` and prints the hot spots.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { populateSmallKeys, writeLargeCollections, writeMixedDataset } from './lib/datasets.mjs';
import { summarizeProfile } from './lib/cpuprofile.mjs';
import { runMeasured, tempDir, TIME_BIN } from './lib/processes.mjs';
import { startRedis } from './lib/redis.mjs';
import { BENCH_DIR, MB, ROOT_DIR, median, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';

const opts = parseArgs(process.argv.slice(2), { runs: 3, regen: false, profile: false, only: 'small,small3m,large,mixed', baseline: '' });
const DATA_DIR = join(BENCH_DIR, '.data');
const CLI = join(ROOT_DIR, 'dist', 'cli', 'main.js');
const CHILD = join(BENCH_DIR, 'lib', 'decode-child.mjs');
// Bump when a generator changes, so cached files are rebuilt.
const DATASETS = {
  small: { file: 'rdb-small-1m-v1.rdb', what: '1M keys × 16 B strings', fill: (c) => populateSmallKeys(c, 1_000_000, 16) },
  small3m: { file: 'rdb-small-3m-v1.rdb', what: '3M keys × 16 B strings', fill: (c) => populateSmallKeys(c, 3_000_000, 16) },
  large: { file: 'rdb-large-collections-v1.rdb', what: '10 huge keys (≈ 5.2M elements, 128 MB strings)', fill: writeLargeCollections },
  mixed: { file: 'rdb-mixed-200k-v1.rdb', what: '≈200k keys of every type, mostly small encodings', fill: (c) => writeMixedDataset(c) },
};

async function ensureDataset(name) {
  const d = DATASETS[name];
  const path = join(DATA_DIR, d.file);
  if (existsSync(path) && !opts.regen) return path;
  mkdirSync(DATA_DIR, { recursive: true });
  process.stdout.write(`generating ${name} dataset (${d.what}) ... `);
  const t0 = Date.now();
  const server = await startRedis({ name: `gen-${name}` });
  try {
    const c = server.client();
    await d.fill(c);
    await c.save();
    copyFileSync(join(server.dir, 'dump.rdb'), `${path}.tmp`);
    renameSync(`${path}.tmp`, path);
  } finally {
    await server.stop();
  }
  console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return path;
}

function fail(what, r) {
  throw new Error(`${what} failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}):\n${r.stderr.slice(-3000)}`);
}

async function runCheckRdb(file) {
  const r = await runMeasured('redis-check-rdb', [file]);
  if (r.code !== 0 || !/RDB looks OK/.test(r.stdout)) fail('redis-check-rdb', r);
  return { ...r, keys: Number(/(\d+) keys read/.exec(r.stdout)?.[1] ?? NaN) };
}

async function runLib(file, nodeArgs = [], childArgs = []) {
  const r = await runMeasured(process.execPath, [...nodeArgs, CHILD, file, ...childArgs]);
  if (r.code !== 0) fail('replicant decode (library)', r);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  return { ...r, keys: out.keys, elements: out.elements, innerMs: out.ms, maxRssKb: r.maxRssKb ?? out.maxRssKb };
}

async function runCli(file, cli = CLI) {
  const r = await runMeasured(process.execPath, [cli, 'rdb', file, '--format', 'stats', '--json']);
  if (r.code !== 0) fail('replicant rdb --format stats', r);
  const out = JSON.parse(r.stdout);
  return { ...r, keys: out.total.keys, elements: out.total.elements };
}

const TOOLS = [
  ['redis-check-rdb', runCheckRdb],
  ['replicant-lib', (f) => runLib(f)],
  // Same decoder fed 64 KiB chunks (the CLI and the spool's disk reads use 1 MiB): the records of
  // one push() stay alive together, so smaller pushes mean less GC promotion and a smaller heap.
  ['replicant-lib-64k', (f) => runLib(f, [], ['--chunk', '65536'])],
  ['replicant-cli', runCli],
];
// --baseline DIR: another build's dist/ directory, run interleaved with this one (A/B).
if (opts.baseline) {
  const dir = opts.baseline;
  TOOLS.push(['baseline-lib-64k', (f) => runLib(f, [], ['--chunk', '65536', '--dist', dir])]);
  TOOLS.push(['baseline-cli', (f) => runCli(f, join(dir, 'cli', 'main.js'))]);
}

async function benchDataset(name) {
  const file = await ensureDataset(name);
  const bytes = statSync(file).size;
  const samples = Object.fromEntries(TOOLS.map(([t]) => [t, []]));
  // Interleave the tools so a noisy moment hits all of them alike.
  for (let i = 0; i < opts.runs; i++) {
    for (const [tool, run] of TOOLS) samples[tool].push(await run(file));
  }
  const rows = [];
  for (const [tool] of TOOLS) {
    const s = samples[tool];
    const wallMs = median(s.map((x) => x.wallMs));
    const rssKb = Math.max(...s.map((x) => x.maxRssKb ?? 0));
    rows.push({
      dataset: name,
      tool,
      fileMB: bytes / MB,
      keys: s[0].keys,
      elements: s[0].elements ?? null,
      wallMs,
      bestMs: Math.min(...s.map((x) => x.wallMs)),
      innerMs: s[0].innerMs !== undefined ? median(s.map((x) => x.innerMs)) : null,
      cpuMs: s[0].cpuMs !== null ? median(s.map((x) => x.cpuMs)) : null,
      mbPerSec: bytes / MB / (wallMs / 1000),
      keysPerSec: s[0].keys / (wallMs / 1000),
      peakRssMB: rssKb ? rssKb / 1024 : null,
    });
  }
  const ref = rows[0];
  for (const r of rows) {
    r.timeVsCheckRdb = r.wallMs / ref.wallMs;
    r.rssVsCheckRdb = r.peakRssMB && ref.peakRssMB ? r.peakRssMB / ref.peakRssMB : null;
    // The decoders must agree on what the file holds.
    r.keysMatch = r.keys === ref.keys;
  }
  return rows;
}

async function profile(name) {
  const file = join(DATA_DIR, DATASETS[name].file);
  const dir = tempDir('replicant-bench-prof-');
  await runLib(file, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', 'decode.cpuprofile'], ['--chunk', '65536']);
  const p = summarizeProfile(join(dir, 'decode.cpuprofile'), 15);
  printTable(`hot spots, library decode of ${name}, 64 KiB chunks (self time, ${Math.round(p.totalMs)} ms sampled)`, [
    ['function', 'fn'],
    ['where', 'where'],
    ['self ms', 'selfMs'],
    ['%', 'pct'],
  ], p.top);
  return { dataset: name, totalMs: p.totalMs, top: p.top };
}

async function main() {
  if (TIME_BIN === null) console.log('note: /usr/bin/time not found (Debian package `time`); peak RSS of redis-check-rdb cannot be measured, Replicant reports its own');
  const loadBefore = warnIfBusy();
  const names = opts.only.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!DATASETS[n]) throw new Error(`--only: unknown dataset ${n} (${Object.keys(DATASETS).join(', ')})`);
  const rows = [];
  for (const n of names) rows.push(...(await benchDataset(n)));
  printTable(`RDB decode, median of ${opts.runs} runs (wall time includes process start; peak RSS of the decoding process)`, [
    ['dataset', 'dataset'],
    ['tool', 'tool'],
    ['file MB', 'fileMB'],
    ['keys', 'keys'],
    ['wall ms', 'wallMs'],
    ['cpu ms', 'cpuMs'],
    ['MB/s', 'mbPerSec'],
    ['keys/s', 'keysPerSec'],
    ['peak RSS MB', 'peakRssMB'],
    ['time ×check', 'timeVsCheckRdb'],
    ['RSS ×check', 'rssVsCheckRdb'],
  ], rows);
  const mismatched = rows.filter((r) => !r.keysMatch);
  for (const r of mismatched) console.log(`MISMATCH: ${r.tool} counted ${r.keys} keys in ${r.dataset}, redis-check-rdb ${rows.find((x) => x.dataset === r.dataset).keys}`);
  const goals = rows
    .filter((r) => r.tool !== 'redis-check-rdb')
    .map((r) => ({
      dataset: r.dataset,
      tool: r.tool,
      fasterThanCheckRdb: r.timeVsCheckRdb <= 1 ? 'yes' : `no (${r.timeVsCheckRdb.toFixed(2)}× its time)`,
      rssUnder150MB: r.peakRssMB === null ? '?' : r.peakRssMB < 150 ? 'yes' : `no (${Math.round(r.peakRssMB)} MB)`,
    }));
  printTable('goals: at least as fast as redis-check-rdb; peak RSS < 150 MB', [
    ['dataset', 'dataset'],
    ['tool', 'tool'],
    ['as fast as check-rdb', 'fasterThanCheckRdb'],
    ['RSS < 150 MB', 'rssUnder150MB'],
  ], goals);
  const profiles = [];
  if (opts.profile) for (const n of names) profiles.push(await profile(n));
  const out = writeResults('rdb-decode', { runs: opts.runs, loadavgBefore: loadBefore, rows, goals, profiles }, { custom: opts.given.some((g) => g === 'runs' || g === 'only' || g === 'baseline') });
  console.log(`\nresults: ${out}`);
  if (mismatched.length > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
