import { describe, expect, it } from 'vitest';
import { encodeCommand, type Arg } from '../../src/resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../src/resp/stream-parser.js';
import { PartialScope, SnapshotScope, parseDbMap, parseRenamePrefix, type PartialSyncSpec } from '../../src/sync/relay/selection.js';
import { StreamBatcher, type StreamUnit } from '../../src/sync/relay/batcher.js';
import { StreamFilter } from '../../src/sync/relay/by-name.js';
import type { RdbRecord } from '../../src/rdb/types.js';
import { CommandTable } from '../../src/commands/table.js';
import { testRelay } from '../helpers/relay.js';

function parse(args: Arg[]): StreamCommand {
  const [c] = new ReplicationStreamParser(0).push(encodeCommand(args));
  return c!;
}

/** RESP bytes -> readable words, one string per command. */
function words(b: Buffer): string {
  return b.toString('latin1').split('\r\n').filter((_, i) => i > 0 && i % 2 === 0).join(' ');
}

interface Outcome {
  out: string[] | null;
  conflicts: string[];
}

function run(spec: PartialSyncSpec, args: Arg[], db = 0): Outcome {
  const conflicts: string[] = [];
  const f = new StreamFilter(new PartialScope(spec), { onConflict: (_c, _db, reason) => conflicts.push(reason) });
  const r = f.apply(parse(args), db);
  return { out: r === null ? null : (Buffer.isBuffer(r) ? [r] : r).map(words), conflicts };
}

const KEEP_A = { keys: ['a:*'] };

describe('PartialScope', () => {
  it('keeps keys by globs, prefixes and exclusions', () => {
    const s = new PartialScope({ keys: ['a:*'], prefixes: ['b:'], excludes: ['*:tmp'] });
    const k = (x: string) => s.keepsKey(Buffer.from(x));
    expect([k('a:1'), k('b:2'), k('c:3'), k('a:tmp'), k('b:tmp')]).toEqual([true, true, false, false, false]);
    expect(new PartialScope({ excludes: ['x*'] }).keepsKey(Buffer.from('y'))).toBe(true);
  });

  it('renames prefixes and inverts the rename; flags names that would collide', () => {
    const s = new PartialScope({ renamePrefix: ['old:', 'new:'] });
    expect(s.rename(Buffer.from('old:1')).toString()).toBe('new:1');
    expect(s.rename(Buffer.from('other')).toString()).toBe('other');
    expect(s.sourceName(Buffer.from('new:1'))!.toString()).toBe('old:1');
    expect(s.sourceName(Buffer.from('old:1'))).toBeNull();
    expect(s.collides(Buffer.from('new:9'))).toBe(true);
    expect(s.collides(Buffer.from('old:9'))).toBe(false);
  });

  it('maps dbs, refuses two kept dbs landing in one, and inverts the map', () => {
    expect(() => new PartialScope({ dbMap: parseDbMap('3:0') })).toThrow(/source dbs 0 and 3 would both be written to target db 0/);
    const s = new PartialScope({ dbs: [3, 4], dbMap: parseDbMap('3:0,4:1') });
    expect([s.targetDb(3), s.targetDb(4), s.sourceDb(0), s.sourceDb(1), s.sourceDb(3)]).toEqual([0, 1, 3, 4, null]);
    expect(() => parseDbMap('3-0')).toThrow(/--db-map/);
    expect(parseRenamePrefix('a\\:b:c')).toEqual(['a:b', 'c']);
    expect(parseRenamePrefix('legacy\\::app:')).toEqual(['legacy:', 'app:']);
    expect(parseRenamePrefix(':new:')).toEqual(['', 'new:']);
  });

  it('has a fingerprint that ignores order and is empty without filters', () => {
    expect(new PartialScope({}).fingerprint).toBe('');
    expect(new PartialScope({ keys: ['b', 'a'], dbs: [2, 1] }).fingerprint).toBe(new PartialScope({ keys: ['a', 'b'], dbs: [1, 2] }).fingerprint);
    expect(new PartialScope({ keys: ['a'] }).fingerprint).not.toBe(new PartialScope({ keys: ['b'] }).fingerprint);
    expect(() => new PartialScope({ excludeCommands: ['SELECT'] })).toThrow(/cannot be excluded/);
  });
});

