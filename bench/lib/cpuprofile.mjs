/**
 * Summarize a V8 .cpuprofile (from `node --cpu-prof`): self time per function, mapped back
 * to the TypeScript source through dist/*.js.map when there is one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT_DIR } from './report.mjs';

const maps = new Map();

function sourceMapFor(file) {
  if (maps.has(file)) return maps.get(file);
  let sm = null;
  try {
    if (existsSync(`${file}.map`)) sm = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
  } catch {
    sm = null;
  }
  maps.set(file, sm);
  return sm;
}

/** "src/rdb/decoder.ts:123" (1-based) for a dist location, else the JS location. */
function locate(url, line0, col0) {
  if (!url) return '(native)';
  if (!url.startsWith('file://')) return `${url}:${line0 + 1}`;
  const file = fileURLToPath(url);
  const sm = sourceMapFor(file);
  if (sm) {
    const e = sm.findEntry(line0, col0);
    if (e && e.originalSource) {
      const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : new URL(e.originalSource, url).pathname;
      return `${relative(ROOT_DIR, src)}:${e.originalLine + 1}`;
    }
  }
  return `${relative(ROOT_DIR, file)}:${line0 + 1}`;
}

/**
 * Top `n` functions by self time: [{ fn, where, selfMs, pct }]. Also returns totals.
 */
export function summarizeProfile(path, n = 15) {
  const prof = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(prof.nodes.map((node) => [node.id, node]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(prof.samples[i]);
    if (!node) continue;
    total += dt;
    const cf = node.callFrame;
    const key = `${cf.functionName}|${cf.url}|${cf.lineNumber}|${cf.columnNumber}`;
    const e = self.get(key) ?? { cf, ms: 0 };
    e.ms += dt;
    self.set(key, e);
  }
  // Merge entries that land on the same function and source location.
  const merged = new Map();
  for (const { cf, ms } of self.values()) {
    const fn = cf.functionName || '(anonymous)';
    const where = locate(cf.url, cf.lineNumber, cf.columnNumber);
    const key = `${fn}@${where}`;
    const e = merged.get(key) ?? { fn, where, selfMs: 0 };
    e.selfMs += ms;
    merged.set(key, e);
  }
  const top = [...merged.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, n);
  for (const t of top) t.pct = total > 0 ? (100 * t.selfMs) / total : 0;
  return { totalMs: total, top };
}
