/**
 * `replicant rdb <file>` (the built CLI) over every file of ../shared/rdb-corpus, compared
 * with the expected `.rdb.json`: keys per db, types, expiries, values (order-free for
 * set/hash/zset, zset scores as doubles), stream metadata, groups, PELs, consumers, field
 * TTLs, LRU (±2 s) / LFU, and function code.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bufferKey, corpusFiles, jsonBytesKey, type JsonBytes } from '../helpers/rdb-corpus.js';
import { ensureBuilt, parallel, runCli, type CliResult } from '../helpers/cli.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** The CLI's byte-string JSON -> the corpus helper's comparable key. */
function mine(v: Json): string {
  if (typeof v === 'string') return bufferKey(Buffer.from(v, 'utf8'));
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v['b64'] === 'string') return bufferKey(Buffer.from(v['b64'], 'base64'));
  throw new Error(`not a byte string: ${JSON.stringify(v)}`);
}
const theirs = (v: Json): string => jsonBytesKey(v as JsonBytes);

function score(v: Json): number {
  if (typeof v === 'number') return v;
  if (v === 'inf' || v === '+inf') return Infinity;
  if (v === '-inf') return -Infinity;
  return Number(v);
}

const sorted = (xs: string[]) => [...xs].sort();

function compareStream(a: Obj, e: Obj, rdbType: number | null, where: string): void {
  const entries = (list: Json, bytes: (v: Json) => string) => (list as Json[]).map((x) => {
    const [id, fields] = x as [string, Json[]];
    return `${id}|${fields.map(bytes).join(',')}`;
  });
  expect(entries(a['entries']!, mine), `${where} entries`).toEqual(entries(e['entries']!, theirs));
  expect(a['length'], `${where} length`).toBe(e['length']);
  expect(a['last_id'], `${where} last_id`).toBe(e['last_id']);
  if (rdbType !== 15) {
    // Type 15 files do not store these; the expected JSON holds the loader's fallbacks there.
    expect(a['max_deleted_id'], `${where} max_deleted_id`).toBe(e['max_deleted_id']);
    expect(a['entries_added'], `${where} entries_added`).toBe(e['entries_added']);
    expect(a['first_id'], `${where} first_id`).toBe(e['first_id']);
  } else {
    expect([a['max_deleted_id'], a['entries_added'], a['first_id']], `${where} type 15 metadata`).toEqual([null, null, null]);
  }
  const groups = (gs: Json, bytes: (v: Json) => string) =>
    (gs as Obj[]).map((g) => ({ name: bytes(g['name']!), o: g })).sort((x, y) => (x.name < y.name ? -1 : 1));
  const ag = groups(a['groups']!, mine);
  const eg = groups(e['groups']!, theirs);
  expect(ag.map((g) => g.name), `${where} group names`).toEqual(eg.map((g) => g.name));
  ag.forEach(({ name, o: g }, i) => {
    const x = eg[i]!.o;
    const gw = `${where} group ${name}`;
    expect(g['last_delivered_id'], `${gw} last id`).toBe(x['last_delivered_id']);
    if (rdbType !== 15) expect(g['entries_read'], `${gw} entries_read`).toBe(x['entries_read']);
    const pel = (p: Json, bytes: (v: Json) => string) => sorted((p as Json[][]).map(([id, c, t, n]) => `${id as string}|${bytes(c!)}|${t as number}|${n as number}`));
    expect(pel(g['pel']!, mine), `${gw} pel`).toEqual(pel(x['pel']!, theirs));
    const consumers = (cs: Json, bytes: (v: Json) => string) =>
      (cs as Obj[]).map((c) => ({ name: bytes(c['name']!), o: c })).sort((p, q) => (p.name < q.name ? -1 : 1));
    const ac = consumers(g['consumers']!, mine);
    const ec = consumers(x['consumers']!, theirs);
    expect(ac.map((c) => c.name), `${gw} consumers`).toEqual(ec.map((c) => c.name));
    ac.forEach(({ name: cname, o: c }, j) => {
      const y = ec[j]!.o;
      expect(c['seen_time_ms'], `${gw} ${cname} seen`).toBe(y['seen_time_ms']);
      // Before type 21 the file has no active time (the loader copies seen time).
      if (rdbType === null || rdbType >= 21) expect(c['active_time_ms'], `${gw} ${cname} active`).toBe(y['active_time_ms']);
      else expect(c['active_time_ms']).toBeNull();
      const cp = (p: Json) => (p as Json[][]).map(([id, t, n]) => `${id as string}|${t as number}|${n as number}`);
      expect(cp(c['pel']!), `${gw} ${cname} pel`).toEqual(cp(y['pel']!));
    });
  });
}

