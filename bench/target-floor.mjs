/**
 * The floor of any copier that writes commands: how long the target itself takes to apply the
 * exact bytes Replicant would send for a snapshot, fed from memory as fast as it reads them,
 * beside the native replica's full sync (which loads the RDB instead) of the same source.
 *
 *   npm run bench:floor [-- --keys 1000000] [--rounds 3] [--pairs 128,1024]
 *
 * For a source of --keys × 16 B strings (DEBUG POPULATE), each round runs:
 *   native     a fresh redis-server: REPLICAOF → link up with every key (diskless source, delay 0);
 *              its CPU (the RDB load) from /proc
 *   floor N    the source's RDB decoded in this process through Replicant's SnapshotApplier
 *              (MSETs of N pairs, units as the sync cuts them), then those units written to a
 *              fresh redis-server on one connection, back to back, with a PING after the last:
 *              wall from the first byte to the PONG, and the server's CPU
 *   replicant  `replicant sync --exit-after-full-sync --checkpoint none`, process start → exit
 * Medians of --rounds. What it shows: a target spends more CPU applying MSETs than loading the
 * same keys from an RDB (arguments parsed and copied, commands dispatched, the keyspace grown
 * step by step instead of sized up front), so the floor row is the least a command-based copy
 * can cost on this machine, whatever the copier does.
 */
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RdbDecoder } from '../dist/rdb/decoder.js';
import { DECODE_SLICE_BYTES } from '../dist/rdb/read.js';
import { SnapshotApplier } from '../dist/sync/apply/snapshot-writer.js';
import { populateSmallKeys } from './lib/datasets.mjs';
import { procCpuMs } from './lib/processes.mjs';
import { info, startRedis, totalKeys, waitFor } from './lib/redis.mjs';
import { replicantFullSync } from './lib/replicant.mjs';
import { median, parseArgs, printTable, warnIfBusy, writeResults } from './lib/report.mjs';

const opts = parseArgs(process.argv.slice(2), { keys: 1_000_000, rounds: 3, pairs: '128,1024' });
const load = warnIfBusy();

/** Replicant's snapshot units for an RDB file, as the sync would submit them (MSETs of `pairs`). */
async function snapshotUnits(rdb, pairs) {
  const units = [];
  const writer = {
    info: {},
    pendingUnits: 0,
    submit(u) {
      for (const b of Array.isArray(u.payload) ? u.payload : [u.payload]) units.push(Buffer.from(b));
      return true;
    },
    async waitDrain() {},
    async flush() {},
  };
  const logger = { info() {}, warn() {}, debug() {} };
  const decoder = new RdbDecoder({ verifyChecksum: true, captureRaw: false, onCorruptValue: 'fail' });
  let applier = null;
  for (let at = 0; at < rdb.length && !decoder.done; at += DECODE_SLICE_BYTES) {
    const records = decoder.push(rdb.subarray(at, at + DECODE_SLICE_BYTES));
    applier ??= new SnapshotApplier({
      writer,
      logger,
      msetPairs: pairs,
      translate: { mode: 'commands', replace: false, targetVersion: '7.0', emitSelect: true, onUntranslatable: 'fail', onIssue() {} },
    });
    if (records.length > 0) await applier.apply(records);
  }
  await applier.finish();
  return units;
}

/** Write `units` to a fresh server back to back; ms until the PONG after the last, and its CPU. */
async function replay(units) {
  const target = await startRedis({ name: 'floor-target' });
  try {
    const cpu0 = procCpuMs(target.child.pid);
    const t0 = performance.now();
    await new Promise((resolve, reject) => {
      const s = connect(target.port, '127.0.0.1');
      let tail = '';
      s.on('error', reject);
      s.on('data', (d) => {
        tail = (tail + d.toString('latin1')).slice(-16);
        if (tail.endsWith('+PONG\r\n')) {
          s.end();
          resolve();
        } else if (tail.includes('-ERR')) reject(new Error(`the target refused a command: ${tail}`));
      });
      s.on('connect', () => {
        s.cork();
        for (const u of units) s.write(u);
        s.write('*1\r\n$4\r\nPING\r\n');
        s.uncork();
      });
    });
    const ms = performance.now() - t0;
    const keys = await totalKeys(target.client());
    return { ms, serverCpuMs: procCpuMs(target.child.pid) - cpu0, keys };
  } finally {
    await target.stop();
  }
}

