/**
 * ReplicationLink against the fake master: framing edge cases, byte-by-byte delivery,
 * garbage after a valid RDB, refusals, cuts, read timeout, spool backpressure.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { ReplicationSourceError, isRetryable } from '../../src/replication/errors.js';
import { ReplicationLink, type LinkOptions } from '../../src/replication/link.js';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../src/resp/stream-parser.js';
import { Spool, type SpoolOptions } from '../../src/spool/spool.js';
import { FAKE_MARK, FAKE_REPLID, emptyRdb, fullSyncBytes, readFullSync, startFakeMaster, type FakeMaster, type FakeMasterOptions } from '../helpers/fake-master.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(master: FakeMasterOptions, link: Partial<LinkOptions> | ((fake: FakeMaster) => Partial<LinkOptions>) = {}, spoolOpts: SpoolOptions = {}) {
  const fake = await startFakeMaster(master);
  cleanup.push(() => fake.close());
  const spool = await Spool.open(spoolOpts);
  cleanup.push(() => spool.close());
  const extra = typeof link === 'function' ? link(fake) : link;
  const l = new ReplicationLink({ endpoint: { host: fake.host, port: fake.port }, spool, ackIntervalMs: 100, ...extra });
  cleanup.push(() => l.close());
  const errors: Error[] = [];
  let closed = 0;
  l.on('error', (e) => errors.push(e));
  l.on('close', () => closed++);
  return { fake, spool, link: l, errors, closes: () => closed };
}

/** Parse everything after the RDB until `n` commands or an error. */
async function parseStream(spool: Spool, start: number, first: Buffer, n: number): Promise<StreamCommand[]> {
  const p = new ReplicationStreamParser(start);
  const out = p.push(first);
  while (out.length < n) {
    const c = await spool.read();
    if (c === null) break;
    out.push(...p.push(c));
  }
  return out;
}

const STREAM = encodeCommands([['ping'], ['SELECT', 0], ['set', 'k', 'v'], ['REPLCONF', 'GETACK', '*']]);

