/**
 * `replicant sync` (the CLI) against a fake master that serves broken input: corrupt RDB bytes,
 * a bad CRC, a `$len` that does not match the RDB, a wrong EOF mark, garbage in the command
 * stream after a valid RDB. Each must end the process with exit code 3 and one clear error line
 * naming the offset, and nothing past the bad point may reach the (real) target.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { FAKE_MARK, FAKE_REPLID, fullSyncBytes, startFakeMaster, type FakeMaster, type ScriptStep } from '../helpers/fake-master.js';
import { RdbWriter } from '../helpers/rdb-writer.js';
import { encodeCommands } from '../../src/resp/encode.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { targetCheckpoint } from '../helpers/sync.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

interface Exit {
  code: number | null;
  /** stderr lines that are not JSON log lines. */
  plain: string[];
  stderr: string;
}

/** Run `replicant sync` until it exits (SIGKILL after 20 s: code -1). */
async function runSync(args: string[]): Promise<Exit> {
  const r = await runCli(['sync', ...args], { timeoutMs: 20_000 });
  const plain = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
  return { code: r.code, plain, stderr: r.stderr };
}

async function setup(onPsync: () => ScriptStep[]): Promise<{ fake: FakeMaster; target: RedisServer; tgt: Redis; run: () => Promise<Exit> }> {
  const fake = await startFakeMaster({ onPsync });
  cleanup.push(() => fake.close());
  const target = await startRedis();
  cleanup.push(() => target.stop());
  const tgt = target.client();
  const run = () => runSync(['--source', `redis://127.0.0.1:${fake.port}`, '--target', target.url, '--no-progress', '--read-timeout', '5s']);
  return { fake, target, tgt, run };
}

/** The last error line: exactly one `replicant: ...` line, and it is the last plain line. */
function errorLine(e: Exit): string {
  const lines = e.plain.filter((l) => l.startsWith('replicant:'));
  expect(lines, e.stderr.slice(-2000)).toHaveLength(1);
  expect(lines[0]).not.toContain('\n');
  return lines[0]!;
}

const checkpoint = targetCheckpoint;

/** An RDB with keys a, b, then `bad` bytes at a known offset, then key c. */
function rdbWithBadBytes(bad: Buffer): { rdb: Buffer; badAt: number } {
  const w = new RdbWriter(10).aux('redis-ver', '7.0.15').selectDb(0).resizeDb(3, 0).stringKey('a', '1').stringKey('b', '2');
  const badAt = w.length;
  w.raw(bad).stringKey('c', '3');
  return { rdb: w.end(), badAt };
}

function goodRdb(): Buffer {
  return new RdbWriter(10).aux('redis-ver', '7.0.15').selectDb(0).resizeDb(2, 0).stringKey('a', '1').stringKey('b', '2').end();
}

const OFFSET = 1000;

