/**
 * Acceptance test: every RDB of ../shared/rdb-corpus decodes to exactly what its JSON says
 * (see rdb-corpus/README.md and public/README.md for the JSON format).
 */
import { createReadStream, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RdbError } from '../../src/errors.js';
import { assembleKeys } from '../../src/rdb/assemble.js';
import { RdbDecoder } from '../../src/rdb/decoder.js';
import { decodeRdbStream } from '../../src/rdb/read.js';
import type { RdbDecoderOptions, RdbKey, RdbRecord, StreamValue } from '../../src/rdb/types.js';
import { CORPUS_DIR, bufferKey, bytesMatch, corpusFiles, jsonBytesKey, type JsonBytes } from '../helpers/rdb-corpus.js';

interface ExpectedGroup {
  name: JsonBytes;
  last_delivered_id: string;
  entries_read: number | null;
  pel: [string, JsonBytes, number, number][];
  consumers: { name: JsonBytes; seen_time_ms: number; active_time_ms: number | null; pel: [string, number, number][] }[];
}

interface ExpectedStream {
  entries: [string, JsonBytes[]][];
  length: number;
  last_id: string;
  max_deleted_id: string | null;
  entries_added: number | null;
  first_id: string | null;
  groups: ExpectedGroup[];
}

interface ExpectedKey {
  key: JsonBytes;
  type: string;
  rdb_type?: number;
  rdb_type_in_file?: number;
  rdb_value_size?: number;
  expire_ms: number | null;
  value: unknown;
  field_expire_ms?: [JsonBytes, number][];
  lru_idle_s?: number;
  lfu_freq?: number;
}

interface FileStructure {
  aux_fields: number;
  function_opcodes: number;
  selectdb: number[];
  resizedb: [number, number, number][];
  expiretime_ms_opcodes: number;
  idle_opcodes: number;
  freq_opcodes: number;
  slot_info_opcodes: number;
  keys: number;
}

interface ExpectedFile {
  file_structure?: FileStructure;
  aux_fields_in_header?: Record<string, string | number>;
  magic: string;
  rdb_version: number;
  checksum_trailer_hex?: string;
  functions: { library_code: string }[] | null;
  dbs: { db: number; keys: ExpectedKey[] }[];
  read_back?: { status: string };
  test_assertions?: { db: number; key: string | null; check: string; value: unknown }[];
  keys_in_file?: { db: number; key: JsonBytes; rdb_type_in_file: number }[] | null;
  parsed_by_rdbtools?: { events: unknown[][] } | null;
}

interface Decoded {
  keys: { key: RdbKey; valueBytes: number }[];
  others: RdbRecord[];
}

async function decodeFile(file: string, opts: RdbDecoderOptions = { captureRaw: true }): Promise<Decoded> {
  let lastValueBytes = -1;
  async function* tap(src: AsyncIterable<RdbRecord>): AsyncGenerator<RdbRecord> {
    for await (const r of src) {
      if (r.kind === 'keyEnd') lastValueBytes = r.valueBytes;
      yield r;
    }
  }
  const out: Decoded = { keys: [], others: [] };
  const stream = createReadStream(file, { highWaterMark: 8192 }) as AsyncIterable<Buffer>;
  for await (const item of assembleKeys(tap(decodeRdbStream(stream, opts)))) {
    if ('kind' in item) out.others.push(item);
    else out.keys.push({ key: item, valueBytes: lastValueBytes });
  }
  return out;
}

const text = (b: Buffer): string => JSON.stringify(b.toString('latin1'));

/** A score as the corpus writes it ("inf", "-0", "1e+300", ...). */
function scoreOf(s: string): number {
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  return Number(s);
}

function expectBytes(actual: Buffer, expected: JsonBytes, what: string): void {
  if (!bytesMatch(actual, expected)) {
    expect.fail(`${what}: got ${text(actual).slice(0, 200)}, expected ${JSON.stringify(expected).slice(0, 200)}`);
  }
}

