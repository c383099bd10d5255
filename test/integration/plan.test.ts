/**
 * `replicant plan` against real servers under a steady writer: it flags a backlog and a replica
 * output buffer too small for the measured rate (exit 12, with CONFIG SET lines), and once those
 * lines are applied a sync survives the stated outage with a partial resync.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { infoField, startRedis, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { digestWithoutReserved, runSync, waitCaughtUp, type RunningSync } from '../helpers/sync.js';

const servers: RedisServer[] = [];
const syncs: RunningSync[] = [];
beforeAll(ensureBuilt, 120_000);
afterEach(async () => {
  await Promise.all(syncs.splice(0).map((s) => s.stop().catch(() => {})));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

/** About 2,500 SETs of 200 bytes per second until stopped. */
function steadyWriter(c: Redis): { stop: () => Promise<void> } {
  let running = true;
  const value = 'v'.repeat(200);
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const p = c.pipeline();
      for (let j = 0; j < 50; j++) p.set(`load:${(i * 50 + j) % 2000}`, value);
      await p.exec();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** `CONFIG SET name "a b c"` → ['CONFIG', 'SET', 'name', 'a b c']. */
function words(line: string): string[] {
  return [...line.replace(/\s+#.*$/, '').matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

interface PlanJson {
  ok: boolean;
  writeRate: { bytesPerSec: number };
  rdb: { bytes: number; sampledKeys: number };
  checks: { name: string; verdict: string; fix: string[] }[];
}

describe('replicant plan', () => {
  it('flags a too-small backlog and output buffer; its settings then survive the outage', async () => {
    const source = await startRedis({ args: ['--repl-backlog-size', '16kb', '--client-output-buffer-limit', 'replica 64kb 32kb 1'] });
    const target = await startRedis();
    servers.push(source, target);
    const src = source.client();
    await src.call('DEBUG', 'POPULATE', 5000, 'pre', 100);
    const w = steadyWriter(source.client());
    try {
      const r = await runCli(['plan', '-s', source.url, '-t', target.url, '--sample-time', '1s', '--outage', '2s', '--json']);
      expect(r.code).toBe(12);
      const plan = JSON.parse(r.stdout.toString()) as PlanJson;
      expect(plan.ok).toBe(false);
      // 2,500 × ~230 B/s, measured from the network input (no backlog yet): well above 16 KB per 2 s.
      expect(plan.writeRate.bytesPerSec).toBeGreaterThan(100_000);
      // The estimate from sampled DUMP sizes is near the real file.
      await src.call('SAVE');
      const real = statSync(join(source.dir, 'dump.rdb')).size;
      expect(plan.rdb.sampledKeys).toBeGreaterThan(150);
      expect(plan.rdb.bytes).toBeGreaterThan(real * 0.6);
      expect(plan.rdb.bytes).toBeLessThan(real * 1.6);
      const byName = new Map(plan.checks.map((c) => [c.name, c]));
      expect(byName.get('backlog')?.verdict).toBe('fail');
      expect(byName.get('output buffer')?.verdict).toBe('fail');
      expect(byName.get('compatibility')?.verdict).toBe('ok');
      expect(byName.get('target permissions')?.verdict).toBe('ok');
      const fixes = plan.checks.flatMap((c) => c.fix);
      expect(fixes.some((f) => f.startsWith('CONFIG SET repl-backlog-size '))).toBe(true);
      expect(fixes.some((f) => f.startsWith('CONFIG SET client-output-buffer-limit "replica '))).toBe(true);
      for (const f of fixes) expect(await src.call(...(words(f) as [string, ...string[]]))).toBe('OK');

      // Re-planned with the new settings: nothing fails.
      const again = await runCli(['plan', '-s', source.url, '-t', target.url, '--sample-time', '1s', '--outage', '2s']);
      expect(again.stdout.toString()).toMatch(/plan: the sync should work/);
      expect(again.code).toBe(0);

      // A full sync under the load, a 2 s outage under the load, then a resume: partial.
      const first = runSync({ source: source.url, target: target.url });
      syncs.push(first);
      await waitCaughtUp(first.session, src);
      await first.stop();
      await new Promise((res) => setTimeout(res, 2000));
      const second = runSync({ source: source.url, target: target.url });
      syncs.push(second);
      await waitCaughtUp(second.session, src);
      expect(await infoField(src, 'stats', 'sync_full')).toBe(1);
      expect(await infoField(src, 'stats', 'sync_partial_ok')).toBe(1);
      expect(second.session.status().fullSyncs).toBe(0);
    } finally {
      await w.stop();
    }
    const last = syncs[syncs.length - 1]!;
    await waitCaughtUp(last.session, src);
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(src));
  }, 60_000);

  it('flags a target whose maxmemory cannot hold the data, with the setting to raise', async () => {
    const source = await startRedis();
    const target = await startRedis({ args: ['--maxmemory', '2mb'] });
    servers.push(source, target);
    await source.client().call('DEBUG', 'POPULATE', 20000, 'big', 200);
    // Rates measured by replicant bench: 20,000 keys at 1,000 keys/s take 20 s.
    const bench = join(source.dir, 'bench.json');
    writeFileSync(bench, JSON.stringify({ replicant: { fullSync: { keysPerSec: 1000, mbPerSec: 1 } } }));
    const r = await runCli(['plan', '-s', source.url, '-t', target.url, '--sample-time', '200ms', '--outage', '1s', '--from-bench', bench]);
    expect(r.code).toBe(12);
    const out = r.stdout.toString();
    expect(out).toMatch(/full sync +about 20s at 1000 keys\/s or 1\.0 MiB\/s/);
    expect(out).toMatch(/\[FAIL\] target memory: maxmemory 2mb, .* writes will be refused \(OOM\)/);
    expect(out).toMatch(/CONFIG SET maxmemory \d+mb +# on the target/);
    expect(out).toMatch(/\[ok {2}\] backlog/);
    writeFileSync(bench, '{"not":"a bench result"}');
    const bad = await runCli(['plan', '-s', source.url, '-t', target.url, '--from-bench', bench]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected the output of replicant bench --json');
  }, 30_000);
});
