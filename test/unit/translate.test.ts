import { describe, expect, it } from 'vitest';
import type { KeyHeader, RdbRecord, ValueType } from '../../src/rdb/types.js';
import { buildDumpPayload } from '../../src/rdb/dump.js';
import type { Arg } from '../../src/resp/encode.js';
import { Translator, UntranslatableKeyError, formatScore } from '../../src/translate/translator.js';
import type { TranslateIssue, TranslateOptions } from '../../src/translate/options.js';

const B = (s: string) => Buffer.from(s);

function keyStart(key: string, type: ValueType, extra: Partial<KeyHeader> = {}): RdbRecord {
  return { kind: 'keyStart', db: 0, key: B(key), rdbType: 0, type, expireMs: null, lruIdle: null, lfuFreq: null, offset: 100, ...extra };
}
const keyEnd = (raw: Buffer | null = null): RdbRecord => ({ kind: 'keyEnd', raw, valueBytes: raw ? raw.length - 1 : 0 });

const text = (a: Arg) => (Buffer.isBuffer(a) ? a.toString('latin1') : String(a));

/** Run records through a translator; commands as string arrays. */
function run(records: RdbRecord[], opts: TranslateOptions = {}): { cmds: string[][]; t: Translator; issues: TranslateIssue[] } {
  const issues: TranslateIssue[] = [];
  const t = new Translator({ emitSelect: false, now: () => 1_000_000, onIssue: (i) => issues.push(i), ...opts });
  const out: Arg[][] = [];
  for (const r of records) t.push(r, out);
  return { cmds: out.map((c) => c.map(text)), t, issues };
}

describe('formatScore', () => {
  it('writes text that parses back to the same double', () => {
    for (const v of [0.1, 0.30000000000000004, 1e300, 1e-300, -123456789012, 5, 2.5, Number.MIN_VALUE, Number.MAX_VALUE, 1 / 3]) {
      expect(Number(formatScore(v))).toBe(v);
    }
    expect(formatScore(-0)).toBe('-0');
    expect(formatScore(0)).toBe('0');
    expect(formatScore(Infinity)).toBe('+inf');
    expect(formatScore(-Infinity)).toBe('-inf');
    expect(() => formatScore(NaN)).toThrow(RangeError);
  });
});

