/**
 * ReplicationLink against real redis-server: full sync with both framings, auth (password,
 * ACL user), offsets checked against the source's master_repl_offset, ACKs visible in the
 * source's INFO, GETACK answered, and PSYNC continue after a reconnect.
 */
import { existsSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReplicationSourceError } from '../../src/replication/errors.js';
import { ReplicationLink, type LinkOptions, type PsyncOutcome } from '../../src/replication/link.js';
import { ReplicationStreamParser, type StreamCommand } from '../../src/resp/stream-parser.js';
import { Spool } from '../../src/spool/spool.js';
import { readFullSync } from '../helpers/fake-master.js';
import { freePort, startRedis, waitFor, type RedisServer } from '../helpers/redis.js';

/** Reads the spool in the background and parses the stream, like the pipeline will. */
class StreamCollector {
  readonly commands: StreamCommand[] = [];
  private readonly parser: ReplicationStreamParser;
  private running: Promise<void>;
  error: unknown = null;

  constructor(
    private readonly spool: Spool,
    startOffset: number,
    first: Buffer,
    private readonly onCommand: (c: StreamCommand) => void = () => undefined,
  ) {
    this.parser = new ReplicationStreamParser(startOffset);
    this.take(first);
    this.running = this.loop();
  }

  get offset(): number {
    return this.parser.offset;
  }

  names(): string[] {
    return this.commands.map((c) => c.args.map((a) => a.toString()).join(' '));
  }

  private take(chunk: Buffer): void {
    for (const c of this.parser.push(chunk)) {
      this.commands.push(c);
      this.onCommand(c);
    }
  }

  private async loop(): Promise<void> {
    try {
      for (let c = await this.spool.read(); c !== null; c = await this.spool.read()) this.take(c);
    } catch (e) {
      if (!/closed/.test(String(e))) this.error = e;
    }
  }

  async stop(): Promise<void> {
    await this.spool.close();
    await this.running;
  }
}

async function info(c: Redis): Promise<Record<string, string>> {
  const text = (await c.info('replication')) + (await c.info('stats'));
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** The `offset=` the source shows for its (only) replica, or -1. */
async function replicaAckOffset(c: Redis): Promise<number> {
  const m = /offset=(\d+)/.exec((await info(c))['slave0'] ?? '');
  return m ? Number(m[1]) : -1;
}

const links: ReplicationLink[] = [];
const collectors: StreamCollector[] = [];
const spools: Spool[] = [];

async function openLink(server: RedisServer, extra: Partial<LinkOptions> = {}): Promise<{ link: ReplicationLink; spool: Spool; outcome: PsyncOutcome; errors: Error[] }> {
  const spool = await Spool.open({});
  spools.push(spool);
  const link = new ReplicationLink({ endpoint: { host: server.host, port: server.port }, spool, readTimeoutMs: 30_000, ...extra });
  const errors: Error[] = [];
  link.on('error', (e) => errors.push(e));
  links.push(link);
  try {
    const outcome = await link.start();
    return { link, spool, outcome, errors };
  } catch (e) {
    expect(link.phase).toBe('closed');
    throw e;
  }
}

/** Full sync: check the RDB bytes, then collect the stream. */
async function fullSync(server: RedisServer, extra: Partial<LinkOptions> = {}, onCommand?: (c: StreamCommand, link: ReplicationLink) => void) {
  const { link, spool, outcome, errors } = await openLink(server, extra);
  expect(outcome.mode).toBe('full');
  if (outcome.mode !== 'full') throw new Error('unreachable');
  const { rdb, stream } = await readFullSync(spool, outcome.framing);
  expect(rdb.subarray(0, 5).toString()).toBe('REDIS');
  expect(rdb[rdb.length - 9]).toBe(0xff); // EOF opcode, then the 8-byte checksum
  link.setAppliedOffset(outcome.offset);
  link.ackNow();
  const collector = new StreamCollector(spool, outcome.offset, stream, (c) => onCommand?.(c, link));
  collectors.push(collector);
  return { link, spool, outcome, collector, errors };
}

async function writeSomeCommands(c: Redis): Promise<void> {
  await c.set('plain', 'value');
  await c.incr('counter');
  await c.multi().set('tx1', 'a').lpush('tx-list', 'x', 'y').exec();
  await c.set('big', Buffer.alloc(300_000, 0x61));
  await c.publish('chan', 'hello');
  await c.select(3);
  await c.set('in-db-3', Buffer.from([0, 13, 10, 255]));
  await c.select(0);
}

async function waitForSourceOffset(c: Redis, collector: StreamCollector): Promise<number> {
  let target = -1;
  await waitFor(async () => {
    target = Number((await info(c))['master_repl_offset']);
    return collector.offset === target;
  }, `the parsed offset to reach the source's master_repl_offset (parsed ${collector.offset}, source ${target})`, 15_000, 20);
  return target;
}

afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  for (const c of collectors.splice(0)) {
    await c.stop();
    expect(c.error).toBeNull();
  }
  for (const s of spools.splice(0)) {
    await s.close();
    expect(existsSync(s.path)).toBe(false);
  }
});

