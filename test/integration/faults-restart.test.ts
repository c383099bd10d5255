/**
 * `replicant sync` as a child process, killed with SIGKILL at random moments (inside the RDB
 * transfer and while streaming) under a non-idempotent load, and restarted each time. The
 * checkpoint on the target is written in the same MULTI/EXEC as each batch, so the end result
 * must be exactly the source (DEBUG DIGEST), and once a full sync has completed every restart
 * must be a partial resync (the source's `sync_full` never grows again).
 *
 * The kill moments come from a seeded PRNG; set FAULT_SEED to replay a failing run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { infoField, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { populate, rng, startLoad, type Load } from '../helpers/dataset.js';
import { digestWithoutReserved, masterOffset, targetCheckpoint } from '../helpers/sync.js';
import { CLI, ROOT, ensureBuilt } from '../helpers/cli.js';

/** One JSON log line of the CLI (pino). */
type LogLine = { msg: string; level: number } & Record<string, unknown>;

/** A running `replicant sync` with its log lines parsed as they arrive. */
class SyncProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  /** stderr lines that are not JSON (the final `replicant: ...` error line). */
  readonly plain: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private rest = '';
  private waiters: Array<() => void> = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (d: Buffer) => this.onData(d.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => this.wake());
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  has(msg: string | RegExp): boolean {
    return this.logs.some((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
  }

  find(msg: string | RegExp): LogLine | undefined {
    return this.logs.find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
  }

  /** The last lines, for failure messages. */
  tail(n = 15): string {
    return [...this.logs.slice(-n).map((l) => JSON.stringify(l)), ...this.plain.slice(-3)].join('\n');
  }

  /** Resolves with the first log line matching `pred` (past or future); rejects on exit or timeout. */
  async waitLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 60_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.find(pred);
      if (hit) return hit;
      if (!this.running) throw new Error(`replicant exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${this.tail()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 1000));
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
  }

  async kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  private onData(text: string): void {
    const lines = (this.rest + text).split('\n');
    this.rest = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.plain.push(line);
      }
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

const servers: RedisServer[] = [];
const procs: SyncProcess[] = [];
const loads: Load[] = [];
afterEach(async () => {
  await Promise.all(loads.splice(0).map((l) => l.stop().catch(() => 0)));
  await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);



const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('replicant sync killed and restarted (CLI)', () => {
  it('SIGKILL during the RDB and while streaming, under load: exactly the source at the end, no full sync after the first completed one; SIGTERM exits 0 with the applied offset', async () => {
    const seed = Number(process.env['FAULT_SEED'] ?? Math.floor(Math.random() * 1e6));
    const rand = rng(seed);
    const why = (what: string) => `${what} (FAULT_SEED=${seed})`;

    const source = await startRedis({ args: ['--repl-backlog-size', '64mb', '--repl-diskless-sync-delay', '0'] });
    servers.push(source);
    const target = await startRedis();
    servers.push(target);
    const src = source.client();
    const tgt = target.client();
    await populate(src, { seed: 5, smallKeys: 200 });
    // Enough keys that the full sync takes a moment, so kills land inside it.
    await src.call('DEBUG', 'POPULATE', '200000', 'bulk', '64');
    const load = startLoad(source.client(), { delayMs: 1 });
    loads.push(load);

    const args = ['sync', '--source', source.url, '--target', target.url, '--progress-interval', '100ms', '--lease-ttl', '1s'];
    const start = () => {
      const p = new SyncProcess(args);
      procs.push(p);
      return p;
    };

    // 1. Kills inside the first full syncs: each restart begins the full sync again.
    let midRdbKills = 0;
    let lastKillAfterRdb = false;
    for (let i = 0; i < 2; i++) {
      const p = start();
      const threshold = 20_000 + Math.floor(rand() * 120_000);
      await p.waitLog((l) => (l.msg === 'progress' && l.phase === 'full-sync' && Number(l['keys']) >= threshold) || l.msg === 'full sync applied', `${threshold} keys of the RDB applied`);
      const wasMidRdb = !p.has('full sync applied');
      await p.kill('SIGKILL');
      if (wasMidRdb) midRdbKills++;
      lastKillAfterRdb = !wasMidRdb;
    }
    expect(midRdbKills, why('kills that landed inside the RDB transfer')).toBeGreaterThanOrEqual(1);
    const cpAfterRdbKills = await targetCheckpoint(tgt);
    if (midRdbKills === 2) expect(cpAfterRdbKills?.state, why('checkpoint after a kill inside the RDB')).toBe('full-sync');

    // 2. Let a full sync complete; from here on the source must never do another one.
    // (When the last kill came after a completed full sync, this run resumes it instead.)
    let p = start();
    await p.waitLog((l) => l.msg === 'full sync applied' || (lastKillAfterRdb && /^resumed with a partial resync/.test(String(l.msg))), 'the full sync to complete', 90_000);
    const fullSyncs = await infoField(src, 'stats', 'sync_full');
    const partialBefore = await infoField(src, 'stats', 'sync_partial_ok');

    // 3. Kills while streaming (and some while connecting), at random moments; one SIGTERM.
    const kills = 7;
    let resumedRuns = 0;
    let runsAfterFullSync = 0;
    for (let i = 0; i < kills; i++) {
      const graceful = i === 3;
      // A SIGTERM before the CLI has installed its handler would just kill it: stop gracefully
      // only once it streams (and then under load, with commands in flight).
      // Every other run is killed only once it resumed (a restart may wait up to --lease-ttl for
      // the lease of the killed one): at least three resumes however slow the machine is.
      if (graceful || i % 2 === 1) await p.waitLog((l) => /resumed with a partial resync/.test(l.msg), 'a resume before the kill');
      await sleep(!graceful && rand() < 0.25 ? Math.floor(rand() * 150) : 200 + Math.floor(rand() * 1300));
      const exit = await p.kill(graceful ? 'SIGTERM' : 'SIGKILL');
      if (graceful) {
        expect(exit.code, why(`SIGTERM exit code; log:\n${p.tail()}`)).toBe(0);
        const stopped = p.find('stopped');
        expect(stopped, why('a "stopped" log line after SIGTERM')).toBeDefined();
        // The logged offset is the one the target holds in its checkpoint.
        const cp = await targetCheckpoint(tgt);
        expect(stopped!['appliedOffset'], why('offset in the "stopped" line')).toBe(cp?.offset);
      } else {
        expect(exit.signal).toBe('SIGKILL');
      }
      if (i > 0) {
        runsAfterFullSync++;
        if (p.has(/resumed with a partial resync/)) resumedRuns++;
        expect(p.has('phase: full-sync'), why(`run ${i} after the full sync began a full sync:\n${p.tail()}`)).toBe(false);
      }
      expect(await infoField(src, 'stats', 'sync_full'), why(`source sync_full after kill ${i + 1}`)).toBe(fullSyncs);
      p = start();
    }

    // 4. Final run: stop the load, catch up, stop with SIGTERM.
    const sent = await load.stop();
    expect(sent).toBeGreaterThan(1000);
    await p.waitLog((l) => /resumed with a partial resync/.test(l.msg), 'the final run to resume');
    await waitFor(async () => {
      const cp = await targetCheckpoint(tgt);
      return cp !== null && cp.state === 'streaming' && cp.offset >= (await masterOffset(src));
    }, 'the target checkpoint to reach the source offset', 60_000);
    const exit = await p.kill('SIGTERM');
    expect(exit.code, why(`final SIGTERM exit code; log:\n${p.tail()}`)).toBe(0);
    runsAfterFullSync++;
    resumedRuns++;
    const stopped = p.find('stopped');
    const finalOffset = await masterOffset(src);
    expect(stopped?.['appliedOffset'], why('offset in the final "stopped" line')).toBe(finalOffset);
    expect((await targetCheckpoint(tgt))?.offset).toBe(finalOffset);
    expect(p.has('phase: full-sync')).toBe(false);

    expect(await infoField(src, 'stats', 'sync_full'), why('source sync_full at the end')).toBe(fullSyncs);
    const partialDelta = (await infoField(src, 'stats', 'sync_partial_ok')) - partialBefore;
    // Every run that logged a resume was a partial resync on the source (a run killed between
    // the +CONTINUE and its log line counts on the source only).
    expect(partialDelta, why('source sync_partial_ok growth')).toBeGreaterThanOrEqual(resumedRuns);
    expect(partialDelta).toBeLessThanOrEqual(runsAfterFullSync);
    expect(resumedRuns).toBeGreaterThanOrEqual(3);

    expect(await digestWithoutReserved(tgt), why('target digest')).toBe(await digestWithoutReserved(src));
  });
});
