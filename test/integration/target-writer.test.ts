import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { TargetCommandError, TargetError, TargetExecAbortError, TargetWriter } from '../../src/writer/index.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let srv: RedisServer;
let admin: Redis;
const writers: TargetWriter[] = [];
const open = async (opts: Parameters<typeof TargetWriter.connect>[1] = {}) => {
  const w = await TargetWriter.connect({ host: '127.0.0.1', port: srv.port }, opts);
  writers.push(w);
  return w;
};

beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => {
  for (const w of writers) w.destroy();
  await srv.stop();
});
beforeEach(async () => {
  await admin.flushall();
});

describe('TargetWriter: connect and probe', () => {
  it('probes version, RDB version, keyspace and databases', async () => {
    await admin.set('a', '1');
    await admin.select(3);
    await admin.set('b', '1');
    await admin.select(0);
    const w = await open();
    expect(w.info).toMatchObject({ version: '7.0.15', major: 7, minor: 0, rdbVersion: 10, valkey: false, cluster: false, dbsize: 2, databases: 16, modules: [] });
    await w.close();
  });

  it('authenticates, and names the target when the password is wrong', async () => {
    const secured = await startRedis({ password: 's3cret' });
    try {
      const w = await TargetWriter.connect({ host: '127.0.0.1', port: secured.port, password: 's3cret' });
      expect(await w.call(['PING'])).toBe('PONG');
      await w.close();
      const bad = TargetWriter.connect({ host: '127.0.0.1', port: secured.port, password: 'nope' });
      await expect(bad).rejects.toThrow(new RegExp(`target 127\\.0\\.0\\.1:${secured.port}: authentication failed: WRONGPASS`));
      await expect(TargetWriter.connect({ host: '127.0.0.1', port: secured.port })).rejects.toThrow(/NOAUTH/);
    } finally {
      await secured.stop();
    }
  });

  it('fails fast on a refused connection and times out on a silent peer', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      await expect(TargetWriter.connect({ host: '127.0.0.1', port }, { connectTimeoutMs: 300 })).rejects.toThrow(`target 127.0.0.1:${port}: no connection (connect, AUTH and probe) within 300 ms`);
    } finally {
      silent.close();
    }
    const err = await TargetWriter.connect({ host: '127.0.0.1', port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetError);
    expect((err as Error).message).toMatch(new RegExp(`cannot connect to target 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });
});

describe('TargetWriter: pipelined units', () => {
  it('applies 200k SETs in units of 1000, reporting every offset in order', async () => {
    const w = await open();
    const seen: number[] = [];
    w.on('applied', (o) => seen.push(o));
    const N = 200_000;
    const B = 1000;
    for (let i = 0; i < N; i += B) {
      const cmds: string[][] = [];
      for (let j = i; j < i + B; j++) cmds.push(['SET', `k:${j}`, `v:${j}`]);
      // Offsets as a replication stream would give them: the end of each unit.
      if (!w.submit({ payload: encodeCommands(cmds), count: B, offset: 1_000 + i + B })) await w.waitDrain();
    }
    await w.flush();
    expect(seen.length).toBe(N / B);
    expect(seen).toEqual(Array.from({ length: N / B }, (_, k) => 1_000 + (k + 1) * B));
    expect(w.appliedOffset).toBe(1_000 + N);
    expect(w.stats).toMatchObject({ commands: N, units: N / B, errors: 0 });
    expect(await admin.dbsize()).toBe(N);
    for (let i = 0; i < N; i += 5000) {
      const keys = Array.from({ length: 1000 }, (_, j) => `k:${i + j}`);
      expect(await admin.mget(keys)).toEqual(keys.map((k) => `v:${k.slice(2)}`));
    }
    await w.close();
  });

  it('takes a changed in-flight budget from the next submit on', async () => {
    const w = await open({ maxInflightBytes: 1 << 20 });
    const unit = (i: number) => ({ payload: encodeCommand(['SET', `k${i}`, 'x'.repeat(500)]), count: 1 });
    expect(w.submit(unit(0))).toBe(true);
    w.setMaxInflight(1000);
    expect(w.maxInflightBytes).toBe(1000);
    // Over the lowered budget now (two units of ≈ 520 bytes): the caller must wait.
    expect(w.submit(unit(1))).toBe(false);
    await w.waitDrain();
    expect(w.inflightBytes).toBeLessThanOrEqual(500);
    expect(() => w.setMaxInflight(-1)).toThrow(RangeError);
    await w.flush();
    expect(await admin.dbsize()).toBe(2);
    await w.close();
  });

  it('writes payloads given as several buffers, binary-safe, and completes empty units in order', async () => {
    const w = await open();
    const seen: number[] = [];
    w.on('applied', (o) => seen.push(o));
    const key = Buffer.from([0, 1, 0x0d, 0x0a, 0xfe]);
    const value = Buffer.alloc(300_000, 0xab);
    w.submit({ payload: [encodeCommand(['SET', key, value]), encodeCommand(['RPUSH', 'l', 'a', 'b'])], count: 2, offset: 10 });
    w.submit({ payload: [], count: 0, offset: 11 }); // e.g. a PING from the source: no command, but the offset moves
    w.submit({ payload: encodeCommand(['RPUSH', 'l', 'c']), count: 1, offset: 12 });
    w.submit({ payload: [], count: 0, offset: 13 });
    await w.flush();
    expect(seen).toEqual([10, 11, 12, 13]);
    const got = await admin.getBuffer(key);
    // Buffer#equals: vitest's deep equality is slow on 300 KB.
    expect(got?.equals(value)).toBe(true);
    expect(await admin.lrange('l', 0, -1)).toEqual(['a', 'b', 'c']);
    // An empty unit on an idle writer completes at once.
    w.submit({ payload: [], count: 0, offset: 14 });
    expect(w.appliedOffset).toBe(14);
    await w.close();
  });

  it('orders call() with units and rejects a call error without failing the writer', async () => {
    const w = await open({ onError: 'fail' });
    w.submit({ payload: encodeCommand(['SET', 'x', '41']), count: 1, offset: 1 });
    expect(await w.call(['INCR', 'x'])).toBe(42);
    const err = await w.call(['HGET', 'x', 'f']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetCommandError);
    expect((err as TargetCommandError).message).toMatch(/rejected HGET \(key "x"\).*WRONGTYPE/);
    expect(await w.call(['GET', 'x'])).toBe('42');
    expect(await w.call(['GET', 'missing'])).toBeNull();
    expect(await w.call(['LRANGE', 'missing', 0, -1])).toEqual([]);
    await w.flush();
    expect(w.appliedOffset).toBe(1);
    await w.close();
  });
});

describe('TargetWriter: atomic units', () => {
  it('wraps units in MULTI/EXEC and reports their offsets', async () => {
    const w = await open();
    const seen: number[] = [];
    w.on('applied', (o) => seen.push(o));
    w.submit({ payload: encodeCommands([['SET', 'a', '1'], ['INCR', 'a'], ['SET', '__ckpt', '100']]), count: 3, atomic: true, offset: 100 });
    w.submit({ payload: encodeCommands([['INCR', 'a']]), count: 1, offset: 110 });
    w.submit({ payload: encodeCommands([['SELECT', '2'], ['SET', 'b', 'x'], ['SELECT', '0']]), count: 3, atomic: true, offset: 120 });
    await w.flush();
    expect(seen).toEqual([100, 110, 120]);
    expect(await admin.get('a')).toBe('3');
    expect(await admin.get('__ckpt')).toBe('100');
    await admin.select(2);
    expect(await admin.get('b')).toBe('x');
    await admin.select(0);
    await w.close();
  });

  it('reports a runtime error inside EXEC as a command error under skip, and applies the rest', async () => {
    const w = await open({ onError: 'skip' });
    const errors: TargetCommandError[] = [];
    w.on('commandError', (e) => errors.push(e));
    await admin.lpush('list', 'x');
    w.submit({ payload: encodeCommands([['SET', 'a', '1'], ['INCR', 'list'], ['SET', 'b', '2']]), count: 3, atomic: true, offset: 7 });
    await w.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ command: 'INCR', key: 'list', offset: 7, index: 1 });
    expect(errors[0]!.reply).toMatch(/^WRONGTYPE/);
    expect(w.appliedOffset).toBe(7);
    expect(w.stats.errors).toBe(1);
    expect(await admin.mget('a', 'b')).toEqual(['1', '2']);
    await w.close();
  });

  it('treats EXECABORT as fatal whatever the policy, naming the rejected command, and applies nothing of the unit', async () => {
    const w = await open({ onError: 'skip' });
    const fatal: TargetError[] = [];
    w.on('error', (e) => fatal.push(e));
    w.submit({ payload: encodeCommand(['SET', 'before', '1']), count: 1, offset: 1 });
    w.submit({ payload: encodeCommands([['SET', 'a', '1'], ['NOSUCHCMD', 'k'], ['SET', 'c', '3', 'EX']]), count: 3, atomic: true, offset: 2 });
    const flushed = w.flush();
    await expect(flushed).rejects.toBeInstanceOf(TargetExecAbortError);
    expect(fatal).toHaveLength(1);
    const e = fatal[0] as TargetExecAbortError;
    expect(e.reply).toMatch(/^EXECABORT/);
    expect(e.rejected.map((r) => [r.index, r.command])).toEqual([[1, 'NOSUCHCMD']]);
    expect(e.message).toMatch(/aborted an atomic unit completing offset 2 \(nothing of it was applied\).*#1 NOSUCHCMD \(key "k"\): ERR unknown command/);
    expect(w.appliedOffset).toBe(1);
    expect(await admin.get('before')).toBe('1');
    expect(await admin.exists('a', 'c')).toBe(0);
    expect(() => w.submit({ payload: encodeCommand(['PING']), count: 1 })).toThrow(TargetExecAbortError);
  });
});

describe('TargetWriter: lifecycle', () => {
  it('close() waits for every reply, says QUIT, and refuses work afterwards', async () => {
    const w = await open();
    const name = `tw-${Date.now()}`;
    await w.call(['CLIENT', 'SETNAME', name]);
    for (let i = 0; i < 50; i++) w.submit({ payload: encodeCommand(['RPUSH', 'l', i]), count: 1, offset: i });
    await w.close();
    expect(w.appliedOffset).toBe(49);
    expect(await admin.llen('l')).toBe(50);
    expect(String(await admin.client('LIST'))).not.toContain(name);
    expect(() => w.submit({ payload: encodeCommand(['PING']), count: 1 })).toThrow(/writer is closed/);
    await expect(w.call(['PING'])).rejects.toThrow(/writer is closed/);
  });

  it("fails the writer when an 'applied' listener throws (the reply stream is out of step)", async () => {
    const w = await open();
    w.on('applied', () => { throw new Error('listener bug'); });
    w.submit({ payload: encodeCommand(['SET', 'a', '1']), count: 1, offset: 1 });
    await expect(w.flush()).rejects.toThrow(`target 127.0.0.1:${srv.port}: reply handling failed: listener bug`);
  });

  it('rejects a negative or fractional count', async () => {
    const w = await open();
    expect(() => w.submit({ payload: encodeCommand(['PING']), count: -1 })).toThrow(/count must be a non-negative integer/);
    expect(() => w.submit({ payload: encodeCommand(['PING']), count: 0.5 })).toThrow(/count must be a non-negative integer/);
    await w.close();
  });
});