async function native(source, keys) {
  const replica = await startRedis({ name: 'floor-native' });
  try {
    const c = replica.client();
    const cpu0 = procCpuMs(replica.child.pid);
    const t0 = performance.now();
    await c.replicaof('127.0.0.1', String(source.port));
    await waitFor(async () => {
      const r = await info(c, 'replication');
      return r.master_link_status === 'up' && r.master_sync_in_progress === '0' && (await totalKeys(c)) === keys;
    }, 'the native replica to finish its full sync', 300_000, 5);
    return { ms: performance.now() - t0, serverCpuMs: procCpuMs(replica.child.pid) - cpu0, keys };
  } finally {
    await replica.stop();
  }
}

async function replicant(source, keys) {
  const target = await startRedis({ name: 'floor-replicant' });
  try {
    const cpu0 = procCpuMs(target.child.pid);
    const r = await replicantFullSync(source.url, target.url);
    const t = target.client();
    // (Replicant's own keys, `__replicant:*`, are not the source's.)
    const got = (await totalKeys(t)) - (await t.keys('__replicant:*')).length;
    if (got !== keys) throw new Error(`replicant copied ${got} keys of ${keys}`);
    return { ms: r.wallMs, serverCpuMs: procCpuMs(target.child.pid) - cpu0, keys: got, replicantCpuMs: r.cpuMs };
  } finally {
    await target.stop();
  }
}

const pairsList = String(opts.pairs).split(',').map(Number);
const source = await startRedis({ name: 'floor-source', args: ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'] });
const rows = [];
try {
  const c = source.client();
  await populateSmallKeys(c, opts.keys, 16);
  await c.save();
  const rdb = readFileSync(join(source.dir, 'dump.rdb'));
  const unitsByPairs = new Map();
  for (const p of pairsList) unitsByPairs.set(p, await snapshotUnits(rdb, p));
  const runs = new Map();
  const add = (name, r) => (runs.get(name) ?? runs.set(name, []).get(name)).push(r);
  for (let round = 0; round < opts.rounds; round++) {
    add('native REPLICAOF (RDB load)', await native(source, opts.keys));
    for (const p of pairsList) add(`floor: Replicant's units from memory, MSET of ${p}`, await replay(unitsByPairs.get(p)));
    add('replicant sync (process start → exit)', await replicant(source, opts.keys));
  }
  const nativeMs = median(runs.get('native REPLICAOF (RDB load)').map((r) => r.ms));
  for (const [name, rs] of runs) {
    for (const r of rs) if (r.keys !== opts.keys) throw new Error(`${name}: ${r.keys} keys of ${opts.keys}`);
    const ms = median(rs.map((r) => r.ms));
    rows.push({ name, ms, ratio: ms / nativeMs, serverCpuMs: median(rs.map((r) => r.serverCpuMs)), replicantCpuMs: rs[0].replicantCpuMs === undefined ? null : median(rs.map((r) => r.replicantCpuMs)), all: rs.map((r) => Math.round(r.ms)) });
  }
} finally {
  await source.stop();
}
printTable(`${opts.keys.toLocaleString('en-US')} keys × 16 B, diskless source, medians of ${opts.rounds} (ms)`, [
  ['run', 'name'],
  ['ms', 'ms'],
  ['× native', 'ratio'],
  ['receiving server cpu ms', 'serverCpuMs'],
  ['replicant cpu ms', 'replicantCpuMs'],
  ['each round', (r) => r.all.join(' / ')],
], rows);
console.log('floor: the target alone applying what Replicant sends, with no copier, no source and nothing else running.');
console.log(`\nresults: ${writeResults('target-floor', { opts, loadavgBefore: load, rows }, { custom: true })}`);
process.exit(0);