describe('Translator: commands per type', () => {
  it('strings: SET with PXAT, and SET + SETRANGE pieces for big values (the target allocates the whole value once)', () => {
    const big = Buffer.alloc(25, 'x');
    const { cmds, t } = run(
      [
        keyStart('s', 'string', { expireMs: 2_000_000 }),
        { kind: 'string', value: B('v') },
        keyEnd(),
        keyStart('big', 'string', { expireMs: 3_000_000 }),
        { kind: 'string', value: big },
        keyEnd(),
      ],
      { batchBytes: 10 },
    );
    expect(cmds).toEqual([
      ['SET', 's', 'v', 'PXAT', '2000000'],
      ['SET', 'big', 'x'.repeat(10)],
      ['SETRANGE', 'big', '24', '\0'],
      ['SETRANGE', 'big', '10', 'x'.repeat(10)],
      ['SETRANGE', 'big', '20', 'x'.repeat(5)],
      ['PEXPIREAT', 'big', '3000000'],
    ]);
    expect(t.stats.keys).toBe(2);
  });

  it('strings on a target older than 6.2 use PEXPIREAT', () => {
    const { cmds } = run([keyStart('s', 'string', { expireMs: 2_000_000 }), { kind: 'string', value: B('v') }, keyEnd()], { targetVersion: '6.0' });
    expect(cmds).toEqual([['SET', 's', 'v'], ['PEXPIREAT', 's', '2000000']]);
  });

  it('lists: RPUSH in batches across records, DEL first with replace, expiry last', () => {
    const { cmds } = run(
      [
        keyStart('l', 'list', { expireMs: 5_000_000 }),
        { kind: 'listItems', items: [B('a'), B('b'), B('c')] },
        { kind: 'listItems', items: [B('d'), B('e')] },
        keyEnd(),
      ],
      { batchElements: 2, replace: true },
    );
    expect(cmds).toEqual([
      ['DEL', 'l'],
      ['RPUSH', 'l', 'a', 'b'],
      ['RPUSH', 'l', 'c', 'd'],
      ['RPUSH', 'l', 'e'],
      ['PEXPIREAT', 'l', '5000000'],
    ]);
  });

  it('batches by bytes as well as by count', () => {
    const { cmds } = run([keyStart('l', 'list'), { kind: 'listItems', items: [Buffer.alloc(600), Buffer.alloc(600), Buffer.alloc(10)] }, keyEnd()], { batchBytes: 1000 });
    expect(cmds.map((c) => c.length)).toEqual([4, 3]);
  });

  it('sets, zsets (exact scores) and hashes', () => {
    const { cmds } = run([
      keyStart('s', 'set'),
      { kind: 'setItems', items: [B('1'), B('x')] },
      keyEnd(),
      keyStart('z', 'zset'),
      { kind: 'zsetItems', items: [{ member: B('a'), score: -0 }, { member: B('b'), score: Infinity }, { member: B('c'), score: 0.1 }, { member: B('d'), score: -Infinity }] },
      keyEnd(),
      keyStart('h', 'hash'),
      { kind: 'hashItems', items: [{ field: B('f'), value: B('v'), expireMs: null }, { field: B(''), value: B(''), expireMs: null }] },
      keyEnd(),
    ]);
    expect(cmds).toEqual([
      ['SADD', 's', '1', 'x'],
      ['ZADD', 'z', '-0', 'a', '+inf', 'b', '0.1', 'c', '-inf', 'd'],
      ['HSET', 'h', 'f', 'v', '', ''],
    ]);
  });

  it('hash field TTLs: HPEXPIREAT grouped by time after the HSET, expired fields dropped', () => {
    const { cmds, t } = run([
      keyStart('h', 'hash'),
      {
        kind: 'hashItems',
        items: [
          { field: B('a'), value: B('1'), expireMs: 4_000_000 },
          { field: B('b'), value: B('2'), expireMs: null },
          { field: B('c'), value: B('3'), expireMs: 4_000_000 },
          { field: B('d'), value: B('4'), expireMs: 5_000_000 },
          { field: B('gone'), value: B('5'), expireMs: 999 },
        ],
      },
      keyEnd(),
    ]);
    expect(cmds).toEqual([
      ['HSET', 'h', 'a', '1', 'b', '2', 'c', '3', 'd', '4'],
      ['HPEXPIREAT', 'h', '4000000', 'FIELDS', '2', 'a', 'c'],
      ['HPEXPIREAT', 'h', '5000000', 'FIELDS', '1', 'd'],
    ]);
    expect(t.stats.expiredFieldsSkipped).toBe(1);
  });

  it('hash field TTLs on a pre-7.4 target are reported, not sent', () => {
    const { cmds, issues } = run(
      [keyStart('h', 'hash'), { kind: 'hashItems', items: [{ field: B('a'), value: B('1'), expireMs: 4_000_000 }] }, keyEnd()],
      { targetVersion: '7.2' },
    );
    expect(cmds).toEqual([['HSET', 'h', 'a', '1']]);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.message).toMatch(/7\.4/);
  });

  it('skips keys that already expired unless includeExpired', () => {
    const recs = [keyStart('old', 'string', { expireMs: 999_999 }), { kind: 'string', value: B('v') } as RdbRecord, keyEnd()];
    const a = run(recs);
    expect(a.cmds).toEqual([]);
    expect(a.t.stats.expiredSkipped).toBe(1);
    const b = run(recs, { includeExpired: true });
    expect(b.cmds).toEqual([['SET', 'old', 'v', 'PXAT', '999999']]);
  });

  it('emits SELECT when the db changes', () => {
    const { cmds } = run(
      [
        keyStart('a', 'string', { db: 0 }), { kind: 'string', value: B('1') }, keyEnd(),
        keyStart('b', 'string', { db: 0 }), { kind: 'string', value: B('2') }, keyEnd(),
        keyStart('c', 'string', { db: 3 }), { kind: 'string', value: B('3') }, keyEnd(),
      ],
      { emitSelect: true },
    );
    expect(cmds.map((c) => c[0])).toEqual(['SELECT', 'SET', 'SET', 'SELECT', 'SET']);
    expect(cmds[3]).toEqual(['SELECT', '3']);
  });

  it('functions and the old lua AUX field', () => {
    const { cmds } = run([
      { kind: 'aux', key: B('redis-ver'), value: B('7.0.0') },
      { kind: 'aux', key: B('lua'), value: B('return 1') },
      { kind: 'function', code: B('#!lua name=lib\nredis.register_function("f", function() return 1 end)') },
    ]);
    expect(cmds).toEqual([
      ['SCRIPT', 'LOAD', 'return 1'],
      ['FUNCTION', 'LOAD', 'REPLACE', '#!lua name=lib\nredis.register_function("f", function() return 1 end)'],
    ]);
  });

  it('an empty collection produces no data commands and no PEXPIREAT', () => {
    const { cmds, t } = run([keyStart('e', 'set', { expireMs: 9_000_000 }), keyEnd()]);
    expect(cmds).toEqual([]);
    expect(t.stats.emptyKeys).toBe(1);
  });

  it('a corrupt key half written is deleted again', () => {
    const { cmds, t, issues } = run(
      [keyStart('l', 'list'), { kind: 'listItems', items: [B('a'), B('b'), B('c')] }, { kind: 'keySkipped', error: new Error('bad ziplist') }],
      { batchElements: 2 },
    );
    expect(cmds).toEqual([['RPUSH', 'l', 'a', 'b'], ['DEL', 'l']]);
    expect(t.stats.corruptSkipped).toBe(1);
    expect(issues[0]!.message).toMatch(/bad ziplist/);
  });
});

