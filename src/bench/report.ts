/**
 * The bench result as a summary table (text), and as a self-contained report: one HTML file
 * (inline CSS and SVG, no scripts, nothing fetched) or one SVG file, with throughput and lag
 * over time.
 */
import type { BenchResult, TimelinePoint, ToolResult } from './run.js';

type Row = [label: string, replicant: string, native: string];

const n0 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : Math.round(v).toLocaleString('en-US'));
const n1 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(1));

function rows(r: BenchResult): Row[] {
  const tools: (ToolResult | null)[] = [r.replicant, r.native];
  const row = (label: string, f: (t: ToolResult) => string): Row => [label, ...(tools.map((t) => (t === null ? '' : f(t))) as [string, string])];
  return [
    row('full sync: keys', (t) => n0(t.fullSync.keys)),
    row('full sync: ms', (t) => n0(t.fullSync.ms)),
    row('full sync: keys/s', (t) => n0(t.fullSync.keysPerSec)),
    row('full sync: RDB MB/s', (t) => n1(t.fullSync.mbPerSec)),
    row('streaming: target rate (writes/s)', (t) => (t.streaming.targetRate === null ? 'flat out' : n0(t.streaming.targetRate))),
    row('streaming: written ops/s', (t) => n0(t.streaming.writeOpsPerSec)),
    row('streaming: applied ops/s', (t) => n0(t.streaming.appliedOpsPerSec)),
    row('lag p50 (ms)', (t) => n1(t.streaming.lag.p50)),
    row('lag p99 (ms)', (t) => n1(t.streaming.lag.p99)),
    row('lag max (ms)', (t) => n1(t.streaming.lag.max)),
    row('probes (unseen)', (t) => `${t.streaming.lag.probes} (${t.streaming.lag.unseen})`),
    row('CPU full sync (% of a core)', (t) => n0(t.cpu.fullSyncPct)),
    row('CPU streaming (% of a core)', (t) => n0(t.cpu.streamingPct)),
    row('peak RSS (MB)', (t) => n1(t.peakRssMB)),
  ];
}

export function formatSummary(r: BenchResult): string {
  const all = rows(r);
  const heads: Row = ['', 'replicant', r.native ? 'native replica' : ''];
  const width = [0, 1, 2].map((i) => Math.max(...[heads, ...all].map((x) => x[i]!.length)));
  const line = (x: Row) => [x[0].padEnd(width[0]!), x[1].padStart(width[1]!), r.native ? x[2].padStart(width[2]!) : ''].join('  ').trimEnd();
  const where = r.local ? 'two local temporary servers' : `${r.source} → ${r.target}`;
  return [`bench: ${r.dataset.keys.toLocaleString('en-US')} keys × ${r.dataset.valueSize} B, ${where}`, line(heads), line(['-'.repeat(width[0]!), '-'.repeat(width[1]!), '-'.repeat(width[2]!)]), ...all.map(line), ''].join('\n');
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: [number, number | null][];
}