function sortedByBytes<T>(items: T[], key: (t: T) => string): T[] {
  return [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function compareStream(actual: StreamValue, exp: ExpectedStream, rdbType: number, where: string): void {
  expect(actual.entries.length, `${where}: entries`).toBe(exp.entries.length);
  exp.entries.forEach(([id, fields], i) => {
    const a = actual.entries[i]!;
    expect(a.id, `${where}: entry ${i} id`).toBe(id);
    expect(a.fields.length, `${where}: entry ${id} field count`).toBe(fields.length);
    fields.forEach((f, j) => expectBytes(a.fields[j]!, f, `${where}: entry ${id} field ${j}`));
  });
  expect(actual.meta.length, `${where}: length`).toBe(exp.length);
  expect(actual.meta.lastId, `${where}: last id`).toBe(exp.last_id);
  if (rdbType >= 19) {
    expect(actual.meta.firstId, `${where}: first id`).toBe(exp.first_id);
    expect(actual.meta.maxDeletedId, `${where}: max deleted id`).toBe(exp.max_deleted_id);
    expect(actual.meta.entriesAdded, `${where}: entries added`).toBe(exp.entries_added);
  } else {
    // Type 15 does not store these; the public files' JSON shows what a reloading server computed.
    expect(actual.meta.firstId).toBeNull();
    expect(actual.meta.maxDeletedId).toBeNull();
    expect(actual.meta.entriesAdded).toBeNull();
  }
  const groups = sortedByBytes(actual.groups, (g) => bufferKey(g.name));
  expect(groups.length, `${where}: groups`).toBe(exp.groups.length);
  exp.groups.forEach((eg, gi) => {
    const g = groups[gi]!;
    const gw = `${where} group ${JSON.stringify(eg.name)}`;
    expectBytes(g.name, eg.name, `${gw} name`);
    expect(g.lastId, `${gw} last id`).toBe(eg.last_delivered_id);
    if (rdbType >= 19) expect(g.entriesRead, `${gw} entries read`).toBe(eg.entries_read);
    else expect(g.entriesRead).toBeNull();
    const owner = new Map<string, Buffer>();
    for (const c of g.consumers) for (const id of c.pel) owner.set(id, c.name);
    const pelById = new Map(g.pel.map((p) => [p.id, p]));
    expect(g.pel.map((p) => p.id), `${gw} PEL ids`).toEqual(eg.pel.map((p) => p[0]));
    for (const [id, consumer, time, count] of eg.pel) {
      const p = pelById.get(id)!;
      expect(p.deliveryTimeMs, `${gw} PEL ${id} time`).toBe(time);
      expect(p.deliveryCount, `${gw} PEL ${id} count`).toBe(count);
      expectBytes(owner.get(id) ?? Buffer.alloc(0), consumer, `${gw} PEL ${id} owner`);
    }
    const consumers = sortedByBytes(g.consumers, (c) => bufferKey(c.name));
    expect(consumers.length, `${gw} consumers`).toBe(eg.consumers.length);
    eg.consumers.forEach((ec, ci) => {
      const c = consumers[ci]!;
      expectBytes(c.name, ec.name, `${gw} consumer name`);
      expect(c.seenTimeMs, `${gw} consumer seen time`).toBe(ec.seen_time_ms);
      if (rdbType >= 21) expect(c.activeTimeMs, `${gw} consumer active time`).toBe(ec.active_time_ms);
      else expect(c.activeTimeMs).toBeNull();
      expect(c.pel, `${gw} consumer PEL`).toEqual(ec.pel.map((p) => p[0]));
      for (const [id, time, count] of ec.pel) {
        expect(pelById.get(id)?.deliveryTimeMs, `${gw} consumer PEL ${id} time`).toBe(time);
        expect(pelById.get(id)?.deliveryCount, `${gw} consumer PEL ${id} count`).toBe(count);
      }
    });
  });
}

function compareKey(actual: { key: RdbKey; valueBytes: number }, exp: ExpectedKey, where: string): void {
  const k = actual.key;
  expectBytes(k.key, exp.key, `${where}: key name`);
  expect(k.type, `${where}: type`).toBe(exp.type);
  const fileType = exp.rdb_type ?? exp.rdb_type_in_file;
  if (fileType !== undefined) expect(k.rdbType, `${where}: rdb type`).toBe(fileType);
  if (exp.rdb_value_size !== undefined) {
    expect(actual.valueBytes, `${where}: value size`).toBe(exp.rdb_value_size);
    expect(k.raw?.length, `${where}: raw length`).toBe(exp.rdb_value_size + 1);
  }
  expect(k.raw?.[0], `${where}: raw type byte`).toBe(k.rdbType);
  expect(k.expireMs, `${where}: expire`).toBe(exp.expire_ms);
  if (exp.lfu_freq !== undefined) expect(k.lfuFreq, `${where}: lfu`).toBe(exp.lfu_freq);
  if (exp.lru_idle_s !== undefined) {
    expect(k.lruIdle, `${where}: lru idle`).not.toBeNull();
    expect(Math.abs(k.lruIdle! - exp.lru_idle_s), `${where}: lru idle ${k.lruIdle} vs ${exp.lru_idle_s}`).toBeLessThanOrEqual(2);
  } else {
    expect(k.lruIdle, `${where}: no IDLE opcode expected`).toBeNull();
  }
  if (exp.lfu_freq === undefined) expect(k.lfuFreq, `${where}: no FREQ opcode expected`).toBeNull();
  switch (k.type) {
    case 'string':
      expectBytes(k.value, exp.value as JsonBytes, `${where}: value`);
      break;
    case 'list': {
      const ev = exp.value as JsonBytes[];
      expect(k.value.length, `${where}: list length`).toBe(ev.length);
      ev.forEach((e, i) => expectBytes(k.value[i]!, e, `${where}: list element ${i}`));
      break;
    }
    case 'set': {
      const ev = exp.value as JsonBytes[];
      expect(k.value.map(bufferKey).sort(), `${where}: set members`).toEqual(ev.map(jsonBytesKey).sort());
      break;
    }
    case 'zset': {
      const ev = exp.value as [JsonBytes, string][];
      expect(k.value.length, `${where}: zset size`).toBe(ev.length);
      const byMember = new Map(k.value.map((it) => [bufferKey(it.member), it.score]));
      for (const [m, s] of ev) {
        const got = byMember.get(jsonBytesKey(m));
        expect(got, `${where}: zset member ${JSON.stringify(m)}`).not.toBeUndefined();
        if (s === '-0') expect(Object.is(got, -0), `${where}: score -0 keeps its sign`).toBe(true);
        else expect(got === scoreOf(s), `${where}: member ${JSON.stringify(m)} score ${got} vs ${s}`).toBe(true);
      }
      break;
    }
    case 'hash': {
      const ev = exp.value as [JsonBytes, JsonBytes][];
      const got = sortedByBytes(k.value, (h) => bufferKey(h.field));
      expect(got.length, `${where}: hash size`).toBe(ev.length);
      const sortedExp = sortedByBytes(ev, (e) => jsonBytesKey(e[0]));
      sortedExp.forEach(([f, v], i) => {
        expectBytes(got[i]!.field, f, `${where}: hash field ${i}`);
        expectBytes(got[i]!.value, v, `${where}: hash value of ${JSON.stringify(f)}`);
      });
      const ttls = got.filter((h) => h.expireMs !== null).map((h) => [bufferKey(h.field), h.expireMs]);
      const expTtls = (exp.field_expire_ms ?? []).map(([f, t]) => [jsonBytesKey(f), t]);
      expect(ttls.sort(), `${where}: field TTLs`).toEqual(expTtls.sort());
      break;
    }
    case 'stream':
      compareStream(k.value, exp.value as ExpectedStream, k.rdbType, where);
      break;
    default:
      expect.fail(`${where}: unexpected type ${k.type}`);
  }
}

const files = corpusFiles();

describe('RDB corpus', () => {
  it('finds the corpus', () => {
    expect(files.length).toBeGreaterThanOrEqual(70);
  });

  for (const file of files) {
    const name = relative(CORPUS_DIR, file);
    it(name, async () => {
      const exp = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as ExpectedFile;
      const asserts = exp.test_assertions ?? [];
      if (asserts.some((a) => a.check === 'load_fails')) {
        const err = await decodeFile(file).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(RdbError);
        expect((err as RdbError).message).toMatch(/at byte \d+/);
        return;
      }
      const got = await decodeFile(file);
      const header = got.others.find((r) => r.kind === 'header');
      expect(header).toEqual({ kind: 'header', magic: exp.magic, version: exp.rdb_version });
      const end = got.others.at(-1);
      expect(end?.kind).toBe('end');
      if (end?.kind === 'end' && exp.checksum_trailer_hex !== undefined) {
        const trailer = Buffer.from(exp.checksum_trailer_hex, 'hex').readBigUInt64LE();
        expect(end.checksum).toBe(trailer);
        expect(end.checksumVerified).toBe(trailer !== 0n);
      }

      if (exp.read_back?.status === 'load_failed') {
        // Module files: no server could load them; check what the file scan and the upstream tests say.
        const inFile = exp.keys_in_file ?? [];
        expect(got.keys.map((k) => [k.key.db, bufferKey(k.key.key), k.key.rdbType]).sort()).toEqual(
          inFile.map((k) => [k.db, jsonBytesKey(k.key), k.rdb_type_in_file]).sort(),
        );
        for (const a of asserts) {
          if (a.check === 'module_name') {
            const k = got.keys.find((x) => x.key.key.toString() === a.key)!.key;
            expect(k.type).toBe('module');
            if (k.type === 'module') expect(k.value.moduleName).toBe(a.value);
          }
          if (a.check === 'exists') expect(got.keys.some((x) => x.key.key.toString() === a.key)).toBe(a.value);
        }
        const events = exp.parsed_by_rdbtools?.events ?? [];
        for (const ev of events) {
          if (ev[0] === 'start_module' && ev[1] === null) {
            const aux = got.others.filter((r) => r.kind === 'moduleAux');
            expect(aux.map((r) => (r.kind === 'moduleAux' ? r.moduleName : ''))).toContain(ev[2]);
          }
          if (ev[0] === 'set') {
            const k = got.keys.find((x) => x.key.key.toString() === ev[1])!.key;
            expect(k.type === 'string' && k.value.toString()).toBe(ev[2]);
          }
        }
        return;
      }

      // Keys, per db, sorted by raw bytes.
      const dbs = new Map<number, { key: RdbKey; valueBytes: number }[]>();
      for (const k of got.keys) {
        const list = dbs.get(k.key.db) ?? [];
        list.push(k);
        dbs.set(k.key.db, list);
      }
      expect([...dbs.keys()].sort((a, b) => a - b), 'non-empty dbs').toEqual(exp.dbs.map((d) => d.db));
      for (const edb of exp.dbs) {
        const keys = [...dbs.get(edb.db)!].sort((a, b) => Buffer.compare(a.key.key, b.key.key));
        expect(keys.map((k) => bufferKey(k.key.key)), `db ${edb.db} key names`).toEqual(edb.keys.map((k) => jsonBytesKey(k.key)));
        edb.keys.forEach((ek, i) => compareKey(keys[i]!, ek, `${name} db ${edb.db} key ${JSON.stringify(ek.key)}`));
      }

      // Top-level opcodes, for the generated corpus (the public files' JSON does not count them).
      const fs = exp.file_structure;
      if (fs) {
        const aux = got.others.flatMap((r) => (r.kind === 'aux' ? [[r.key.toString(), r.value.toString()]] : []));
        expect(aux.length, 'AUX fields').toBe(fs.aux_fields);
        for (const [k, v] of Object.entries(exp.aux_fields_in_header ?? {})) expect(Object.fromEntries(aux)[k], `AUX ${k}`).toBe(String(v));
        const selects = got.others.flatMap((r) => (r.kind === 'selectDb' ? [r.db] : []));
        expect(selects, 'SELECTDB').toEqual(fs.selectdb);
        const resizes = got.others.flatMap((r) => (r.kind === 'resizeDb' ? [[r.dbSize, r.expiresSize]] : []));
        expect(resizes, 'RESIZEDB').toEqual(fs.resizedb.map(([, n, e]) => [n, e]));
        expect(got.others.filter((r) => r.kind === 'slotInfo').length, 'SLOT_INFO').toBe(fs.slot_info_opcodes);
        expect(got.others.filter((r) => r.kind === 'function').length, 'FUNCTION2').toBe(fs.function_opcodes);
        expect(got.keys.length, 'keys').toBe(fs.keys);
        expect(got.keys.filter((k) => k.key.expireMs !== null).length, 'EXPIRETIME_MS').toBe(fs.expiretime_ms_opcodes);
        expect(got.keys.filter((k) => k.key.lruIdle !== null).length, 'IDLE').toBe(fs.idle_opcodes);
        expect(got.keys.filter((k) => k.key.lfuFreq !== null).length, 'FREQ').toBe(fs.freq_opcodes);
      }

      const functions = got.others.flatMap((r) => (r.kind === 'function' ? [r.code.toString('utf8')] : []));
      expect(functions.sort()).toEqual((exp.functions ?? []).map((f) => f.library_code).sort());

      if (name.includes('corrupt_empty_keys')) {
        // The 9 empty keys are skipped, as the server does.
        const d = new RdbDecoder();
        d.push(readFileSync(file));
        d.finish();
        expect(d.emptyKeysSkipped).toBe(9);
      }
    });
  }

  it('skips the corrupt ziplist key under onCorruptValue "skip" and keeps the rest', async () => {
    const file = files.find((f) => f.endsWith('corrupt_ziplist.rdb'))!;
    const exp = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as ExpectedFile;
    const d = new RdbDecoder({ onCorruptValue: 'skip' });
    const recs = d.push(readFileSync(file));
    d.finish();
    const skipped = recs.filter((r) => r.kind === 'keySkipped');
    expect(skipped.length).toBeGreaterThanOrEqual(1);
    const ended = recs.filter((r) => r.kind === 'keyEnd').length;
    expect(ended + skipped.length).toBe((exp.keys_in_file ?? []).length);
    for (const s of skipped) if (s.kind === 'keySkipped') expect(s.error.message).toMatch(/ziplist/);
  });
});