describe('Translator: streams', () => {
  const streamRecords = (): RdbRecord[] => [
    keyStart('st', 'stream', { expireMs: 7_000_000 }),
    { kind: 'streamEntries', entries: [{ id: '1-0', fields: [B('a'), B('1')] }, { id: '1-1', fields: [B('b'), B('2'), B('c'), B('')] }] },
    { kind: 'streamEntries', entries: [{ id: '5-0', fields: [B('a'), B('3')] }] },
    { kind: 'streamMeta', meta: { length: 3, lastId: '6-0', firstId: '1-0', maxDeletedId: '6-0', entriesAdded: 4 } },
    { kind: 'streamGroup', group: { name: B('g1'), lastId: '5-0', entriesRead: 3 } },
    { kind: 'streamPel', entries: [{ id: '1-0', deliveryTimeMs: 111, deliveryCount: 1 }, { id: '1-1', deliveryTimeMs: 111, deliveryCount: 1 }] },
    { kind: 'streamPel', entries: [{ id: '5-0', deliveryTimeMs: 222, deliveryCount: 7 }] },
    { kind: 'streamConsumer', consumer: { name: B('alice'), seenTimeMs: 300, activeTimeMs: 300, pel: ['1-0', '1-1', '5-0'] } },
    { kind: 'streamConsumer', consumer: { name: B('idle'), seenTimeMs: 301, activeTimeMs: -1, pel: [] } },
    { kind: 'streamGroup', group: { name: B('g2'), lastId: '6-0', entriesRead: null } },
    keyEnd(),
  ];

  it('rebuilds entries, counters, groups, consumers and the PEL exactly', () => {
    const { cmds, issues } = run(streamRecords(), { replace: true });
    expect(cmds).toEqual([
      ['DEL', 'st'],
      ['XADD', 'st', '1-0', 'a', '1'],
      ['XADD', 'st', '1-1', 'b', '2', 'c', ''],
      ['XADD', 'st', '5-0', 'a', '3'],
      ['XSETID', 'st', '6-0', 'ENTRIESADDED', '4', 'MAXDELETEDID', '6-0'],
      ['XGROUP', 'CREATE', 'st', 'g1', '5-0', 'ENTRIESREAD', '3'],
      ['XGROUP', 'CREATECONSUMER', 'st', 'g1', 'alice'],
      ['XCLAIM', 'st', 'g1', 'alice', '0', '1-0', '1-1', 'TIME', '111', 'RETRYCOUNT', '1', 'FORCE', 'JUSTID'],
      ['XCLAIM', 'st', 'g1', 'alice', '0', '5-0', 'TIME', '222', 'RETRYCOUNT', '7', 'FORCE', 'JUSTID'],
      ['XGROUP', 'CREATECONSUMER', 'st', 'g1', 'idle'],
      ['XGROUP', 'CREATE', 'st', 'g2', '6-0'],
      ['PEXPIREAT', 'st', '7000000'],
    ]);
    expect(issues).toEqual([]);
  });

  it('creates an empty stream with groups via MKSTREAM, then sets its id', () => {
    const { cmds } = run([
      keyStart('e', 'stream'),
      { kind: 'streamMeta', meta: { length: 0, lastId: '0-0', firstId: '0-0', maxDeletedId: '0-0', entriesAdded: 0 } },
      { kind: 'streamGroup', group: { name: B('g'), lastId: '0-0', entriesRead: null } },
      keyEnd(),
    ]);
    expect(cmds).toEqual([
      ['XGROUP', 'CREATE', 'e', '__replicant_mkstream__', '0', 'MKSTREAM'],
      ['XGROUP', 'DESTROY', 'e', '__replicant_mkstream__'],
      ['XSETID', 'e', '0-0', 'ENTRIESADDED', '0', 'MAXDELETEDID', '0-0'],
      ['XGROUP', 'CREATE', 'e', 'g', '0-0'],
    ]);
  });

  it('uses plain XSETID and no ENTRIESREAD for pre-7.0 targets or type-15 metadata', () => {
    const recs = streamRecords();
    const { cmds } = run(recs, { targetVersion: '6.2' });
    expect(cmds).toContainEqual(['XSETID', 'st', '6-0']);
    expect(cmds).toContainEqual(['XGROUP', 'CREATE', 'st', 'g1', '5-0']);
    const old = run([
      keyStart('o', 'stream'),
      { kind: 'streamEntries', entries: [{ id: '1-1', fields: [B('k'), B('v')] }] },
      { kind: 'streamMeta', meta: { length: 1, lastId: '1-1', firstId: null, maxDeletedId: null, entriesAdded: null } },
      keyEnd(),
    ]);
    expect(old.cmds).toEqual([['XADD', 'o', '1-1', 'k', 'v'], ['XSETID', 'o', '1-1']]);
  });

  it('gives groups of a type-15 stream the read counter Redis estimates when it loads the file', () => {
    // Entries 2-0, 3-0, 4-0; last id 9-0. Redis counts a group only where it can tell: before or at
    // the first entry, at the last id; unknown (nil) in between and past the last id.
    const group = (name: string, lastId: string): RdbRecord => ({ kind: 'streamGroup', group: { name: B(name), lastId, entriesRead: null } });
    const { cmds } = run([
      keyStart('o', 'stream', { rdbType: 15 }),
      { kind: 'streamEntries', entries: ['2-0', '3-0', '4-0'].map((id) => ({ id, fields: [B('f'), B('v')] })) },
      { kind: 'streamMeta', meta: { length: 3, lastId: '9-0', firstId: null, maxDeletedId: null, entriesAdded: null } },
      group('before', '1-5'),
      group('first', '2-0'),
      group('middle', '3-0'),
      group('lastEntry', '4-0'),
      group('last', '9-0'),
      group('future', '18446744073709551615-0'),
      keyEnd(),
    ]);
    expect(cmds.filter((c) => c[1] === 'CREATE')).toEqual([
      ['XGROUP', 'CREATE', 'o', 'before', '1-5', 'ENTRIESREAD', '0'],
      ['XGROUP', 'CREATE', 'o', 'first', '2-0', 'ENTRIESREAD', '1'],
      ['XGROUP', 'CREATE', 'o', 'middle', '3-0'],
      ['XGROUP', 'CREATE', 'o', 'lastEntry', '4-0'],
      ['XGROUP', 'CREATE', 'o', 'last', '9-0', 'ENTRIESREAD', '3'],
      ['XGROUP', 'CREATE', 'o', 'future', '18446744073709551615-0'],
    ]);
    // An empty stream counts 0 wherever the group is.
    const empty = run([
      keyStart('e', 'stream', { rdbType: 15 }),
      { kind: 'streamMeta', meta: { length: 0, lastId: '5-1', firstId: null, maxDeletedId: null, entriesAdded: null } },
      group('g', '5-1'),
      keyEnd(),
    ]);
    expect(empty.cmds.at(-1)).toEqual(['XGROUP', 'CREATE', 'e', 'g', '5-1', 'ENTRIESREAD', '0']);
    // Not for a pre-7.0 target (no ENTRIESREAD there).
    expect(run([
      keyStart('e', 'stream', { rdbType: 15 }),
      { kind: 'streamMeta', meta: { length: 0, lastId: '5-1', firstId: null, maxDeletedId: null, entriesAdded: null } },
      group('g', '5-1'),
      keyEnd(),
    ], { targetVersion: '6.2' }).cmds.at(-1)).toEqual(['XGROUP', 'CREATE', 'e', 'g', '5-1']);
  });

  it('reports PEL entries without an owner and owners without a PEL entry', () => {
    const { issues } = run([
      keyStart('s', 'stream'),
      { kind: 'streamEntries', entries: [{ id: '1-0', fields: [B('a'), B('1')] }] },
      { kind: 'streamMeta', meta: { length: 1, lastId: '1-0', firstId: '1-0', maxDeletedId: '0-0', entriesAdded: 1 } },
      { kind: 'streamGroup', group: { name: B('g'), lastId: '1-0', entriesRead: 1 } },
      { kind: 'streamPel', entries: [{ id: '1-0', deliveryTimeMs: 1, deliveryCount: 1 }] },
      { kind: 'streamConsumer', consumer: { name: B('c'), seenTimeMs: 1, activeTimeMs: 1, pel: ['9-9'] } },
      keyEnd(),
    ]);
    expect(issues.map((i) => i.message)).toEqual([expect.stringMatching(/9-9.*not in the PEL/), expect.stringMatching(/1 pending entries .* no consumer/)]);
  });

  it('reports pending entries of deleted stream entries (XCLAIM cannot recreate them on 7.0+)', () => {
    const recs: RdbRecord[] = [
      keyStart('s', 'stream'),
      { kind: 'streamEntries', entries: [{ id: '1-0', fields: [B('a'), B('1')] }, { id: '3-0', fields: [B('a'), B('3')] }] },
      { kind: 'streamMeta', meta: { length: 2, lastId: '3-0', firstId: '1-0', maxDeletedId: '2-0', entriesAdded: 3 } },
      { kind: 'streamGroup', group: { name: B('g'), lastId: '3-0', entriesRead: 3 } },
      { kind: 'streamPel', entries: [{ id: '1-0', deliveryTimeMs: 1, deliveryCount: 1 }, { id: '2-0', deliveryTimeMs: 1, deliveryCount: 1 }] },
      { kind: 'streamConsumer', consumer: { name: B('c'), seenTimeMs: 1, activeTimeMs: 1, pel: ['1-0', '2-0'] } },
      keyEnd(),
    ];
    const { cmds, issues } = run(recs);
    expect(cmds).toContainEqual(['XCLAIM', 's', 'g', 'c', '0', '1-0', '2-0', 'TIME', '1', 'RETRYCOUNT', '1', 'FORCE', 'JUSTID']);
    expect(issues.map((i) => i.message)).toEqual([expect.stringMatching(/^1 pending entries refer to deleted stream entries/)]);
    expect(run(recs, { targetVersion: '6.2' }).issues).toEqual([]);
  });
});