describe('full sync framing', () => {
  for (const framing of ['length', 'eof'] as const) {
    it(`handles keepalives before +FULLRESYNC and before $ and byte-by-byte delivery (${framing})`, async () => {
      const rdb = emptyRdb();
      const { spool, link, fake, errors } = await setup({
        chunkSize: 1,
        onPsync: () => [fullSyncBytes({ offset: 1000, rdb, framing, stream: STREAM, keepalives: 3 })],
      });
      const outcome = await link.start();
      expect(outcome).toEqual(
        framing === 'length'
          ? { mode: 'full', replid: FAKE_REPLID, offset: 1000, framing: { kind: 'length', length: rdb.length } }
          : { mode: 'full', replid: FAKE_REPLID, offset: 1000, framing: { kind: 'eof', mark: FAKE_MARK } },
      );
      if (outcome.mode !== 'full') throw new Error('unreachable');
      const { rdb: got, stream, trailer } = await readFullSync(spool, outcome.framing);
      expect(got).toEqual(rdb);
      expect(trailer.consumedBytes).toBe(rdb.length + (framing === 'eof' ? 40 : 0));
      const cmds = await parseStream(spool, outcome.offset, stream, 4);
      expect(cmds.map((c) => c.offset)).toEqual([1014, 1037, 1037 + 27, 1037 + 27 + 37]);
      expect(link.bytesReceived).toBe(trailer.consumedBytes + STREAM.length);
      // The link ACKs the +FULLRESYNC offset from the start.
      await fake.waitForAck(1000);
      link.setAppliedOffset(1101);
      link.ackNow();
      await fake.waitForAck(1101);
      expect(fake.commands.find((c) => c[0] === 'REPLCONF' && c[1] === 'capa')).toEqual(['REPLCONF', 'capa', 'eof', 'capa', 'psync2']);
      expect(fake.commands.find((c) => c[0] === 'REPLCONF' && c[1] === 'listening-port')).toEqual(['REPLCONF', 'listening-port', '0']);
      expect(fake.commands.find((c) => c[0] === 'PSYNC')).toEqual(['PSYNC', '?', '-1']);
      expect(errors).toEqual([]);
    });
  }

  it('yields a ProtocolError naming the stream offset for garbage after a valid RDB', async () => {
    const garbage = Buffer.concat([encodeCommand(['ping']), encodeCommand(['set', 'a', 'b']), Buffer.from('GARBAGE\r\n')]);
    const { spool, link } = await setup({ onPsync: () => [fullSyncBytes({ offset: 5000, rdb: emptyRdb(), framing: 'eof', stream: garbage })] });
    const outcome = await link.start();
    if (outcome.mode !== 'full') throw new Error('unreachable');
    const { stream } = await readFullSync(spool, outcome.framing);
    const err = await parseStream(spool, outcome.offset, stream, 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).offset).toBe(5000 + 14 + 27 + 1);
    expect((err as Error).message).toMatch(/inline/);
  });

  it('rejects a mark that does not match', async () => {
    const rdb = emptyRdb();
    const wrong = Buffer.from(FAKE_MARK);
    wrong[7] = 0x5a;
    const bytes = Buffer.concat([Buffer.from(`+FULLRESYNC ${FAKE_REPLID} 7\r\n$EOF:${FAKE_MARK.toString('latin1')}\r\n`), rdb, wrong]);
    const { spool, link } = await setup({ onPsync: () => [bytes] });
    const outcome = await link.start();
    if (outcome.mode !== 'full') throw new Error('unreachable');
    // Feed the trailer by hand: the RDB is known to be rdb.length bytes.
    const { RdbTrailer } = await import('../../src/replication/rdb-trailer.js');
    const t = new RdbTrailer(outcome.framing, rdb.length);
    let all = Buffer.alloc(0);
    while (all.length < rdb.length + 40) all = Buffer.concat([all, (await spool.read())!]);
    expect(() => t.push(all.subarray(rdb.length))).toThrow(/mark mismatch at transfer byte 25 \(byte 7/);
  });

  it('continues with +CONTINUE <new id> and sends PSYNC <id> <offset+1>', async () => {
    const newId = 'f'.repeat(40);
    const { spool, link, fake } = await setup({ onPsync: () => [`+CONTINUE ${newId}\r\n`, encodeCommand(['ping'])] }, { psync: { replid: FAKE_REPLID, offset: 41 } });
    expect(await link.start()).toEqual({ mode: 'continue', replid: newId, offset: 41 });
    expect(fake.commands.find((c) => c[0] === 'PSYNC')).toEqual(['PSYNC', FAKE_REPLID, '42']);
    const cmds = await parseStream(spool, 41, Buffer.alloc(0), 1);
    expect(cmds[0]!.offset).toBe(55);
    await fake.waitForAck(41);
  });
});

