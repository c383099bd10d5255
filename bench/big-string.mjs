/**
 * One huge string value: peak memory and time of Replicant's decoder paths on a single 512 MB
 * string (the Redis maximum), beside a native replica of the same source, in the same run.
 *
 *   npm run bench:bigstring [-- --mb 512] [--kinds text,zeros]
 *
 * Kinds (each in its own source `redis-server`, built with APPEND / SETRANGE, then SAVEd):
 *   text   printable random ASCII, stored uncompressed (LZF finds nothing to take): the plain
 *          string path; in JSON a text value (kept in a temporary file until its last byte)
 *   zeros  SETRANGE at the end: all zero bytes, stored LZF-compressed (~1/90): the streamed
 *          LZF path; in JSON base64
 * Measured, each as its own process under /usr/bin/time -v (wall time includes start-up):
 *   rdb resp / rdb jsonl / rdb stats   `replicant rdb dump.rdb --format ...` > /dev/null
 *   native REPLICAOF                   a fresh redis-server, REPLICAOF until synced
 *   replicant sync                     `replicant sync --exit-after-full-sync --checkpoint none`
 *                                      into a fresh redis-server (SET + APPEND of 1 MiB pieces)
 * Both copies are checked with DEBUG DIGEST-VALUE against the source (not timed).
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { runMeasured } from './lib/processes.mjs';
import { info, startRedis, waitFor } from './lib/redis.mjs';
import { CLI, replicantFullSync } from './lib/replicant.mjs';
import { MB, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';

const opts = parseArgs(process.argv.slice(2), { mb: 512, kinds: 'text,zeros' });
const KEY = 'big';
/** The goal of issue 7: every Replicant path under this peak RSS for a 512 MB string. */
const RSS_GOAL_MB = 150;

/** Printable random ASCII (no `"` or `\`), `n` bytes. */
function randomText(n) {
  const b = randomBytes(n);
  for (let i = 0; i < n; i++) {
    let c = 0x20 + (b[i] % 94);
    if (c === 0x22 || c === 0x5c) c = 0x41;
    b[i] = c;
  }
  return b;
}

async function fill(client, kind, bytes) {
  if (kind === 'zeros') {
    await client.setrange(KEY, bytes - 1, '\0');
    return;
  }
  // Fresh random text per MiB: LZF (8 KiB window) must find nothing to compress.
  const piece = 1 << 20;
  for (let o = 0; o < bytes; o += piece) await client.append(KEY, randomText(Math.min(piece, bytes - o)));
}

async function digestValue(client) {
  return String(await client.call('DEBUG', 'DIGEST-VALUE', KEY));
}

async function rdbRun(file, format) {
  const r = await runMeasured(process.execPath, [CLI, 'rdb', file, '--format', format], { discardStdout: true });
  if (r.code !== 0) throw new Error(`replicant rdb --format ${format} exited with ${r.code}:\n${r.stderr.slice(-2000)}`);
  return { ms: r.wallMs, cpuMs: r.cpuMs, peakRssMB: r.maxRssKb ? r.maxRssKb / 1024 : null };
}

async function nativeRun(source, want) {
  const replica = await startRedis({ name: 'native-replica' });
  try {
    const c = replica.client();
    const t0 = performance.now();
    await c.replicaof('127.0.0.1', String(source.port));
    await waitFor(async () => {
      const r = await info(c, 'replication');
      return r.master_link_status === 'up' && r.master_sync_in_progress === '0' && (await c.exists(KEY)) === 1;
    }, 'the native replica to finish its full sync', 600_000, 5);
    const ms = performance.now() - t0;
    return { ms, digestMatch: (await digestValue(c)) === want };
  } finally {
    await replica.stop();
  }
}

async function syncRun(source, want) {
  const target = await startRedis({ name: 'replicant-target' });
  try {
    const r = await replicantFullSync(source.url, target.url);
    return { ms: r.wallMs, cpuMs: r.cpuMs, peakRssMB: r.maxRssKb ? r.maxRssKb / 1024 : null, digestMatch: (await digestValue(target.client())) === want };
  } finally {
    await target.stop();
  }
}

async function scenario(kind, bytes) {
  const source = await startRedis({ name: `source-${kind}`, args: ['--repl-diskless-sync', 'no', '--proto-max-bulk-len', '1gb'] });
  try {
    const c = source.client();
    process.stdout.write(`(${kind}) building a ${bytes / MB} MB string ... `);
    const t0 = Date.now();
    await fill(c, kind, bytes);
    if ((await c.strlen(KEY)) !== bytes) throw new Error(`the source string is ${await c.strlen(KEY)} bytes, not ${bytes}`);
    await c.save();
    const file = join(source.dir, 'dump.rdb');
    const want = await digestValue(c);
    console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const rows = [];
    for (const format of ['resp', 'jsonl', 'stats']) rows.push({ kind, what: `rdb --format ${format}`, ...(await rdbRun(file, format)), digestMatch: null });
    rows.push({ kind, what: 'native REPLICAOF', ...(await nativeRun(source, want)), cpuMs: null, peakRssMB: null });
    rows.push({ kind, what: 'replicant sync', ...(await syncRun(source, want)) });
    return { rows, rdbMB: statSync(file).size / MB };
  } finally {
    await source.stop();
  }
}

async function main() {
  const bytes = Math.round(opts.mb * MB);
  const kinds = opts.kinds.split(',').map((s) => s.trim()).filter(Boolean);
  const load = warnIfBusy();
  const rows = [];
  for (const kind of kinds) {
    if (kind !== 'text' && kind !== 'zeros') throw new Error(`--kinds: unknown kind ${kind} (text, zeros)`);
    const r = await scenario(kind, bytes);
    for (const row of r.rows) rows.push({ ...row, rdbMB: r.rdbMB });
  }
  printTable(`one ${opts.mb} MB string`, [
    ['kind', 'kind'],
    ['what', 'what'],
    ['RDB MB', (r) => Math.round(r.rdbMB)],
    ['ms', (r) => Math.round(r.ms)],
    ['CPU ms', 'cpuMs'],
    ['peak RSS MB', (r) => (r.peakRssMB === null ? null : Math.round(r.peakRssMB))],
    [`< ${RSS_GOAL_MB} MB`, (r) => (r.peakRssMB === null ? null : r.peakRssMB < RSS_GOAL_MB ? 'yes' : 'NO')],
    ['digest', (r) => (r.digestMatch === null ? null : r.digestMatch ? 'equal' : 'DIFFERENT')],
  ], rows);
  const file = writeResults('big-string', { options: { mb: opts.mb, kinds }, loadavgBefore: load, rssGoalMB: RSS_GOAL_MB, rows }, { custom: opts.given.length > 0 });
  console.log(`results: ${file}`);
  if (rows.some((r) => r.digestMatch === false)) process.exitCode = 1;
}

await main();
