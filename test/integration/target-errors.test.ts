import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { TargetCommandError, TargetError, TargetWriter } from '../../src/writer/index.js';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';

let srv: RedisServer;
let admin: Redis;
const writers: TargetWriter[] = [];
const open = async (opts: Parameters<typeof TargetWriter.connect>[1] = {}, server = srv) => {
  const w = await TargetWriter.connect({ host: '127.0.0.1', port: server.port }, opts);
  writers.push(w);
  return w;
};

/** A pino logger that keeps its JSON lines. */
function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

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

describe('TargetWriter: command errors', () => {
  it("under 'skip' counts, logs and reports the failing command with its key, and goes on", async () => {
    const { logger, lines } = captureLogger();
    const w = await open({ onError: 'skip', logger });
    const errors: TargetCommandError[] = [];
    const applied: number[] = [];
    w.on('commandError', (e) => errors.push(e));
    w.on('applied', (o) => applied.push(o));
    await admin.set('text', 'not a number');
    const cmds = [['SET', 'n', '1'], ['INCR', 'text'], ['INCR', 'n'], ['SET', 's3cr3t-value-key', 'v', 'BADOPT'], ['INCR', 'n']];
    w.submit({ payload: encodeCommands(cmds), count: cmds.length, offset: 500 });
    w.submit({ payload: encodeCommand(['INCR', 'n']), count: 1, offset: 600 });
    await w.flush();
    expect(applied).toEqual([500, 600]);
    expect(w.appliedOffset).toBe(600);
    expect(w.stats.errors).toBe(2);
    expect(errors.map((e) => [e.command, e.key, e.index, e.offset])).toEqual([
      ['INCR', 'text', 1, 500],
      ['SET', 's3cr3t-value-key', 3, 500],
    ]);
    expect(errors[0]!.message).toBe(`target 127.0.0.1:${srv.port} rejected INCR (key "text"), command #1 of the unit completing offset 500: ERR value is not an integer or out of range`);
    expect(errors[1]!.reply).toBe('ERR syntax error');
    expect(await admin.get('n')).toBe('4');
    const warned = lines.filter((l) => l['msg'] === 'target rejected a command; skipped');
    expect(warned.map((l) => [l['command'], l['key']])).toEqual([['INCR', 'text'], ['SET', 's3cr3t-value-key']]);
    // Never the full arguments (values can be secrets).
    expect(JSON.stringify(lines)).not.toContain('BADOPT');
    await w.close();
  });

  it("under 'fail' emits 'error', rejects flush, stops accepting work and freezes the applied offset", async () => {
    const w = await open({ onError: 'fail' });
    const fatal: TargetError[] = [];
    w.on('error', (e) => fatal.push(e));
    await admin.set('text', 'abc');
    w.submit({ payload: encodeCommand(['SET', 'a', '1']), count: 1, offset: 10 });
    w.submit({ payload: encodeCommands([['SET', 'b', '1'], ['INCR', 'text'], ['SET', 'c', '1']]), count: 3, offset: 20 });
    w.submit({ payload: encodeCommand(['SET', 'd', '1']), count: 1, offset: 30 });
    const err = await w.flush().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetCommandError);
    expect(err).toMatchObject({ command: 'INCR', key: 'text', offset: 20, index: 1, exitCode: 5 });
    expect(fatal).toEqual([err]);
    expect(w.appliedOffset).toBe(10);
    expect(() => w.submit({ payload: encodeCommand(['PING']), count: 1 })).toThrow(/rejected INCR/);
    await expect(w.waitDrain()).rejects.toBe(err);
    await expect(w.call(['PING'])).rejects.toBe(err);
    await w.close(); // after a failure close() only releases the socket
  });

  it('without an error listener, a fatal error still rejects flush (and does not throw)', async () => {
    const w = await open({ onError: 'fail' });
    await admin.set('text', 'abc');
    w.submit({ payload: encodeCommand(['INCR', 'text']), count: 1, offset: 1 });
    await expect(w.flush()).rejects.toThrow(/rejected INCR \(key "text"\)/);
  });
});

describe('TargetWriter: connection loss', () => {
  it("reports a killed connection through 'error' naming the target and what was pending", async () => {
    const w = await open();
    const fatal: TargetError[] = [];
    w.on('error', (e) => fatal.push(e));
    w.submit({ payload: encodeCommand(['SET', 'a', '1']), count: 1, offset: 1 });
    await w.flush();
    expect(await admin.client('KILL', 'TYPE', 'normal')).toBeGreaterThanOrEqual(1);
    await waitFor(() => fatal.length > 0, 'error event after CLIENT KILL', 5000, 10);
    expect(fatal[0]).toBeInstanceOf(TargetError);
    expect(fatal[0]!.message).toBe(`target 127.0.0.1:${srv.port}: connection closed by the target`);
    expect(w.appliedOffset).toBe(1);
    await expect(w.flush()).rejects.toBe(fatal[0]);
  });

  it('fails pending units when the server stops, with the last applied offset in the message', async () => {
    const other = await startRedis();
    try {
      const w = await open({}, other);
      const fatal: TargetError[] = [];
      w.on('error', (e) => fatal.push(e));
      w.submit({ payload: encodeCommand(['SET', 'a', '1']), count: 1, offset: 5 });
      await w.flush();
      // DEBUG SLEEP holds the replies back so that units are pending when the server goes away.
      w.submit({ payload: encodeCommand(['DEBUG', 'SLEEP', '0.3']), count: 1, offset: 6 });
      const flushed = w.flush();
      other.process.kill('SIGKILL');
      await expect(flushed).rejects.toThrow(new RegExp(`^target 127\\.0\\.0\\.1:${other.port}: connection (closed by the target|error: .*) \\(1 unit\\(s\\) awaiting replies; last applied offset 5\\)$`));
      expect(fatal).toHaveLength(1);
      expect(w.appliedOffset).toBe(5);
    } finally {
      await other.stop();
    }
  });
});

describe('TargetWriter: backpressure', () => {
  it('returns false over the in-flight budget, and waitDrain resolves as replies come back', async () => {
    const w = await open({ maxInflightBytes: 4096 });
    let stalls = 0;
    let submitted = 0;
    const unit = (i: number) => encodeCommands(Array.from({ length: 20 }, (_, j) => ['SET', `bp:${i}:${j}`, 'x'.repeat(50)]));
    for (let i = 0; i < 300; i++) {
      submitted++;
      if (!w.submit({ payload: unit(i), count: 20, offset: i })) {
        stalls++;
        expect(w.inflightBytes).toBeGreaterThanOrEqual(4096);
        await w.waitDrain();
        expect(w.inflightBytes).toBeLessThanOrEqual(2048);
      }
    }
    await w.flush();
    expect(stalls).toBeGreaterThan(50);
    expect(w.inflightBytes).toBe(0);
    expect(w.appliedOffset).toBe(299);
    expect(await admin.dbsize()).toBe(submitted * 20);
    await w.close();
  });

  it('waitDrain resolves at once under the budget, and a slow target holds it back', async () => {
    const w = await open({ maxInflightBytes: 1000 });
    await w.waitDrain();
    w.submit({ payload: encodeCommand(['DEBUG', 'SLEEP', '0.2']), count: 1 });
    expect(w.submit({ payload: encodeCommand(['SET', 'big', 'y'.repeat(2000)]), count: 1, offset: 9 })).toBe(false);
    let drained = false;
    const p = w.waitDrain().then(() => { drained = true; });
    await new Promise((r) => setTimeout(r, 50));
    expect(drained).toBe(false);
    await p;
    expect(w.appliedOffset).toBe(9);
    await w.close();
  });
});
