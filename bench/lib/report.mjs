/** Tables on stdout, small JSON result files under bench/results/, and a few figure helpers. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT_DIR = join(BENCH_DIR, '..');

/** Print rows (objects) as an aligned table; `columns` is [[header, key or fn], ...]. */
export function printTable(title, columns, rows) {
  const cells = rows.map((r) => columns.map(([, k]) => fmt(typeof k === 'function' ? k(r) : r[k])));
  const heads = columns.map(([h]) => h);
  const widths = heads.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (vals) => vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(heads));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

function fmt(v) {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    return Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2);
  }
  return String(v);
}

/** The machine, for the result files (loadavg1m at the time of writing). */
export function machine() {
  let redis = null;
  try {
    redis = /v=([\d.]+)/.exec(execFileSync('redis-server', ['--version']).toString())?.[1] ?? null;
  } catch {
    // not installed: the scripts fail earlier anyway
  }
  // Load average: figures taken while other work runs on the machine are not comparable.
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, redis, loadavg1m: loadavg()[0] };
}

/**
 * Write bench/results/<scenario>-<YYYY-MM-DD>.json and return its path. A run with non-default
 * options (`custom`) writes <scenario>-<date>-custom.json instead, so it never replaces the
 * figures of a full run.
 */
export function writeResults(scenario, data, { custom = false } = {}) {
  const dir = join(BENCH_DIR, 'results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  const file = join(dir, `${scenario}-${date}${custom ? '-custom' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({ scenario, date: new Date().toISOString(), machine: machine(), ...data }, roundReplacer, 2)}\n`);
  return file;
}

function roundReplacer(_k, v) {
  return typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v;
}

// Nearest-rank percentiles: shared with `replicant bench` (src/bench/stats.ts).
import { percentile } from '../../dist/bench/stats.js';
export { percentile };

export function median(values) {
  return percentile(values, 50);
}

export const MB = 1024 * 1024;

/**
 * Simple `--name value` / `--flag` parsing for the scripts' few options. Exits with status 2 and
 * a one-line message on a bad option. `given` lists the options that were given.
 */
export function parseArgs(argv, defaults) {
  try {
    const given = argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase()));
    return { ...parseOptions(argv, defaults), given };
  } catch (e) {
    console.error(`${e.message}`);
    process.exit(2);
  }
}

function parseOptions(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const name = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(name in defaults)) throw new Error(`unknown option ${a}; known: ${Object.keys(defaults).map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(' ')}`);
    const d = defaults[name];
    if (typeof d === 'boolean') out[name] = true;
    else {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      out[name] = typeof d === 'number' ? Number(v) : v;
      if (typeof d === 'number' && !(out[name] > 0)) throw new Error(`${a} needs a positive number, got ${v}`);
    }
  }
  return out;
}

/** Warn when the machine is busy: the figures then measure the contention as much as the code. */
export function warnIfBusy() {
  const l = loadavg()[0];
  if (l > cpus().length * 0.5) console.log(`note: load average ${l.toFixed(2)} on ${cpus().length} cores before starting; other work skews these figures`);
  return l;
}