/** The next round figure at or above `v` (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k): axis maxima. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].find((m) => m * p >= v) ?? 10) * p;
}

function shortNumber(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(1)}`;
}

/** A line chart as an SVG group placed at (x, y). */
function chart(title: string, unit: string, series: Series[], x: number, y: number, w = 860, h = 260): string {
  const left = 60;
  const bottom = 30;
  const top = 28;
  const pw = w - left - 20;
  const ph = h - top - bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]).filter((v): v is number => v !== null && Number.isFinite(v)));
  const xMax = niceMax(Math.max(1, ...xs));
  const yMax = niceMax(Math.max(0, ...ys));
  const px = (v: number) => left + (v / xMax) * pw;
  const py = (v: number) => top + ph - (Math.min(v, yMax) / yMax) * ph;
  const out: string[] = [`<g transform="translate(${x},${y})" font-family="sans-serif" font-size="11">`];
  out.push(`<text x="${left}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    out.push(`<line x1="${left}" x2="${left + pw}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`, `<text x="${left - 6}" y="${py(v) + 4}" text-anchor="end">${shortNumber(v)}</text>`);
    const t = (xMax * i) / 4;
    out.push(`<text x="${px(t)}" y="${top + ph + 16}" text-anchor="middle">${shortNumber(t)} s</text>`);
  }
  out.push(`<text x="12" y="${top + ph / 2}" transform="rotate(-90 12 ${top + ph / 2})" text-anchor="middle">${esc(unit)}</text>`);
  out.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  series.forEach((s, i) => {
    // A gap (null) ends a segment: no line drawn across phases without figures.
    const segs: string[][] = [[]];
    for (const [t, v] of s.points) {
      if (v === null || !Number.isFinite(v)) segs.push([]);
      else segs[segs.length - 1]!.push(`${px(t).toFixed(1)},${py(v).toFixed(1)}`);
    }
    for (const seg of segs) {
      if (seg.length === 1) out.push(`<circle cx="${seg[0]!.split(',')[0]}" cy="${seg[0]!.split(',')[1]}" r="2" fill="${s.color}"/>`);
      else if (seg.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5 3"' : ''} points="${seg.join(' ')}"/>`);
    }
    const lx = left + pw - 270;
    const ly = top + 14 + i * 15;
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`, `<text x="${lx + 24}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

const pick = (tl: TimelinePoint[], f: (p: TimelinePoint) => number | null): [number, number | null][] => tl.map((p) => [p.t, f(p)]);

function charts(r: BenchResult): { svg: string; height: number } {
  const rep = r.replicant.timeline;
  const nat = r.native?.timeline ?? [];
  const throughput: Series[] = [
    { name: 'replicant full sync keys/s', color: '#6a3d9a', points: pick(rep, (p) => p.keysPerSec) },
    { name: 'writes/s on the source', color: '#999999', dashed: true, points: pick(rep, (p) => p.writeOpsPerSec) },
    { name: 'replicant applied ops/s', color: '#1f78b4', points: pick(rep, (p) => p.appliedOpsPerSec) },
  ];
  const lag: Series[] = [{ name: 'replicant lag (probe, max per 250 ms)', color: '#1f78b4', points: pick(rep, (p) => p.lagMs) }];
  if (r.native) {
    throughput.push({ name: 'native replica full sync keys/s', color: '#e31a1c', dashed: true, points: pick(nat, (p) => p.keysPerSec) });
    lag.push({ name: 'native replica lag', color: '#e31a1c', dashed: true, points: pick(nat, (p) => p.lagMs) });
  }
  const body = [chart('Throughput over time (from the start of each copy)', 'per second', throughput, 10, 10), chart('Replication lag, end to end (probe key)', 'ms', lag, 10, 290)].join('\n');
  return { svg: body, height: 570 };
}

/** One SVG file: the charts and the summary table as text lines. */
export function renderSvg(r: BenchResult): string {
  const { svg, height } = charts(r);
  const lines = formatSummary(r).trimEnd().split('\n');
  const text = lines.map((l, i) => `<text x="20" y="${height + 20 + i * 15}" xml:space="preserve">${esc(l)}</text>`).join('\n');
  const total = height + 30 + lines.length * 15;
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="880" height="${total}" viewBox="0 0 880 ${total}">
<rect width="100%" height="100%" fill="white"/>
${svg}
<g font-family="monospace" font-size="12">${text}</g>
</svg>
`;
}

/** One HTML file, nothing external: inline CSS, inline SVG, no script. */
export function renderHtml(r: BenchResult): string {
  const { svg, height } = charts(r);
  const table = rows(r)
    .map((x) => `<tr><th>${esc(x[0])}</th><td>${esc(x[1])}</td>${r.native ? `<td>${esc(x[2])}</td>` : ''}</tr>`)
    .join('\n');
  const where = r.local ? 'two local temporary redis-servers' : `${esc(r.source)} → ${esc(r.target)}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>replicant bench ${esc(r.date)}</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:920px}
table{border-collapse:collapse;margin:12px 0}th,td{padding:3px 10px;border-bottom:1px solid #eee}
th{text-align:left;font-weight:normal;color:#555}td{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#666;font-size:13px}
</style></head><body>
<h1>replicant bench</h1>
<p class="meta">${esc(r.date)} · ${where} · ${r.dataset.keys.toLocaleString('en-US')} keys × ${r.dataset.valueSize} B · ${r.machine.cpus} CPUs (${esc(r.machine.cpuModel ?? '?')}) · Node ${esc(r.machine.node)}</p>
<table><tr><th></th><td><b>replicant</b></td>${r.native ? '<td><b>native replica</b></td>' : ''}</tr>
${table}
</table>
<svg xmlns="http://www.w3.org/2000/svg" width="880" height="${height}" viewBox="0 0 880 ${height}">
${svg}
</svg>
<p class="meta">Lag: every 10 ms a probe key is SET on the source with a sequence number and polled on the target; lag = time seen − time sent (what a reader of the target observes). CPU: of the process doing the copy (Replicant, or the replica's redis-server), in % of one core.</p>
</body></html>
`;
}