describe('disk-based full sync ($len framing), ACKs, GETACK, PSYNC continue', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis({ args: ['--repl-diskless-sync', 'no'] });
    await server.client().call('DEBUG', 'POPULATE', '2000', 'key', '10');
  });
  afterAll(async () => server.stop());

  it('relays the stream with exact offsets, ACKs what was applied and resumes with +CONTINUE', async () => {
    const src = server.client();
    let getacks = 0;
    const first = await fullSync(server, {}, (c, link) => {
      if (c.name === 'replconf' && c.args[1]?.toString().toUpperCase() === 'GETACK') {
        getacks++;
        link.setAppliedOffset(c.offset);
        link.ackNow();
      }
    });
    if (first.outcome.mode !== 'full') throw new Error('unreachable');
    expect(first.outcome.framing.kind).toBe('length');
    expect(first.outcome.replid).toMatch(/^[0-9a-f]{40}$/);

    await writeSomeCommands(src);
    const offset = await waitForSourceOffset(src, first.collector);
    const names = first.collector.names();
    expect(names).toContain('set plain value');
    expect(names).toContain('SELECT 3');
    expect(names.filter((n) => n === 'MULTI' || n === 'EXEC')).toHaveLength(2);
    const big = first.collector.commands.find((c) => c.args[1]?.toString() === 'big')!;
    expect(big.args[2]!.length).toBe(300_000);
    const db3 = first.collector.commands.find((c) => c.args[1]?.toString() === 'in-db-3')!;
    expect(db3.args[2]).toEqual(Buffer.from([0, 13, 10, 255]));
    // Offsets are contiguous and end at the source's offset.
    let prev = first.outcome.offset;
    for (const c of first.collector.commands) {
      expect(c.offset - c.length).toBeGreaterThanOrEqual(prev);
      prev = c.offset;
    }
    expect(prev).toBe(offset);

    // ACK what was applied: the source shows it.
    first.link.setAppliedOffset(offset);
    first.link.ackNow();
    await waitFor(async () => (await replicaAckOffset(src)) === offset, `the source to show offset=${offset}`, 5000, 20);

    // WAIT makes the source send REPLCONF GETACK *, which we answer at once.
    await src.set('before-wait', '1');
    const acked = await src.call('WAIT', '1', '5000');
    expect(acked).toBe(1);
    expect(getacks).toBeGreaterThanOrEqual(1);
    const getack = first.collector.commands.find((c) => c.name === 'replconf')!;
    expect(getack.length).toBe(37);
    expect(await replicaAckOffset(src)).toBeGreaterThanOrEqual(getack.offset);
    const resumeAt = await waitForSourceOffset(src, first.collector);
    expect(first.errors).toEqual([]);

    // Disconnect, write while away, resume.
    const before = await info(src);
    first.link.close();
    await src.set('while-away', 'x');
    await src.rpush('away-list', 'a', 'b');
    const second = await openLink(server, { psync: { replid: first.outcome.replid, offset: resumeAt } });
    expect(second.outcome).toEqual({ mode: 'continue', replid: first.outcome.replid, offset: resumeAt });
    const collector = new StreamCollector(second.spool, resumeAt, Buffer.alloc(0));
    collectors.push(collector);
    const end = await waitForSourceOffset(src, collector);
    expect(end).toBeGreaterThan(resumeAt);
    expect(collector.names()).toEqual(['set while-away x', 'rpush away-list a b']);
    const after = await info(src);
    expect(Number(after['sync_partial_ok'])).toBe(Number(before['sync_partial_ok']) + 1);
    expect(after['sync_full']).toBe(before['sync_full']);
    second.link.setAppliedOffset(end);
    second.link.ackNow();
    await waitFor(async () => (await replicaAckOffset(src)) === end, `the source to show offset=${end} after the resume`, 5000, 20);
    expect(second.errors).toEqual([]);
  });

  it('gets a full resync when asking for an offset the source does not have', async () => {
    const src = server.client();
    const replid = (await info(src))['master_replid']!;
    const { outcome } = await openLink(server, { psync: { replid, offset: Number((await info(src))['master_repl_offset']) + 1000 } });
    expect(outcome.mode).toBe('full');
  });
});

