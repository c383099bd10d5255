/**
 * The writer's simple-reply fast path against a real redis-server, with the replies delivered in
 * tiny random pieces (a relay in front of the server cuts every reply chunk): offsets, counters,
 * command errors, call() results and the dataset must be the same as over a direct connection.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { encodeCommand } from '../../src/resp/encode.js';
import { TargetWriter, type TargetCommandError } from '../../src/writer/index.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let srv: RedisServer;
let admin: Redis;
let relay: Server;
let relayPort: number;
const sockets: Socket[] = [];

/** Deterministic pseudo-random piece sizes (1..7 bytes). */
function pieces(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return 1 + (x % 7);
  };
}

beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
  relay = createServer((client) => {
    const server = connect({ host: '127.0.0.1', port: srv.port });
    sockets.push(client, server);
    client.setNoDelay(true);
    client.pipe(server);
    const next = pieces(7);
    // Writes each reply chunk in small pieces, one per event-loop turn, so that they arrive apart.
    let queue = Promise.resolve();
    server.on('data', (chunk: Buffer) => {
      queue = queue.then(async () => {
        for (let at = 0; at < chunk.length; ) {
          const end = Math.min(chunk.length, at + next());
          client.write(chunk.subarray(at, end));
          at = end;
          await new Promise((r) => setImmediate(r));
        }
      });
    });
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
    client.on('error', () => {});
    server.on('error', () => {});
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  relayPort = (relay.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => relay.close(r));
  await srv.stop();
});

interface Outcome {
  applied: number[];
  errors: string[];
  calls: unknown[];
  stats: object;
  digest: string;
}

async function workload(port: number): Promise<Outcome> {
  await admin.flushall();
  const w = await TargetWriter.connect({ host: '127.0.0.1', port }, { onError: 'skip' });
  const out: Outcome = { applied: [], errors: [], calls: [], stats: {}, digest: '' };
  w.on('applied', (o) => out.applied.push(o));
  w.on('commandError', (e: TargetCommandError) => out.errors.push(`${e.offset}/${e.index}/${e.command}/${e.reply}`));
  const calls: Promise<unknown>[] = [];
  let offset = 0;
  for (let u = 0; u < 60; u++) {
    const cmds: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const k = `k${u % 7}:${i}`;
      if (i % 5 === 0) cmds.push(encodeCommand(['INCR', `n${i}`]));
      else if (u % 11 === 3 && i === 7) cmds.push(encodeCommand(['LPUSH', `k${u % 7}:1`, 'x'])); // WRONGTYPE
      else cmds.push(encodeCommand(['SET', k, `v${u}`]));
    }
    w.submit({ payload: Buffer.concat(cmds), count: cmds.length, offset: ++offset, atomic: u % 4 === 1 });
    if (u % 9 === 0) w.submit({ payload: [], count: 0, offset: ++offset });
    if (u % 8 === 2) calls.push(w.call(['GET', `k${u % 7}:2`]), w.call(['PING']), w.call(['INCR', 'calls']));
  }
  out.calls = await Promise.all(calls);
  await w.flush();
  out.stats = { ...w.stats, bytes: 0 };
  expect(w.appliedOffset).toBe(offset);
  await w.close();
  out.digest = String(await admin.call('DEBUG', 'DIGEST'));
  return out;
}

describe('TargetWriter: simple-reply fast path', () => {
  it('gives the same offsets, counters, errors and data when replies arrive in tiny pieces', async () => {
    const direct = await workload(srv.port);
    expect(direct.applied).toEqual(Array.from({ length: direct.applied.length }, (_, k) => k + 1));
    expect(direct.errors.length).toBeGreaterThan(0);
    expect(direct.calls).toContain('PONG');
    const cut = await workload(relayPort);
    expect(cut).toEqual(direct);
  });
});
