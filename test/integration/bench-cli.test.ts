/**
 * `replicant bench` end to end, kept short (a few thousand keys, one second of load): on local
 * temporary servers with a native replica next to it, and on given servers, which it leaves
 * without its keys.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli, startCli } from '../helpers/cli.js';

const servers: RedisServer[] = [];
const dir = mkdtempSync(join(tmpdir(), 'replicant-bench-test-'));
beforeAll(ensureBuilt, 120_000);
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Tool {
  fullSync: { keys: number; ms: number; keysPerSec: number; mbPerSec: number | null };
  streaming: { writeOpsPerSec: number; appliedOpsPerSec: number | null; lag: { p50: number; p99: number; max: number; probes: number; unseen: number } };
  cpu: { fullSyncMs: number | null };
  peakRssMB: number | null;
  timeline: { phase: string; lagMs: number | null }[];
}

describe('replicant bench', () => {
  it('on two local servers, with a native replica: JSON figures and a self-contained HTML report', async () => {
    const report = join(dir, 'report.html');
    const r = await runCli(['bench', '--keys', '3000', '--duration', '1s', '--rate', '2000', '--compare-native', '--json', '--no-progress', '--report', report], { timeoutMs: 60_000 });
    expect(r.stderr).toBe(`report written to ${report}\n`);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout.toString()) as { local: boolean; replicant: Tool; native: Tool };
    expect(res.local).toBe(true);
    expect(res.replicant.fullSync.keys).toBe(3000);
    expect(res.replicant.fullSync.mbPerSec).toBeGreaterThan(0);
    for (const t of [res.replicant, res.native]) {
      expect(t.streaming.writeOpsPerSec).toBeGreaterThan(500);
      expect(t.streaming.lag.probes).toBeGreaterThan(20);
      expect(t.streaming.lag.unseen).toBe(0);
      expect(t.streaming.lag.max).toBeGreaterThanOrEqual(t.streaming.lag.p50);
      expect(t.peakRssMB).toBeGreaterThan(1);
      expect(t.timeline.some((p) => p.phase === 'streaming' && p.lagMs !== null)).toBe(true);
    }
    expect(res.native.fullSync.keys).toBeGreaterThanOrEqual(3000);
    expect(res.replicant.streaming.appliedOpsPerSec).toBeGreaterThan(500);
    const html = readFileSync(report, 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<polyline');
    expect(html).toContain('native replica');
    // Self-contained: nothing loaded from elsewhere, no script.
    expect(html).not.toMatch(/<script|<link|\bsrc=|url\(/i);
  }, 60_000);

  it('on given servers: a table on stdout, an SVG report, and no bench keys left behind', async () => {
    const source = await startRedis();
    const target = await startRedis();
    servers.push(source, target);
    await source.client().set('user:data', 'kept');
    const report = join(dir, 'report.svg');
    const r = await runCli(['bench', '-s', source.url, '-t', target.url, '--keys', '2000', '--duration', '1s', '--no-progress', '--report', report], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    const out = r.stdout.toString();
    expect(out).toMatch(/full sync: keys\s+2,001/);
    expect(out).toMatch(/streaming: target rate \(writes\/s\)\s+flat out/);
    expect(out).toMatch(/lag p99 \(ms\)\s+\d/);
    expect(existsSync(report)).toBe(true);
    expect(readFileSync(report, 'utf8')).toMatch(/^<\?xml[^]*<svg[^]*<polyline[^]*<\/svg>\s*$/);
    for (const s of [source, target]) {
      const c = s.client();
      expect(await c.keys('replicant-bench:*')).toEqual([]);
      expect(await c.get('user:data')).toBe('kept');
    }
    const t = target.client();
    expect(await t.keys('__replicant:*:replicant-bench')).toEqual([]);
    expect(await t.hkeys('__replicant:syncs')).toEqual([]);
  }, 60_000);

  it('Ctrl-C while streaming: exits 130 and still removes the bench keys', async () => {
    const source = await startRedis();
    const target = await startRedis();
    servers.push(source, target);
    const run = startCli(['bench', '-s', source.url, '-t', target.url, '--keys', '1000', '--duration', '60s', '--rate', '1000', '--no-progress']);
    const tgt = target.client();
    await waitFor(async () => (await tgt.exists('replicant-bench:probe:replicant')) === 1, 'the streaming load to reach the target', 30_000);
    run.kill('SIGINT');
    expect(await run.code).toBe(130);
    expect(run.stderr()).toMatch(/bench interrupted by SIGINT: stopped, temporary servers and bench keys removed/);
    for (const s of [source, target]) expect(await s.client().keys('replicant-bench:*')).toEqual([]);
    expect(await tgt.hkeys('__replicant:syncs')).toEqual([]);
  }, 60_000);
});
