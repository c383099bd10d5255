/**
 * Big values outside the snapshot, against real servers, with the peak RSS (VmHWM) of the
 * Replicant process measured (goal: under 150 MB):
 *
 * - `replicant sync` streaming a 256 MB `SET` of the live stream (and big arguments of other
 *   commands: a SET with options after its value, HSET, APPEND, RPUSH) to a standalone target,
 *   with the checkpoint on the target: the value is relayed in pieces, never held whole, still
 *   inside the unit's MULTI … EXEC with its checkpoint; the copy equals the source;
 * - `replicant verify` of a 256 MB key on a target without DEBUG (`--enable-debug-command no`,
 *   so no DIGEST-VALUE: the DUMP path): big values are compared in ranges, not DUMPed whole;
 *   an equal copy exits 0, one byte changed in the middle exits 8 and names the byte.
 */
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { procPeakRssKb } from '../../src/bench/stats.js';
import { ensureBuilt, startCli, type BackgroundCli } from '../helpers/cli.js';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';

const MiB = 1024 * 1024;
const BIG = 256 * MiB;
/** Peak RSS goal of the Replicant process, in MB. */
const GOAL_MB = 150;

const servers: RedisServer[] = [];
const dirs: string[] = [];
let source: RedisServer;

beforeAll(async () => {
  await ensureBuilt();
  // A 256 MB command must not make the source drop its replica (the default hard limit is 256mb).
  source = await startRedis({ args: ['--client-output-buffer-limit', 'replica 0 0 0', '--repl-backlog-size', '1mb'] });
  servers.push(source);
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'replicant-big-stream-'));
  dirs.push(d);
  return d;
}

/** Samples the process's VmHWM until it exits; resolves with its exit code and the peak in MB. */
async function runMeasured(cli: BackgroundCli, until?: () => Promise<void>): Promise<{ code: number; peakMB: number }> {
  let peakKb = 0;
  let exited = false;
  void cli.code.then(() => (exited = true));
  const timer = setInterval(() => {
    if (!exited) peakKb = Math.max(peakKb, procPeakRssKb(cli.pid) ?? 0);
  }, 50);
  try {
    if (until !== undefined) {
      await until();
      peakKb = Math.max(peakKb, procPeakRssKb(cli.pid) ?? 0);
      cli.kill('SIGTERM');
    }
    const code = await cli.code;
    return { code, peakMB: peakKb / 1024 };
  } finally {
    clearInterval(timer);
  }
}

/** Random bytes: nothing for LZF to compress, so a DUMP payload is as big as the value. */
function bigValue(size: number): Buffer {
  return randomFillSync(Buffer.allocUnsafe(size));
}

async function digestValues(c: Redis, keys: string[]): Promise<string[]> {
  return (await c.call('DEBUG', 'DIGEST-VALUE', ...keys)) as string[];
}