describe('SnapshotScope', () => {
  it('drops the records of filtered keys and renames / remaps kept ones', () => {
    const header = (key: string, db: number) => ({ kind: 'keyStart', key: Buffer.from(key), db, type: 'string', expireMs: null, offset: 0 }) as unknown as RdbRecord;
    const value = { kind: 'string', value: Buffer.from('v') } as unknown as RdbRecord;
    const end = { kind: 'keyEnd' } as unknown as RdbRecord;
    const snap = new SnapshotScope(new PartialScope({ dbs: [3], keys: ['old:*'], renamePrefix: ['old:', 'new:'], dbMap: parseDbMap('3:0') }), () => {});
    const out = snap.apply([header('old:1', 3), value, end, header('x', 3), value, end, header('old:2', 1), value, end]);
    expect(out).toHaveLength(3);
    const h = out[0] as unknown as { key: Buffer; db: number };
    expect([h.key.toString(), h.db]).toEqual(['new:1', 0]);
    expect(snap.filtered).toBe(2);
  });

  it('drops the keys a cluster shard no longer has the latest copy of (migrated to another shard)', () => {
    const header = (key: string) => ({ kind: 'keyStart', key: Buffer.from(key), db: 0, type: 'string', expireMs: null, offset: 0 }) as unknown as RdbRecord;
    const part = { kind: 'stringPart', value: Buffer.from('v'), offset: 0, total: 2 } as unknown as RdbRecord;
    const end = { kind: 'keyEnd' } as unknown as RdbRecord;
    const snap = new SnapshotScope(new PartialScope(), () => {}, (key) => key.toString() === 'moved');
    const out = snap.apply([header('kept'), part, part, end, header('moved'), part, part, end, header('after'), end]);
    expect(out.filter((r) => r.kind === 'keyStart').map((r) => (r as unknown as { key: Buffer }).key.toString())).toEqual(['kept', 'after']);
    expect(out).toHaveLength(6);
    expect([snap.superseded, snap.filtered]).toEqual([1, 0]);
  });
  it('keys of a db the target lacks are handed over with their real names (lost keys), never written to another db; a stream SELECT of such a db goes to db 0', () => {
    const header = (key: string, db: number) => ({ kind: 'keyStart', key: Buffer.from(key), db, type: 'string', expireMs: null, offset: 0 }) as unknown as RdbRecord;
    const value = { kind: 'string', value: Buffer.from('v') } as unknown as RdbRecord;
    const end = { kind: 'keyEnd' } as unknown as RdbRecord;
    const scope = new PartialScope();
    scope.limitTargetDbs(4);
    const missing: string[] = [];
    const snap = new SnapshotScope(scope, () => {}, undefined, undefined, (db, key) => missing.push(`${db}:${key.toString()}`));
    const out = snap.apply([header('a', 0), value, end, header('b', 5), value, end, header('c', 15), value, end, header('d', 3), value, end]);
    expect(out.filter((r) => r.kind === 'keyStart').map((r) => (r as unknown as { key: Buffer }).key.toString())).toEqual(['a', 'd']);
    expect(out).toHaveLength(6);
    expect(missing).toEqual(['5:b', '15:c']);
    expect([scope.connectionDb(3), scope.connectionDb(5)]).toEqual([3, 0]);
    // --db-map into a db the target has makes it writable.
    const mapped = new PartialScope({ dbs: [0, 5], dbMap: parseDbMap('5:1') });
    mapped.limitTargetDbs(4);
    expect([mapped.targetHas(5), mapped.connectionDb(5)]).toEqual([true, 1]);
  });
});