describe('Translator: restore mode', () => {
  const raw = Buffer.from([0x00, 0x01, 0x61]); // STRING "a"

  it('replaces the buffered commands with one RESTORE when raw bytes exist', () => {
    const { cmds, t } = run(
      [
        { kind: 'header', magic: 'REDIS', version: 10 },
        keyStart('k', 'list', { expireMs: 8_000_000, lruIdle: 7 }),
        { kind: 'listItems', items: [B('a')] },
        keyEnd(raw),
      ],
      { mode: 'restore', replace: true },
    );
    expect(cmds).toHaveLength(1);
    const c = cmds[0]!;
    expect(c.slice(0, 3)).toEqual(['RESTORE', 'k', '8000000']);
    expect(c.slice(4)).toEqual(['ABSTTL', 'REPLACE', 'IDLETIME', '7']);
    // payload = raw + version (u16le) + crc64 (8 bytes)
    const payload = Buffer.from(c[3]!, 'latin1');
    expect(payload.length).toBe(raw.length + 10);
    expect(payload.subarray(0, raw.length)).toEqual(raw);
    expect(payload.readUInt16LE(raw.length)).toBe(10);
    expect(t.stats.restoredKeys).toBe(1);
  });

  it('FREQ for LFU keys, ttl 0 without expiry', () => {
    const { cmds } = run([keyStart('k', 'string', { lfuFreq: 5 }), { kind: 'string', value: B('a') }, keyEnd(raw)], { mode: 'restore', payloadVersion: 9 });
    expect(cmds[0]!.slice(0, 3)).toEqual(['RESTORE', 'k', '0']);
    expect(cmds[0]!.slice(4)).toEqual(['ABSTTL', 'FREQ', '5']);
  });

  it('falls back to the commands when raw is null, and streams big keys past the buffer limit', () => {
    const noRaw = run([{ kind: 'header', magic: 'REDIS', version: 10 }, keyStart('k', 'set'), { kind: 'setItems', items: [B('a')] }, keyEnd(null)], { mode: 'restore' });
    expect(noRaw.cmds).toEqual([['SADD', 'k', 'a']]);

    const t = new Translator({ mode: 'restore', restoreBufferBytes: 100, batchElements: 2, emitSelect: false, payloadVersion: 10 });
    const out: Arg[][] = [];
    t.push(keyStart('big', 'list'), out);
    t.push({ kind: 'listItems', items: [B('a'), B('b')] }, out);
    expect(out).toEqual([]); // still buffered
    t.push({ kind: 'listItems', items: Array.from({ length: 10 }, () => Buffer.alloc(20, 'z')) }, out);
    expect(out.length).toBeGreaterThan(0); // spilled: streaming now
    t.push(keyEnd(raw), out); // raw ignored once commands went out
    const all = out.map((c) => c.map(text));
    expect(all.every((c) => c[0] === 'RPUSH')).toBe(true);
    expect(all.reduce((n, c) => n + c.length - 2, 0)).toBe(12);
  });

  it('module keys: RESTORE with raw bytes, a clear error without', () => {
    const mod: RdbRecord = { kind: 'module', moduleId: 1n, moduleName: 'ReJSON-RL', encVersion: 0, payload: B('xx') };
    const ok = run([keyStart('m', 'module', { rdbType: 7 }), mod, keyEnd(Buffer.from([7, 1, 2]))], { payloadVersion: 8 });
    expect(ok.cmds[0]![0]).toBe('RESTORE');
    expect(() => run([keyStart('m', 'module', { rdbType: 7 }), mod, keyEnd(null)])).toThrow(UntranslatableKeyError);
    expect(() => run([keyStart('m', 'module', { rdbType: 7 }), mod, keyEnd(null)])).toThrow(/ReJSON-RL.*RESTORE.*key "m"/);
    const skipped = run([keyStart('m', 'module', { rdbType: 7 }), mod, keyEnd(null)], { onUntranslatable: 'skip' });
    expect(skipped.cmds).toEqual([]);
    expect(skipped.t.stats.untranslatable).toBe(1);
    expect(skipped.issues).toHaveLength(1);
  });
});