describe('big values outside the snapshot', () => {
  it('sync relays a 256 MB SET of the live stream in pieces (peak RSS under 150 MB), inside its unit with the checkpoint', async () => {
    const target = await startRedis();
    servers.push(target);
    const src = source.client();
    const tgt = target.client();
    await src.set('before', '0');
    const cli = startCli(['sync', '--no-progress', '-s', source.url, '-t', target.url, '--spool-dir', tempDir(), '--name', 'big-stream'], 300_000);
    const keys = ['big', 'opts', 'h', 'app', 'list', 'small'];
    const run = runMeasured(cli, async () => {
      await waitFor(() => cli.stderr().includes('"phase: streaming"') || cli.stderr().includes('phase: streaming'), 'streaming', 60_000);
      await src.set('small', 'a');
      let v: Buffer | null = bigValue(BIG);
      await src.set('big', v);
      v = null;
      // Arguments after the big one, and other commands with one big argument.
      await src.set('opts', bigValue(3 * MiB), 'PX', 3_600_000);
      await src.hset('h', 'f', bigValue(2 * MiB), 'g', 'small');
      await src.append('app', bigValue(5 * MiB));
      await src.append('app', bigValue(MiB + 7));
      await src.rpush('list', 'x', bigValue(2 * MiB + 1), 'y');
      await src.set('small', 'b');
      await waitFor(async () => (await tgt.get('small')) === 'b', 'the last write on the target', 240_000, 200);
    });
    const { code, peakMB } = await run;
    expect(code, cli.stderr().slice(-3000)).toBe(0);
    expect(await digestValues(tgt, keys)).toEqual(await digestValues(src, keys));
    expect(await tgt.strlen('big')).toBe(BIG);
    expect(Math.abs((await tgt.pttl('opts')) - (await src.pttl('opts')))).toBeLessThan(60_000);
    // The unit carrying the big command also carried the checkpoint (GETSET proof held: no "lost" line).
    expect(cli.stderr()).not.toMatch(/target lost|copy again/i);
    console.log(`sync of a 256 MB SET in the stream: peak RSS ${peakMB.toFixed(1)} MB`);
    expect(peakMB).toBeLessThan(GOAL_MB);
  }, 360_000);

  it('a partial sync streams a kept big value, drops a left-out one, assembles a renamed one; inside a source transaction too', async () => {
    const target = await startRedis();
    servers.push(target);
    const src = source.client();
    const tgt = target.client();
    const cli = startCli(['sync', '--no-progress', '-s', source.url, '-t', target.url, '--spool-dir', tempDir(), '--name', 'big-partial', '--key', 'keep:*', '--key', 'old:*', '--rename-prefix', 'old:fresh'], 120_000);
    const { code } = await runMeasured(cli, async () => {
      await waitFor(() => cli.stderr().includes('phase: streaming'), 'streaming', 60_000);
      await src.set('keep:a', bigValue(3 * MiB));
      await src.set('drop:a', bigValue(3 * MiB));
      await src.set('old:a', bigValue(2 * MiB));
      await src.multi().set('keep:tx', bigValue(2 * MiB)).set('keep:tx2', 'x').exec();
      await src.set('keep:last', '1');
      await waitFor(async () => (await tgt.get('keep:last')) === '1', 'the last write on the target', 60_000, 100);
    });
    expect(code, cli.stderr().slice(-3000)).toBe(0);
    expect(await digestValues(tgt, ['keep:a', 'keep:tx', 'keep:tx2', 'fresh:a'])).toEqual(await digestValues(src, ['keep:a', 'keep:tx', 'keep:tx2', 'old:a']));
    expect(await tgt.exists('drop:a', 'old:a')).toBe(0);
  }, 180_000);

  it('verify compares a 256 MB key on a target without DEBUG in ranges (peak RSS under 150 MB), and finds one byte changed', async () => {
    const own = await startRedis();
    const target = await startRedis({ args: ['--enable-debug-command', 'no'] });
    servers.push(own, target);
    // The same keys written to both sides (a replication of 256 MB takes long on a busy machine).
    let v: Buffer | null = bigValue(BIG);
    for (const c of [own.client(), target.client()]) {
      await c.set('big2', v);
      await c.set('small', 'v');
    }
    v = null;
    const source = own;
    const same = startCli(['verify', '--no-progress', '-s', source.url, '-t', target.url], 300_000);
    const equal = await runMeasured(same);
    expect(equal.code, same.stderr().slice(-3000)).toBe(0);
    console.log(`verify of a 256 MB key without DEBUG on the target: peak RSS ${equal.peakMB.toFixed(1)} MB`);
    expect(equal.peakMB).toBeLessThan(GOAL_MB);

    await target.client().setrange('big2', 200 * MiB + 5, 'X');
    const diff = startCli(['verify', '--no-progress', '-s', source.url, '-t', target.url, '--json'], 300_000);
    const differs = await runMeasured(diff);
    expect(differs.code, diff.stderr().slice(-3000)).toBe(8);
    expect(differs.peakMB).toBeLessThan(GOAL_MB);
  }, 360_000);
});