describe('StreamFilter', () => {
  it('passes single-key commands of kept keys and drops the others', () => {
    expect(run(KEEP_A, ['SET', 'a:1', 'v'])).toEqual({ out: ['SET a:1 v'], conflicts: [] });
    expect(run(KEEP_A, ['SET', 'b:1', 'v']).out).toBeNull();
    expect(run(KEEP_A, ['XGROUP', 'CREATE', 'a:s', 'g', '$']).out).toEqual(['XGROUP CREATE a:s g $']);
    expect(run(KEEP_A, ['PUBLISH', 'ch', 'm']).out).toEqual(['PUBLISH ch m']);
    expect(run({ dbs: [1] }, ['SET', 'a:1', 'v'], 0).out).toBeNull();
  });

  it('splits independent multi-key commands exactly', () => {
    expect(run(KEEP_A, ['DEL', 'a:1', 'b:1', 'a:2']).out).toEqual(['DEL a:1 a:2']);
    expect(run(KEEP_A, ['UNLINK', 'b:1']).out).toBeNull();
    expect(run(KEEP_A, ['MSET', 'a:1', '1', 'b:1', '2', 'a:2', '3']).out).toEqual(['MSET a:1 1 a:2 3']);
    // A propagated MSETNX set every key: its kept part is exact too.
    expect(run(KEEP_A, ['MSETNX', 'b:1', '1', 'a:1', '2']).out).toEqual(['MSETNX a:1 2']);
    expect(run({ ...KEEP_A, renamePrefix: ['a:', 'z:'] }, ['DEL', 'a:1', 'b:1']).out).toEqual(['DEL z:1']);
  });

  it('reduces data leaving the kept keys to its effect on them', () => {
    expect(run(KEEP_A, ['RENAME', 'a:1', 'b:1']).out).toEqual(['DEL a:1']);
    expect(run(KEEP_A, ['RENAMENX', 'a:1', 'a:2']).out).toEqual(['RENAMENX a:1 a:2']);
    expect(run(KEEP_A, ['SMOVE', 'a:s', 'b:s', 'm']).out).toEqual(['SREM a:s m']);
    expect(run(KEEP_A, ['LMOVE', 'a:l', 'b:l', 'RIGHT', 'LEFT']).out).toEqual(['RPOP a:l']);
    expect(run(KEEP_A, ['RPOPLPUSH', 'a:l', 'b:l']).out).toEqual(['RPOP a:l']);
    expect(run(KEEP_A, ['SUNIONSTORE', 'b:d', 'a:1', 'a:2']).out).toBeNull();
    expect(run(KEEP_A, ['COPY', 'a:1', 'b:1']).out).toBeNull();
    expect(run({ dbs: [0] }, ['MOVE', 'k', '5']).out).toEqual(['DEL k']);
  });

  it('names a conflict for data arriving from outside, scripts on both sides, and db-wide commands', () => {
    const cases: [PartialSyncSpec, Arg[], RegExp][] = [
      [KEEP_A, ['RENAME', 'b:1', 'a:1'], /brings key "b:1"/],
      [KEEP_A, ['SMOVE', 'b:s', 'a:s', 'm'], /not kept/],
      [KEEP_A, ['SUNIONSTORE', 'a:d', 'a:1', 'b:2'], /from key "b:2"/],
      [KEEP_A, ['ZUNIONSTORE', 'a:d', '2', 'a:1', 'b:2'], /from key "b:2"/],
      [KEEP_A, ['COPY', 'b:1', 'a:1'], /COPY into a kept key/],
      [KEEP_A, ['EVAL', 'return 1', '2', 'a:1', 'b:1'], /kept and not kept/],
      [KEEP_A, ['EVAL', 'return 1', '0'], /declares no keys/],
      [KEEP_A, ['FLUSHDB'], /FLUSHDB while keys are filtered/],
      [KEEP_A, ['FLUSHALL'], /FLUSHALL while keys are filtered/],
      [{ dbs: [0] }, ['SWAPDB', '0', '1'], /SWAPDB of db 0 \(kept\) with db 1/],
      [{ dbs: [5] }, ['MOVE', 'k', '5'], /MOVE from db 0 \(not kept\)/],
      [{ renamePrefix: ['a:', 'b:'] }, ['SET', 'b:1', 'v'], /already has the new prefix/],
      [KEEP_A, ['SORT', 'a:l', 'BY', 'w_*', 'STORE', 'a:d'], /BY or GET reads keys through patterns/],
    ];
    for (const [spec, args, why] of cases) {
      const r = run(spec, args);
      expect(r.out, args.join(' ')).toBeNull();
      expect(r.conflicts, args.join(' ')).toHaveLength(1);
      expect(r.conflicts[0]).toMatch(why);
    }
    expect(run(KEEP_A, ['EVAL', 'return 1', '2', 'a:1', 'a:2']).conflicts).toEqual([]);
    expect(run(KEEP_A, ['EVAL', 'return 1', '1', 'b:1']).out).toBeNull();
    expect(run(KEEP_A, ['SORT', 'a:l', 'BY', 'nosort', 'GET', '#', 'STORE', 'a:d']).out).toEqual(['SORT a:l BY nosort GET # STORE a:d']);
    expect(run(KEEP_A, ['SORT', 'a:l', 'STORE', 'b:d']).out).toBeNull();
  });

  it('rewrites keys, dbs and FLUSHALL under a rename and a db map', () => {
    const spec: PartialSyncSpec = { dbs: [3, 4], dbMap: parseDbMap('3:0,4:1'), renamePrefix: ['a:', 'z:'] };
    expect(run(spec, ['SUNIONSTORE', 'a:d', 'a:1', 'q'], 3).out).toEqual(['SUNIONSTORE z:d z:1 q']);
    expect(run(spec, ['MOVE', 'a:1', '4'], 3).out).toEqual(['MOVE z:1 1']);
    expect(run(spec, ['COPY', 'a:1', 'a:2', 'DB', '4', 'REPLACE'], 3).out).toEqual(['COPY z:1 z:2 DB 1 REPLACE']);
    expect(run(spec, ['SWAPDB', '3', '4'], 3).out).toEqual(['SWAPDB 0 1']);
    expect(run(spec, ['FLUSHALL'], 4).out).toEqual(['SELECT 0', 'FLUSHDB', 'SELECT 1', 'FLUSHDB', 'SELECT 1']);
    expect(run(spec, ['FLUSHDB'], 5).out).toBeNull();
  });

  it("uses the target's COMMAND table for commands it has no rule for (module commands)", () => {
    const table = CommandTable.parse([
      ['m.multi', -2, ['write'], 1, -1, 1],
      ['m.pairs', -3, ['write'], 1, -1, 2],
      ['m.movable', -2, ['write', 'movablekeys'], 0, 0, 0],
      ['m.nokey', 1, ['write'], 0, 0, 0],
      ['m.one', 2, ['write'], 1, 1, 1],
    ])!;
    const conflicts: string[] = [];
    const f = new StreamFilter(new PartialScope(KEEP_A), { onConflict: (_c, _d, r) => conflicts.push(r), keyPositions: (n) => table.keyPositions(n) });
    const out = (args: Arg[]) => {
      const r = f.apply(parse(args), 0);
      return r === null ? null : words(r as Buffer);
    };
    expect(out(['M.MULTI', 'a:1', 'a:2'])).toBe('M.MULTI a:1 a:2');
    expect(out(['M.MULTI', 'b:1', 'b:2'])).toBeNull();
    expect(out(['M.MULTI', 'a:1', 'b:2'])).toBeNull();
    expect(out(['M.PAIRS', 'a:1', 'v', 'a:2', 'w'])).toBe('M.PAIRS a:1 v a:2 w');
    expect(out(['M.MOVABLE', 'x'])).toBeNull();
    expect(out(['M.NOKEY'])).toBe('M.NOKEY');
    expect(out(['M.ONE', 'b:1'])).toBeNull();
    expect(conflicts).toHaveLength(2);
    expect(conflicts[0]).toMatch(/M.MULTI touches kept and not kept keys/);
    expect(conflicts[1]).toMatch(/movablekeys/);
  });

  it('drops excluded commands', () => {
    let excluded = 0;
    const f = new StreamFilter(new PartialScope({ excludeCommands: ['FLUSHALL'] }), { onConflict: () => {}, onExcluded: () => excluded++ });
    expect(f.apply(parse(['FLUSHALL']), 0)).toBeNull();
    expect(f.apply(parse(['SET', 'k', 'v']), 0)).not.toBeNull();
    expect(excluded).toBe(1);
  });
});