function compareKey(a: Obj, e: Obj, where: string): void {
  expect(a['type'], `${where} type`).toBe(e['type']);
  const rdbType = (e['rdb_type'] ?? e['rdb_type_in_file'] ?? null) as number | null;
  if (rdbType !== null) expect(a['rdb_type'], `${where} rdb_type`).toBe(rdbType);
  expect(a['expire_ms'], `${where} expire_ms`).toBe(e['expire_ms']);
  const av = a['value']!;
  const ev = e['value']!;
  switch (e['type']) {
    case 'string':
      expect(mine(av), `${where} value`).toBe(theirs(ev));
      break;
    case 'list':
      expect((av as Json[]).map(mine), `${where} value`).toEqual((ev as Json[]).map(theirs));
      break;
    case 'set':
      expect(sorted((av as Json[]).map(mine)), `${where} value`).toEqual(sorted((ev as Json[]).map(theirs)));
      break;
    case 'hash':
      expect(sorted((av as Json[][]).map(([f, v]) => `${mine(f!)}=${mine(v!)}`)), `${where} value`).toEqual(sorted((ev as Json[][]).map(([f, v]) => `${theirs(f!)}=${theirs(v!)}`)));
      break;
    case 'zset': {
      // Compare as doubles (-0 == 0: 7.0+ servers print -0 as 0).
      const norm = (xs: [string, number][]) => xs.map(([m, s]) => `${m}=${s === 0 ? 0 : s}`).sort();
      expect(norm((av as Json[][]).map(([m, s]) => [mine(m!), score(s!)])), `${where} value`).toEqual(norm((ev as Json[][]).map(([m, s]) => [theirs(m!), score(s!)])));
      break;
    }
    case 'stream':
      compareStream(av as Obj, ev as Obj, rdbType, where);
      break;
    default:
      throw new Error(`${where}: unexpected type ${String(e['type'])}`);
  }
  const fttl = (v: Json | undefined, bytes: (v: Json) => string) => (v === undefined ? [] : sorted((v as Json[][]).map(([f, ms]) => `${bytes(f!)}@${ms as number}`)));
  expect(fttl(a['field_expire_ms'], mine), `${where} field_expire_ms`).toEqual(fttl(e['field_expire_ms'], theirs));
  if (e['lru_idle_s'] !== undefined) {
    expect(typeof a['lru_idle_s'], `${where} lru_idle_s present`).toBe('number');
    expect(Math.abs((a['lru_idle_s'] as number) - (e['lru_idle_s'] as number)), `${where} lru_idle_s`).toBeLessThanOrEqual(2);
  } else {
    expect(a['lru_idle_s'], `${where} no lru_idle_s`).toBeUndefined();
  }
  if (e['lfu_freq'] !== undefined) expect(a['lfu_freq'], `${where} lfu_freq`).toBe(e['lfu_freq']);
  else expect(a['lfu_freq'], `${where} no lfu_freq`).toBeUndefined();
}

function parseLines(out: Buffer): Obj[] {
  return out.toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Obj);
}

const SPECIAL = new Set(['corrupt_ziplist.rdb', 'redis_40_with_module.rdb', 'redis_60_with_module_aux.rdb']);