describe('Translator: field TTLs across HSET batches', () => {
  it('sends each HPEXPIREAT right after the HSET that wrote its fields', () => {
    const items = Array.from({ length: 5 }, (_, i) => ({ field: B(`f${i}`), value: B('v'), expireMs: 9_000_000 + (i % 2) }));
    const { cmds } = run([keyStart('h', 'hash'), { kind: 'hashItems', items }, keyEnd()], { batchElements: 2 });
    expect(cmds).toEqual([
      ['HSET', 'h', 'f0', 'v', 'f1', 'v'],
      ['HPEXPIREAT', 'h', '9000000', 'FIELDS', '1', 'f0'],
      ['HPEXPIREAT', 'h', '9000001', 'FIELDS', '1', 'f1'],
      ['HSET', 'h', 'f2', 'v', 'f3', 'v'],
      ['HPEXPIREAT', 'h', '9000000', 'FIELDS', '1', 'f2'],
      ['HPEXPIREAT', 'h', '9000001', 'FIELDS', '1', 'f3'],
      ['HSET', 'h', 'f4', 'v'],
      ['HPEXPIREAT', 'h', '9000000', 'FIELDS', '1', 'f4'],
    ]);
  });
});

describe('Translator: auto mode', () => {
  it('keeps strings on SET and restores collections', () => {
    const raw = Buffer.from([0x00, 0x01, 0x61]);
    const { cmds } = run(
      [
        keyStart('s', 'string'), { kind: 'string', value: B('a') }, keyEnd(raw),
        keyStart('l', 'list'), { kind: 'listItems', items: [B('a')] }, keyEnd(Buffer.from([0x12, 0x00])),
      ],
      { mode: 'auto', payloadVersion: 10 },
    );
    expect(cmds.map((c) => c[0])).toEqual(['SET', 'RESTORE']);
  });
});