describe('StreamFilter with --type', () => {
  const HASH = { types: ['hash'] } as PartialSyncSpec;

  it('relays commands of kept types, drops those of other types, deletes what an overwrite of another type replaced', () => {
    expect(run(HASH, ['HSET', 'h', 'f', 'v']).out).toEqual(['HSET h f v']);
    expect(run(HASH, ['LPUSH', 'l', 'x']).out).toBeNull();
    expect(run(HASH, ['SETNX', 's', 'x']).out).toBeNull();
    // SET replaces a key of any type: the hash it may have replaced leaves the image.
    expect(run(HASH, ['SET', 'h', 'x']).out).toEqual(['DEL h']);
    expect(run(HASH, ['MSET', 'a', '1', 'b', '2']).out).toEqual(['DEL a b']);
    expect(run({ types: ['string'] }, ['MSET', 'a', '1', 'b', '2']).out).toEqual(['MSET a 1 b 2']);
    // Commands on any type do nothing to a key the target lacks.
    expect(run(HASH, ['DEL', 'x', 'y']).out).toEqual(['DEL x y']);
    expect(run(HASH, ['PEXPIREAT', 'x', '99999999999']).out).toEqual(['PEXPIREAT x 99999999999']);
    expect(run(HASH, ['XGROUP', 'CREATE', 'st', 'g', '$']).out).toBeNull();
  });

  it('stores: a dropped result type deletes the destination; sources of a dropped type are a conflict', () => {
    expect(run(HASH, ['SUNIONSTORE', 'd', 'a', 'b']).out).toEqual(['DEL d']);
    expect(run({ types: ['set'] }, ['SUNIONSTORE', 'd', 'a', 'b']).out).toEqual(['SUNIONSTORE d a b']);
    const z = run({ types: ['zset'] }, ['ZUNIONSTORE', 'd', '2', 'a', 'b']);
    expect(z.out).toBeNull();
    expect(z.conflicts[0]).toMatch(/ZUNIONSTORE writes a kept zset from keys that may be sets/);
    expect(run({ types: ['zset', 'set'] }, ['ZUNIONSTORE', 'd', '2', 'a', 'b']).out).toEqual(['ZUNIONSTORE d 2 a b']);
    expect(run(HASH, ['SORT', 'l', 'STORE', 'd']).out).toEqual(['DEL d']);
    expect(run({ types: ['list'] }, ['SORT', 'l', 'STORE', 'd']).conflicts[0]).toMatch(/SORT writes a kept list/);
  });

  it('RENAME and COPY decide on the target; RESTORE by its payload type; scripts are conflicts', () => {
    const r = run(HASH, ['RENAME', 'a', 'b']).out!;
    expect(r[0]).toMatch(/^EVAL .*RENAME.* 2 a b$/);
    expect(run(HASH, ['COPY', 'a', 'b', 'REPLACE']).out![0]).toMatch(/^EVAL .*COPY.* 2 a b REPLACE$/);
    expect(run(HASH, ['COPY', 'a', 'b', 'DB', '1']).conflicts[0]).toMatch(/COPY \.\.\. DB/);
    const hashPayload = Buffer.from([4, 0]); // RDB_TYPE_HASH
    const listPayload = Buffer.from([18, 0]); // RDB_TYPE_LIST_QUICKLIST_2
    expect(run(HASH, ['RESTORE', 'k', '0', hashPayload]).out).not.toBeNull();
    expect(run(HASH, ['RESTORE', 'k', '0', listPayload]).out).toBeNull();
    expect(run(HASH, ['RESTORE', 'k', '0', listPayload, 'REPLACE']).out).toEqual(['DEL k']);
    expect(run(HASH, ['EVAL', 'return 1', '1', 'k']).conflicts[0]).toMatch(/EVAL: the types of the keys a script writes are unknown/);
    expect(run(HASH, ['FLUSHDB']).conflicts[0]).toMatch(/filtered by name or type/);
  });

  it('runs after the name stage: renamed keys, and keys outside the name filter never reach it', () => {
    const spec = { types: ['hash'], keys: ['a:*'], renamePrefix: ['a:', 'b:'] } as PartialSyncSpec;
    expect(run(spec, ['HSET', 'a:1', 'f', 'v']).out).toEqual(['HSET b:1 f v']);
    expect(run(spec, ['SET', 'a:1', 'v']).out).toEqual(['DEL b:1']);
    expect(run(spec, ['SET', 'z', 'v']).out).toBeNull();
    expect(run(spec, ['MSET', 'a:1', '1', 'z', '2']).out).toEqual(['DEL b:1']);
  });

  it('the snapshot keeps only the kept types; the fingerprint names them only when given', () => {
    const header = (key: string, type: string) => ({ kind: 'keyStart', key: Buffer.from(key), db: 0, type, expireMs: null, offset: 0 }) as unknown as RdbRecord;
    const end = { kind: 'keyEnd' } as unknown as RdbRecord;
    const snap = new SnapshotScope(new PartialScope(HASH), () => {});
    expect(snap.apply([header('h', 'hash'), end, header('s', 'string'), end]).length).toBe(2);
    expect(snap.filtered).toBe(1);
    expect(new PartialScope({ keys: ['a*'] }).fingerprint).not.toContain('types');
    expect(new PartialScope({ types: ['zset', 'hash', 'hash'] } as PartialSyncSpec).fingerprint).toContain('"types":["hash","zset"]');
  });
});

