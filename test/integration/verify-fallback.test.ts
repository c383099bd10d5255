/**
 * `replicant verify` when the target does not allow DEBUG (`--enable-debug-command no`) and
 * has no PEXPIRETIME: values by DUMP payloads, then read element by element when the payloads
 * differ (here they do: the target's encoding limits are smaller), expiries by PTTL.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { populate } from '../helpers/dataset.js';
import { replicate, startRedis, type RedisServer } from '../helpers/redis.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';


/** No DEBUG, no PEXPIRETIME, and small encodings so DUMP payloads differ from the source's. */
const LIMITED = [
  '--enable-debug-command', 'no',
  '--rename-command', 'PEXPIRETIME', '',
  '--hash-max-listpack-entries', '4',
  '--zset-max-listpack-entries', '4',
  '--set-max-intset-entries', '4',
  '--list-max-listpack-size', '4',
];

const servers: RedisServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

async function server(args: string[] = []): Promise<RedisServer> {
  const s = await startRedis({ args });
  servers.push(s);
  return s;
}

/** Run `replicant verify` to its exit. */
async function verify(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runCli(['verify', '--log-level', 'warn', ...args]);
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr };
}

async function limitedPair(extraTargetArgs: string[] = []): Promise<{ source: RedisServer; target: RedisServer }> {
  const source = await server();
  const target = await server([...LIMITED, ...extraTargetArgs]);
  await populate(source.client(), { seed: 5, bigElements: 1500, smallKeys: 150, bigStringBytes: 100_000, functions: false });
  await replicate(source, target);
  // The target really lacks both commands.
  await expect(target.client().call('DEBUG', 'DIGEST')).rejects.toThrow(/DEBUG/);
  await expect(target.client().call('PEXPIRETIME', 'x')).rejects.toThrow(/unknown command/);
  return { source, target };
}

describe('replicant verify without DEBUG or PEXPIRETIME on the target', () => {
  it('equal datasets with different encodings: exit 0 by DUMP then element-wise reads, expiries by PTTL', async () => {
    const { source, target } = await limitedPair();
    // The encodings differ, so byte-equal DUMP payloads cannot be what proves equality here.
    const s = source.client();
    const t = target.client();
    expect(await s.call('OBJECT', 'ENCODING', 'big:intset')).toBe('intset');
    expect(await t.call('OBJECT', 'ENCODING', 'big:intset')).toBe('hashtable');
    expect(await s.dumpBuffer('big:intset')).not.toEqual(await t.dumpBuffer('big:intset'));

    const r = await verify(['-s', source.url, '-t', target.url, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.method).toBe('keys');
    expect(j.fingerprint).toBe('dump');
    expect(j.expiry).toBe('pttl');
    expect(j.target.debug).toBe(false);
    const total = Number(await s.dbsize()) + Number(await source.client(1).dbsize()) + Number(await source.client(5).dbsize());
    expect(j.summary).toMatchObject({ compared: total, equal: total });
  });

  it('finds every kind of difference by reading values', async () => {
    const { source, target } = await limitedPair();
    const t = target.client();
    await t.del('big:zset'); // missing
    await t.set('extra:key', '1'); // extra
    await t.srem('big:set', 'member-3'); // value: same size, one member swapped (SSCAN path)
    await t.sadd('big:set', 'member-x');
    await t.zadd('zset:special', '2', 'x'); // value: a score
    await t.lset('big:list', 1200, 'changed'); // value: a list element past the first chunk
    await t.setrange('big:string', 50_000, 'Y'); // value: one byte of a string
    await t.hset('big:hash', 'field-1400', 'changed'); // value: a field of a big hash (HSCAN path)
    await t.xadd('stream:g', '*', 'extra', 'entry'); // value: stream length
    await t.pexpire('int:neg', 600_000); // ttl
    await t.del('empty:string');
    await t.sadd('empty:string', 'm'); // type

    const r = await verify(['-s', source.url, '-t', target.url, '--json', '--max-diffs', '100']);
    expect(r.code).toBe(8);
    const j = JSON.parse(r.stdout);
    expect(j.summary).toMatchObject({ missing: 1, extra: 1, value: 6, type: 1, ttl: 1 });
    const detail = new Map<string, string>(j.differences.map((d: { key: string; kind: string; detail: string }) => [d.key, `${d.kind}: ${d.detail}`]));
    expect(detail.get('big:zset')).toMatch(/^missing/);
    expect(detail.get('extra:key')).toMatch(/^extra/);
    expect(detail.get('big:set')).toBe('value: member "member-3" missing on target');
    expect(detail.get('zset:special')).toBe('value: member "x" has score 1.5 on source, 2 on target');
    expect(detail.get('big:list')).toBe('value: list element 1200 differs');
    expect(detail.get('big:string')).toBe('value: strings differ at byte 50000');
    expect(detail.get('big:hash')).toBe('value: field "field-1400" has a different value');
    expect(detail.get('stream:g')).toMatch(/^value: stream of \d+ entries on source, \d+ on target/);
    expect(detail.get('int:neg')).toMatch(/^ttl: expires never on source/);
    expect(detail.get('empty:string')).toBe('type: string on source, set on target');
  });

  it('sees a consumer-group difference without DEBUG', async () => {
    const { source, target } = await limitedPair();
    await target.client().xgroup('DELCONSUMER', 'stream:g', 'g1', 'carol');
    const r = await verify(['-s', source.url, '-t', target.url, '--json', '--key', 'stream:*']);
    expect(r.code).toBe(8);
    const j = JSON.parse(r.stdout);
    expect(j.summary).toMatchObject({ compared: 2, value: 1 });
    expect(j.differences[0].detail).toMatch(/consumer group "g1": consumers 3 on source, 2 on target/);
  });

  it('reads every value when the target refuses DUMP too', async () => {
    const { source, target } = await limitedPair(['--rename-command', 'DUMP', '']);
    const r = await verify(['-s', source.url, '-t', target.url, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.fingerprint).toBe('values');
    expect(j.summary.equal).toBe(j.summary.compared);
    expect(j.summary.compared).toBeGreaterThan(400);

    await target.client().set('int:neg', '-1');
    await target.client().hset('big:hash', 'new-field', 'x');
    const d = await verify(['-s', source.url, '-t', target.url, '--json']);
    expect(d.code).toBe(8);
    const dj = JSON.parse(d.stdout);
    expect(dj.summary).toMatchObject({ value: 2, missing: 0, extra: 0, type: 0, ttl: 0 });
    const details = new Map(dj.differences.map((x: { key: string; detail: string }) => [x.key, x.detail]));
    expect(details.get('int:neg')).toBe('string of 6 bytes on source, 2 on target');
    expect(details.get('big:hash')).toBe('hash of 1500 fields on source, 1501 on target');
  });
});