describe('diskless full sync ($EOF framing) with a password', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis({ password: 's3cret pass', args: ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'] });
    await server.client().call('DEBUG', 'POPULATE', '500');
  });
  afterAll(async () => server.stop());

  it('syncs, finds the stream after the mark, and ACKs', async () => {
    const src = server.client();
    const { outcome, collector, link } = await fullSync(server, { endpoint: { host: server.host, port: server.port, password: 's3cret pass' } });
    if (outcome.mode !== 'full') throw new Error('unreachable');
    expect(outcome.framing.kind).toBe('eof');
    await writeSomeCommands(src);
    const offset = await waitForSourceOffset(src, collector);
    expect(collector.names()).toContain('set plain value');
    link.setAppliedOffset(offset);
    link.ackNow();
    await waitFor(async () => (await replicaAckOffset(src)) === offset, `the source to show offset=${offset}`, 5000, 20);
  });

  it('rejects a wrong password with a non-retryable SourceError that does not show the password', async () => {
    const err = await openLink(server, { endpoint: { host: server.host, port: server.port, password: 'wrong-secret' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicationSourceError);
    expect((err as ReplicationSourceError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/WRONGPASS/);
    expect((err as Error).message).not.toMatch(/wrong-secret/);
  });

  it('rejects a missing password with a clear message', async () => {
    const err = await openLink(server).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicationSourceError);
    expect((err as Error).message).toMatch(/requires authentication/);
  });
});

describe('ACL user with only +psync +replconf +ping', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis({ password: 'admin', args: ['--repl-diskless-sync-delay', '0'] });
    const c = server.client();
    await c.call('ACL', 'SETUSER', 'repl', 'on', '>pw', '+psync', '+replconf', '+ping');
    await c.call('ACL', 'SETUSER', 'weak', 'on', '>pw', '+ping', '+replconf');
    await c.set('k', 'v');
  });
  afterAll(async () => server.stop());

  it('does a full sync and streams', async () => {
    const src = server.client();
    const { collector } = await fullSync(server, { endpoint: { host: server.host, port: server.port, username: 'repl', password: 'pw' } });
    await src.set('after', 'sync');
    await waitForSourceOffset(src, collector);
    expect(collector.names()).toContain('set after sync');
  });

  it('reports a user without +psync as a non-retryable refusal', async () => {
    const err = await openLink(server, { endpoint: { host: server.host, port: server.port, username: 'weak', password: 'pw' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicationSourceError);
    expect((err as ReplicationSourceError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/NOPERM|permission/);
  });

  it('reports a wrong user/password pair', async () => {
    const err = await openLink(server, { endpoint: { host: server.host, port: server.port, username: 'repl', password: 'nope' } }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/authentication .* as user "repl" failed: WRONGPASS/);
  });
});

describe('unreachable source', () => {
  it('rejects with a retryable SourceError naming the address', async () => {
    const port = await freePort();
    const spool = await Spool.open({});
    const link = new ReplicationLink({ endpoint: { host: '127.0.0.1', port }, spool });
    const err = await link.start().catch((e: unknown) => e);
    await spool.close();
    expect(err).toBeInstanceOf(ReplicationSourceError);
    expect((err as ReplicationSourceError).retryable).toBe(true);
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });
});