describe('StreamBatcher with a filter', () => {
  it('rewrites SELECT, drops commands of other dbs and keeps transactions whole', () => {
    const batcher = new StreamBatcher({ db: 0, atomicUnits: false, relay: testRelay({ partial: { dbs: [3], dbMap: parseDbMap('3:0'), keys: ['a:*'] } }).relay });
    const cmds: Arg[][] = [['SET', 'a:x', '0'], ['SELECT', '3'], ['SET', 'a:1', 'v'], ['MULTI'], ['SET', 'b:1', 'v'], ['DEL', 'a:1', 'b:2'], ['EXEC'], ['SELECT', '1'], ['SET', 'a:2', 'v']];
    const units: StreamUnit[] = [];
    for (const c of new ReplicationStreamParser(0).push(Buffer.concat(cmds.map((c) => encodeCommand(c))))) batcher.push(c, units);
    const last = batcher.cut();
    if (last !== null) units.push(last);
    expect(units.map((u) => ({ cmds: u.commands.map(words), atomic: u.atomic }))).toEqual([
      { cmds: ['SELECT 0', 'SET a:1 v'], atomic: false },
      { cmds: ['DEL a:1'], atomic: true },
      // A dropped db: nothing of it is forwarded, but the connection moves to db 0 (it may lack db 1).
      { cmds: ['SELECT 0'], atomic: false },
    ]);
    expect(units[2]!.dbAfter).toBe(1);
  });
});