describe('refusals and failures', () => {
  it('treats -LOADING and -NOMASTERLINK as retryable', async () => {
    for (const reply of ['-LOADING Redis is loading the dataset in memory\r\n', '-NOMASTERLINK Can\'t SYNC while not connected with my master\r\n']) {
      const { link } = await setup({ onPsync: () => [reply] });
      const err = await link.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReplicationSourceError);
      expect(isRetryable(err)).toBe(true);
      expect((err as Error).message).toContain(reply.slice(1, 12));
    }
  });

  it('treats another PSYNC error as a non-retryable refusal', async () => {
    const { link } = await setup({ onPsync: () => ['-ERR unknown command PSYNC\r\n'] });
    const err = await link.start().catch((e: unknown) => e);
    expect(isRetryable(err)).toBe(false);
    expect((err as Error).message).toMatch(/refused PSYNC: ERR unknown command/);
  });

  it('rejects a malformed +FULLRESYNC and an unexpected framing header', async () => {
    const a = await setup({ onPsync: () => ['+FULLRESYNC short 12\r\n'] });
    await expect(a.link.start()).rejects.toThrow(ProtocolError);
    const b = await setup({ onPsync: () => [`+FULLRESYNC ${FAKE_REPLID} 12\r\n*1\r\n`] });
    await expect(b.link.start()).rejects.toThrow(/expected the RDB header/);
  });

  it('authenticates with AUTH user pass and never sends the password elsewhere', async () => {
    const { link, fake } = await setup(
      { username: 'u', password: 'p@ss', onPsync: () => [`+CONTINUE\r\n`] },
      (f) => ({ endpoint: { host: f.host, port: f.port, username: 'u', password: 'p@ss' }, psync: { replid: FAKE_REPLID, offset: 10 } }),
    );
    expect(await link.start()).toEqual({ mode: 'continue', replid: FAKE_REPLID, offset: 10 });
    expect(fake.commands.filter((c) => c.includes('p@ss'))).toEqual([['AUTH', 'u', 'p@ss']]);
  });

  it('emits a retryable error and close when the source cuts the link mid-RDB', async () => {
    const rdb = emptyRdb();
    const { link, errors, closes, spool } = await setup({ onPsync: () => [`+FULLRESYNC ${FAKE_REPLID} 1\r\n$1000\r\n`, rdb, { delayMs: 20 }, { close: true }] });
    await link.start();
    await expect.poll(() => errors.length).toBe(1);
    expect(isRetryable(errors[0])).toBe(true);
    expect(errors[0]!.message).toMatch(/closed the replication link .*18 bytes received/);
    expect(closes()).toBe(1);
    expect(link.phase).toBe('closed');
    expect((await spool.read())!.length).toBe(rdb.length);
  });

  it('fails with a read timeout when the source goes silent', async () => {
    const { link, errors } = await setup({ onPsync: () => [`+FULLRESYNC ${FAKE_REPLID} 1\r\n$1000\r\n`, emptyRdb(), { delayMs: 5000 }] }, { readTimeoutMs: 200 });
    await link.start();
    await expect.poll(() => errors.length, { timeout: 3000 }).toBe(1);
    expect(errors[0]!.message).toMatch(/no data from source .*read timeout 200 ms/);
  });

  it('rejects start() when the source closes during the handshake', async () => {
    const { link } = await setup({ onPsync: () => ['\n', { close: true }] });
    const err = await link.start().catch((e: unknown) => e);
    expect(isRetryable(err)).toBe(true);
    expect((err as Error).message).toMatch(/closed the replication link \(phase psync/);
  });
});

describe('spool backpressure', () => {
  it('pauses reading when the spool is full, resumes when it drains, and loses nothing', async () => {
    const rdb = Buffer.alloc(3 * 1024 * 1024, 0x42);
    const { link, spool, errors } = await setup(
      { onPsync: () => [`+FULLRESYNC ${FAKE_REPLID} 1\r\n$${rdb.length}\r\n`, rdb] },
      {},
      { memoryBudget: 0, diskBudget: 256 * 1024, segmentSize: 64 * 1024 },
    );
    let full = 0;
    let resumed = 0;
    link.on('spoolFull', () => full++);
    link.on('spoolResumed', () => resumed++);
    await link.start();
    await expect.poll(() => full).toBeGreaterThan(0);
    // While paused, the spool holds about its budget, not the whole transfer.
    expect(spool.diskBytes + spool.pendingWriteBytes).toBeLessThan(rdb.length);
    let got = 0;
    while (got < rdb.length) {
      const c = (await spool.read())!;
      expect(c.every((b) => b === 0x42)).toBe(true);
      got += c.length;
    }
    expect(got).toBe(rdb.length);
    expect(resumed).toBeGreaterThan(0);
    expect(link.bytesReceived).toBe(rdb.length);
    expect(errors).toEqual([]);
  });
});