describe('replicant sync against a fake master serving broken input', () => {
  for (const framing of ['length', 'eof'] as const) {
    it(`an unknown RDB opcode (${framing} framing): exit 3, the error names the RDB byte, nothing after it applied, no resumable checkpoint`, async () => {
      const { rdb, badAt } = rdbWithBadBytes(Buffer.from([0x77]));
      const stream = encodeCommands([['SELECT', '0'], ['SET', 'after', 'x']]);
      const { fake, tgt, run } = await setup(() => [fullSyncBytes({ offset: OFFSET, rdb, framing, stream })]);
      const exit = await run();
      expect(exit.code, exit.stderr.slice(-2000)).toBe(3);
      const line = errorLine(exit);
      expect(line).toMatch(/^replicant: RDB: /);
      expect(line).toContain(`at byte ${badAt}`);
      expect(await tgt.exists('c', 'after')).toBe(0);
      const cp = await checkpoint(tgt);
      expect(cp === null || cp.state === 'full-sync', JSON.stringify(cp)).toBe(true);
      // Corrupt input is not retried in a loop.
      expect(fake.connections).toBe(1);
    });
  }

  it('a corrupt value (a ziplist blob that is not one): exit 3 naming the byte and the key, no key after it applied', async () => {
    const w = new RdbWriter(10).aux('redis-ver', '7.0.15').selectDb(0).resizeDb(3, 0).stringKey('a', '1');
    const keyAt = w.length;
    // Type 10 = list as a ziplist; the blob's header claims 1000 bytes but it has 11.
    w.key(10, 'badlist').str(Buffer.from([0xe8, 0x03, 0, 0, 0x0a, 0, 0, 0, 0x01, 0x00, 0xff]));
    const blobEnd = w.length;
    const rdb = w.stringKey('c', '3').end();
    const { fake, tgt, run } = await setup(() => [fullSyncBytes({ offset: OFFSET, rdb, framing: 'eof', stream: encodeCommands([['SET', 'after', 'x']]) })]);
    const exit = await run();
    expect(exit.code, exit.stderr.slice(-2000)).toBe(3);
    const line = errorLine(exit);
    expect(line).toMatch(/^replicant: RDB: /);
    expect(line).toContain('(key "badlist")');
    const at = Number(/at byte (\d+)/.exec(line)?.[1]);
    expect(at).toBeGreaterThanOrEqual(keyAt);
    expect(at).toBeLessThanOrEqual(blobEnd);
    expect(await tgt.exists('badlist', 'c', 'after')).toBe(0);
    const cp = await checkpoint(tgt);
    expect(cp === null || cp.state === 'full-sync', JSON.stringify(cp)).toBe(true);
    expect(fake.connections).toBe(1);
  });

  it('a bad RDB checksum: exit 3 naming the checksum offset, the partial copy is never marked resumable', async () => {
    const rdb = goodRdb();
    // Flip one bit of the stored CRC-64 (the last 8 bytes).
    rdb[rdb.length - 3]! ^= 0x10;
    const stream = encodeCommands([['SELECT', '0'], ['SET', 'after', 'x']]);
    const { fake, tgt, run } = await setup(() => [fullSyncBytes({ offset: OFFSET, rdb, framing: 'length', stream })]);
    const exit = await run();
    expect(exit.code, exit.stderr.slice(-2000)).toBe(3);
    const line = errorLine(exit);
    expect(line).toMatch(/checksum mismatch/);
    // The offset of the stored checksum (the 8 bytes after the EOF opcode).
    expect(line).toMatch(new RegExp(`at byte ${rdb.length - 8}$`));
    expect(await tgt.exists('after')).toBe(0);
    const cp = await checkpoint(tgt);
    expect(cp === null || cp.state === 'full-sync', JSON.stringify(cp)).toBe(true);
    expect(fake.connections).toBe(1);
  });

  for (const delta of [-5, +5]) {
    it(`a $len ${delta < 0 ? 'shorter' : 'longer'} than the RDB: exit 3 naming both lengths, no stream command applied`, async () => {
      const rdb = goodRdb();
      const stream = encodeCommands([['SELECT', '0'], ['SET', 'after', 'x']]);
      const bytes = Buffer.concat([Buffer.from(`+FULLRESYNC ${FAKE_REPLID} ${OFFSET}\r\n$${rdb.length + delta}\r\n`, 'latin1'), rdb, stream]);
      const { fake, tgt, run } = await setup(() => [bytes]);
      const exit = await run();
      expect(exit.code, exit.stderr.slice(-2000)).toBe(3);
      const line = errorLine(exit);
      expect(line).toMatch(/^replicant: protocol: /);
      expect(line).toContain(String(rdb.length));
      expect(line).toContain(String(rdb.length + delta));
      expect(await tgt.exists('after')).toBe(0);
      const cp = await checkpoint(tgt);
      expect(cp === null || cp.state === 'full-sync', JSON.stringify(cp)).toBe(true);
      expect(fake.connections).toBe(1);
    });
  }

  it('a wrong EOF mark after a diskless RDB: exit 3 naming the transfer byte, no stream command applied', async () => {
    const rdb = goodRdb();
    const wrong = Buffer.from(FAKE_MARK);
    wrong[10] = 0x5a;
    const stream = encodeCommands([['SELECT', '0'], ['SET', 'after', 'x']]);
    const bytes = Buffer.concat([Buffer.from(`+FULLRESYNC ${FAKE_REPLID} ${OFFSET}\r\n$EOF:${FAKE_MARK.toString('latin1')}\r\n`, 'latin1'), rdb, wrong, stream]);
    const { tgt, run } = await setup(() => [bytes]);
    const exit = await run();
    expect(exit.code, exit.stderr.slice(-2000)).toBe(3);
    const line = errorLine(exit);
    expect(line).toMatch(/mark mismatch/);
    expect(line).toContain(`transfer byte ${rdb.length + 10}`);
    expect(await tgt.exists('after')).toBe(0);
    const cp = await checkpoint(tgt);
    expect(cp === null || cp.state === 'full-sync', JSON.stringify(cp)).toBe(true);
  });

  it('garbage in the command stream after a valid RDB: exit 3 naming the stream offset; what came before is applied exactly once, nothing after', async () => {
    const rdb = goodRdb();
    const before = encodeCommands([['SELECT', '0'], ['SET', 's1', 'v1'], ['INCR', 'n'], ['LPUSH', 'l', 'x']]);
    const s2 = encodeCommands([['INCR', 'n']]);
    const garbage = Buffer.from('GARBAGE\r\n', 'latin1');
    const after = encodeCommands([['SET', 's3', 'v3'], ['INCR', 'n']]);
    const badAt = OFFSET + before.length + s2.length + 1;
    const { fake, tgt, run } = await setup(() => [
      fullSyncBytes({ offset: OFFSET, rdb, framing: 'eof', stream: before }),
      // The first commands arrive (and are applied) well before the bad bytes.
      { delayMs: 700 },
      Buffer.concat([s2, garbage, after]),
    ]);
    const exit = await run();
    expect(exit.code, exit.stderr.slice(-2000)).toBe(3);
    const line = errorLine(exit);
    expect(line).toMatch(/^replicant: protocol: /);
    expect(line).toContain(`at stream offset ${badAt}`);

    // The snapshot and the commands before the garbage are there, exactly once.
    expect(await tgt.mget('a', 'b', 's1')).toEqual(['1', '2', 'v1']);
    expect(await tgt.lrange('l', 0, -1)).toEqual(['x']);
    expect(await tgt.exists('s3')).toBe(0);
    // s2 sits in the same read as the garbage: applied or not, the checkpoint must say which.
    const cp = await checkpoint(tgt);
    expect(cp?.state).toBe('streaming');
    const n = Number(await tgt.get('n'));
    if (cp!.offset === OFFSET + before.length) expect(n).toBe(1);
    else {
      expect(cp!.offset).toBe(OFFSET + before.length + s2.length);
      expect(n).toBe(2);
    }
    // The source was told what was applied, never more.
    expect(Math.max(...fake.acks)).toBeLessThanOrEqual(cp!.offset);
    expect(fake.acks).toContain(OFFSET + before.length);
    expect(fake.connections).toBe(1);
  });
});