describe('Translator: sinks and payload buffers', () => {
  const setKey = (name: string, raw: Buffer): RdbRecord[] => [keyStart(name, 'set'), { kind: 'setItems', items: [B('m')] }, keyEnd(raw)];

  it('push() appends to any object with push(), in order, and returns it', () => {
    const seen: string[] = [];
    const sink = { push: (c: Arg[]) => seen.push(c.map(text).join(' ')) };
    const t = new Translator({ emitSelect: false });
    for (const r of [keyStart('a', 'string'), { kind: 'string', value: B('1') } as RdbRecord, keyEnd(null)]) expect(t.push(r, sink)).toBe(sink);
    expect(seen).toEqual(['SET a 1']);
    expect(t.push(keyStart('b', 'string'))).toEqual([]);
  });

  it('transientCommands: plain SETs share one array handed out one at a time; buffered ones do not', () => {
    const strings = (n: number): RdbRecord[] => Array.from({ length: n }, (_, i) => [keyStart(`s${i}`, 'string'), { kind: 'string', value: B(`v${i}`) } as RdbRecord, keyEnd(null)]).flat();
    const seen: Arg[][] = [];
    const texts: string[] = [];
    const sink = { push: (c: Arg[]) => { seen.push(c); texts.push(c.map(text).join(' ')); } };
    const t = new Translator({ emitSelect: false, transientCommands: true });
    for (const r of strings(3)) t.push(r, sink);
    expect(texts).toEqual(['SET s0 v0', 'SET s1 v1', 'SET s2 v2']);
    expect(seen[0]).toBe(seen[2]);
    // Restore mode without raw bytes (the key is translated at keyEnd), and the default: arrays of their own.
    texts.length = 0;
    const r = new Translator({ emitSelect: false, transientCommands: true, mode: 'restore', payloadVersion: 10, replace: true });
    for (const rec of strings(2)) r.push(rec, sink);
    expect(texts).toEqual(['SET s0 v0', 'SET s1 v1']);
    const out: Arg[][] = [];
    const d = new Translator({ emitSelect: false });
    for (const rec of strings(3)) d.push(rec, out);
    expect(out.map((c) => c.map(text).join(' '))).toEqual(['SET s0 v0', 'SET s1 v1', 'SET s2 v2']);
  });

  it('by default every RESTORE payload is a Buffer of its own', () => {
    const { cmds } = run([...setKey('a', Buffer.alloc(40, 1)), ...setKey('b', Buffer.alloc(30, 2))], { mode: 'restore', payloadVersion: 10 });
    expect(cmds.map((c) => c[3])).toEqual([
      buildDumpPayload(Buffer.alloc(40, 1), 10).toString('latin1'),
      buildDumpPayload(Buffer.alloc(30, 2), 10).toString('latin1'),
    ]);
  });

  it('transientCommands: the same payload bytes, valid until the next push; big payloads still get their own', () => {
    const t = new Translator({ emitSelect: false, mode: 'restore', payloadVersion: 11, transientCommands: true });
    const payloads: Buffer[] = [];
    const copies: Buffer[] = [];
    const sink = { push: (c: Arg[]) => { payloads.push(c[3] as Buffer); copies.push(Buffer.from(c[3] as Buffer)); } };
    const raws = [Buffer.alloc(40, 1), Buffer.alloc(100_000, 2), Buffer.alloc(2 * 1024 * 1024, 3), Buffer.alloc(20, 4)];
    raws.forEach((raw, i) => { for (const r of setKey(`k${i}`, raw)) t.push(r, sink); });
    expect(copies.map((p, i) => p.equals(buildDumpPayload(raws[i]!, 11)))).toEqual([true, true, true, true]);
    // The 100 kB payload grew the shared buffer, the last one reused it (overwriting the 100 kB
    // one's bytes: valid only until the next push); the 2 MiB one got a buffer of its own.
    expect(payloads[3]!.buffer === payloads[1]!.buffer).toBe(true);
    expect(payloads[1]!.equals(copies[1]!)).toBe(false);
    expect(payloads[2]!.buffer === payloads[1]!.buffer).toBe(false);
    expect(payloads[2]!.equals(copies[2]!)).toBe(true);
  });
});

describe('Translator: arrays (Redis 8.8)', () => {
  it('are written with RESTORE only', () => {
    const recs = (raw: Buffer | null): RdbRecord[] => [
      keyStart('a', 'array', { rdbType: 28 }),
      { kind: 'arrayMeta', insertIndex: null },
      { kind: 'arrayItems', items: [{ index: 0, value: B('x'), encoding: 'string' }] },
      keyEnd(raw),
    ];
    expect(run(recs(Buffer.from([28, 1, 0])), { payloadVersion: 14 }).cmds.map((c) => c[0])).toEqual(['RESTORE']);
    expect(() => run(recs(null))).toThrow(/array value .* RESTORE/);
  });
});
