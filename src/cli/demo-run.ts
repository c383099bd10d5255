/** The work behind `replicant demo` (defined in ./demo.ts), loaded only when that command runs. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, ReplicantError } from '../errors.js';
import { isOwnKey } from '../checkpoint/reserved.js';
import { startLocalServer, type LocalServer } from '../bench/local-servers.js';
import type { DemoOptions } from './demo.js';

/** Keys of the target (Replicant's own aside) and how many of them do not match `glob`. */
async function keysOutside(c: { scan(cursor: string, countToken: 'COUNT', count: number): Promise<[string, string[]]> }, glob: string): Promise<{ total: number; outside: number }> {
  const { GlobMatcher } = await import('../export/glob.js');
  const m = new GlobMatcher(glob);
  let total = 0;
  let outside = 0;
  let cursor = '0';
  do {
    const [next, keys] = await c.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      if (isOwnKey(Buffer.from(k, 'latin1'))) continue;
      total++;
      if (!m.matches(Buffer.from(k))) outside++;
    }
  } while (cursor !== '0');
  return { total, outside };
}

export async function runDemo(o: DemoOptions): Promise<void> {
  const { Redis } = await import('ioredis');
  const { SyncSession } = await import('../sync/session.js');
  const { Verifier } = await import('../verify/verifier.js');
  const { formatReport } = await import('../verify/report.js');
  const { createLogger } = await import('../observe/logger.js');
  const { ProgressReporter, formatCount } = await import('../observe/progress.js');
  const logger = createLogger({ level: 'warn' });
  const dir = mkdtempSync(join(tmpdir(), 'replicant-demo-'));
  const servers: LocalServer[] = [];
  const clients: InstanceType<typeof Redis>[] = [];
  const say = (line: string) => process.stderr.write(`${line}\n`);
  try {
    for (const name of ['source', 'target']) {
      const d = join(dir, name);
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d);
      servers.push(await startLocalServer(d));
    }
    const [src, tgt] = servers.map((s) => {
      const c = new Redis({ port: s.port, host: '127.0.0.1', maxRetriesPerRequest: 20, retryStrategy: (n) => (n > 50 ? null : 100) });
      c.on('error', () => {});
      clients.push(c);
      return c;
    }) as [InstanceType<typeof Redis>, InstanceType<typeof Redis>];
    await src.ping();
    await tgt.ping();
    const sourceUrl = `redis://127.0.0.1:${servers[0]!.port}`;
    const targetUrl = `redis://127.0.0.1:${servers[1]!.port}`;
    say(`source ${sourceUrl}, target ${targetUrl} (temporary, in ${dir})`);
    await src.call('DEBUG', 'POPULATE', o.keys, 'demo:string', 32);
    await src.rpush('demo:list', ...Array.from({ length: 5000 }, (_, i) => `item-${i}`));
    await src.hset('demo:hash', ...Array.from({ length: 2000 }, (_, i) => [`field-${i}`, `value-${i}`]).flat());
    await src.zadd('demo:zset', ...Array.from({ length: 2000 }, (_, i) => [String(i / 7), `member-${i}`]).flat());
    await src.xadd('demo:stream', '*', 'event', 'created');
    say(`source filled: ${formatCount(o.keys + 4)} keys of every type`);

    const partial = o.filter === undefined ? {} : { keys: [o.filter] };
    if (o.filter !== undefined) say(`partial sync: only keys matching ${JSON.stringify(o.filter)}`);
    const session = new SyncSession({ source: sourceUrl, target: targetUrl, writeMode: o.writeMode, logger, partial });
    const progress = new ProgressReporter(() => {
      const s = session.status();
      const line = s.phase === 'full-sync' && s.rdb
        ? `keys ${formatCount(s.rdb.keys)}  ${formatCount(s.rdb.keysPerSec)} keys/s`
        : `applied offset ${s.appliedOffset ?? '-'}  ${formatCount(s.opsPerSec)} ops/s  lag ${s.lagMs ?? '-'} ms`;
      return { phase: s.phase, fields: {}, line };
    }, logger, 1000, process.stderr.isTTY === true);
    progress.start();
    const done = session.run();
    let failure: unknown = null;
    done.catch((e: unknown) => { failure = e; });
    await new Promise<void>((resolve, reject) => {
      session.once('fullSyncDone', ({ keys, ms }) => {
        progress.stop();
        say(`snapshot copied: ${formatCount(keys)} keys in ${ms} ms`);
        resolve();
      });
      done.then(() => reject(new ReplicantError('DEMO', 'sync ended before the snapshot was copied', ExitCode.INTERNAL)), reject);
    });
    say(`live writes on the source for ${o.duration} ms (INCR, LPUSH, HINCRBY, XADD, MULTI/EXEC)...`);
    progress.start();
    const started = Date.now();
    let writes = 0;
    while (Date.now() - started < o.duration && failure === null) {
      const p = src.pipeline();
      for (let i = 0; i < 50; i++) {
        p.incr('demo:counter').lpush('demo:list', `live-${writes}`).hincrby('demo:hash', 'hits', 1).xadd('demo:stream', '*', 'n', String(writes));
        writes++;
      }
      await p.exec();
      await src.multi().incr('demo:tx:a').incr('demo:tx:b').exec();
    }
    // Wait until the target has applied everything the source wrote, then stop.
    const masterOffset = async () => Number(/master_repl_offset:(\d+)/.exec((await src.info('replication')) as string)?.[1] ?? -1);
    const deadline = Date.now() + 60_000;
    while (failure === null && Date.now() < deadline && (session.status().appliedOffset ?? -1) < (await masterOffset())) {
      await new Promise((r) => setTimeout(r, 50));
    }
    progress.stop();
    session.stop();
    await done.catch(() => undefined);
    if (failure !== null) throw failure;
    say(`caught up: ${formatCount(writes * 4)} live commands applied; verifying...`);
    const report = await new Verifier({ source: sourceUrl, target: targetUrl, logger, partial }).run();
    process.stdout.write(formatReport(report));
    if (!report.equal) process.exitCode = ExitCode.DIFFERENT;
    if (o.filter !== undefined) {
      // Verify compares the selected keys; also show that nothing outside them was copied.
      const outside = await keysOutside(tgt, o.filter);
      say(`target: ${formatCount(outside.total)} keys, ${outside.outside} outside the filter`);
      if (outside.outside > 0) process.exitCode = ExitCode.DIFFERENT;
    }
  } finally {
    for (const c of clients) c.disconnect();
    for (const s of servers) s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