describe('replicant rdb: corpus conformance (built CLI)', () => {
  const files = corpusFiles();
  const results = new Map<string, CliResult>();

  beforeAll(async () => {
    await ensureBuilt();
    await parallel(files, 4, async (f) => {
      results.set(f, await runCli(['rdb', f]));
    });
  }, 180_000);

  it('found the corpus', () => {
    expect(files.length).toBeGreaterThanOrEqual(70);
  });

  for (const file of files.filter((f) => !SPECIAL.has(basename(f)))) {
    it(`matches ${file.slice(file.indexOf('rdb-corpus/') + 11)}`, () => {
      const r = results.get(file)!;
      expect(r.stderr.replace(/replicant: skipped \d+ empty keys.*\n/, ''), 'stderr').toBe('');
      expect(r.code).toBe(0);
      const expected = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as Obj;
      const lines = parseLines(r.stdout);
      const got = new Map<string, Obj>();
      for (const l of lines) {
        if (!('key' in l)) continue;
        const id = `${l['db'] as number}/${mine(l['key']!)}`;
        expect(got.has(id), `duplicate key ${id}`).toBe(false);
        got.set(id, l);
      }
      let count = 0;
      for (const db of expected['dbs'] as Obj[]) {
        for (const k of db['keys'] as Obj[]) {
          const id = `${db['db'] as number}/${theirs(k['key']!)}`;
          const a = got.get(id);
          expect(a, `key ${id} missing`).toBeDefined();
          compareKey(a!, k, `${basename(file)} ${id}`);
          count++;
        }
      }
      expect(got.size, 'no extra keys').toBe(count);
      const fns = expected['functions'];
      if (Array.isArray(fns)) {
        const code = sorted(lines.filter((l) => 'function' in l).map((l) => mine(l['function']!)));
        expect(code, 'functions').toEqual(sorted((fns as Obj[]).map((f) => theirs(f['library_code']!))));
      }
      const aux = expected['aux_fields_in_header'] as Obj | undefined;
      if (aux) {
        const gotAux = new Set(lines.filter((l) => 'aux' in l).map((l) => l['aux'] as string));
        for (const name of Object.keys(aux)) expect(gotAux.has(name), `aux ${name}`).toBe(true);
      }
    });
  }

  it('fails on corrupt_ziplist.rdb with exit code 3 and one error line', () => {
    const r = results.get(files.find((f) => basename(f) === 'corrupt_ziplist.rdb')!)!;
    expect(r.code).toBe(3);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^replicant: RDB: .+ at byte \d+/);
  });

  it('skips the corrupt key of corrupt_ziplist.rdb under --on-corrupt skip, and says so', async () => {
    const file = files.find((f) => basename(f) === 'corrupt_ziplist.rdb')!;
    const r = await runCli(['rdb', file, '--on-corrupt', 'skip']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^replicant: skipped 1 corrupt keys/m);
    const keys = parseLines(r.stdout).filter((l) => 'key' in l).map((l) => l['key']);
    expect(keys).not.toContain('key:000000000091');
    expect(keys.length).toBeGreaterThan(50);
  });

  it('exit codes: 2 for usage, 6 for an unreadable file, each with one stderr line', async () => {
    const usage = await runCli(['rdb', files[0]!, '--type', 'nonsense']);
    expect(usage.code).toBe(2);
    expect(usage.stderr.trim().split('\n')).toHaveLength(1);
    const badFormat = await runCli(['rdb', files[0]!, '--format', 'xml']);
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr.trim().split('\n')).toHaveLength(1);
    const missing = await runCli(['rdb', '/nonexistent/dump.rdb']);
    expect(missing.code).toBe(6);
    expect(missing.stderr).toMatch(/^replicant: cannot read RDB file \/nonexistent\/dump\.rdb: ENOENT[^\n]*\n$/);
  });

  it('verifies the CRC64 trailer unless --no-verify-checksum', async () => {
    const file = files.find((f) => basename(f) === 'redis-7.2.6-full.rdb')!;
    const bytes = Buffer.from(readFileSync(file));
    bytes[bytes.length - 1]! ^= 0xff;
    const bad = await runCli(['rdb', '-', '--format', 'stats'], { stdin: bytes });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/^replicant: RDB: .*checksum.* at byte \d+/i);
    const ok = await runCli(['rdb', '-', '--format', 'stats', '--no-verify-checksum'], { stdin: bytes });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.toString()).toMatch(/RDB version 11: 89 keys/);
  });

  it('resp: skips keys that already expired unless --include-expired', async () => {
    const file = files.find((f) => basename(f) === 'keys_with_expiry.rdb')!;
    const skip = await runCli(['rdb', file, '--format', 'resp']);
    expect(skip.code).toBe(0);
    expect(skip.stderr).toMatch(/^replicant: skipped 1 expired keys/m);
    expect(skip.stdout.toString()).not.toMatch(/\r\nSET\r\n/);
    const keep = await runCli(['rdb', file, '--format', 'resp', '--include-expired']);
    expect(keep.code).toBe(0);
    expect(keep.stdout.toString()).toMatch(/\r\nSET\r\n\$\d+\r\nexpires_ms_precision\r\n.*\r\nPXAT\r\n\$13\r\n1671963072573\r\n/s);
  });

  it('reads stdin with -', async () => {
    const file = files.find((f) => basename(f) === 'redis-7.0.15-full.rdb')!;
    const r = await runCli(['rdb', '-'], { stdin: readFileSync(file) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.equals(results.get(file)!.stdout)).toBe(true);
  });

  it('prints the module value of redis_40_with_module.rdb as a module key', () => {
    const r = results.get(files.find((f) => basename(f) === 'redis_40_with_module.rdb')!)!;
    expect(r.code).toBe(0);
    const keys = parseLines(r.stdout).filter((l) => 'key' in l);
    const foo = keys.find((k) => k['key'] === 'foo');
    expect(foo).toMatchObject({ db: 0, type: 'module', module: 'ReJSON-RL', rdb_type: 7 });
    expect(typeof (foo!['value'] as Obj)['b64']).toBe('string');
    expect(keys.find((k) => k['key'] === 'simplekey')).toMatchObject({ type: 'string', value: 'someval' });
  });

  it('prints the module AUX record of redis_60_with_module_aux.rdb and no keys', () => {
    const r = results.get(files.find((f) => basename(f) === 'redis_60_with_module_aux.rdb')!)!;
    expect(r.code).toBe(0);
    const lines = parseLines(r.stdout);
    expect(lines.filter((l) => 'key' in l)).toEqual([]);
    expect(lines.find((l) => 'module_aux' in l)).toMatchObject({ module_aux: 'test__rdb' });
  });
});
