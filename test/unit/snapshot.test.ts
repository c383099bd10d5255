/**
 * SnapshotApplier: the units it hands the writer must hold exactly the translator's commands,
 * in order (plain SETs merged into MSETs), each unit whole commands, `count` right, sizes bounded.
 * The writer here is a recorder (units are what is under test, not the connection).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observe/logger.js';
import type { KeyHeader, RdbRecord, ValueType } from '../../src/rdb/types.js';
import type { Arg } from '../../src/resp/encode.js';
import { MSET_PAIRS, SnapshotApplier, type SnapshotApplierOptions } from '../../src/sync/apply/snapshot-writer.js';
import { Translator } from '../../src/translate/translator.js';
import type { TranslateOptions } from '../../src/translate/options.js';
import type { UnitWriter } from '../../src/writer/index.js';
import type { WriteUnit } from '../../src/writer/types.js';
import { RdbDecoder } from '../../src/rdb/decoder.js';
import { KeyStartRecord } from '../../src/rdb/records.js';
import { RdbWriter, intStrBytes } from '../helpers/rdb-writer.js';

const B = (s: string) => Buffer.from(s);

function keyStart(key: Buffer, type: ValueType, extra: Partial<KeyHeader> = {}): RdbRecord {
  return { kind: 'keyStart', db: 0, key, rdbType: 0, type, expireMs: null, lruIdle: null, lfuFreq: null, offset: 0, ...extra };
}
const keyEnd = (raw: Buffer | null): RdbRecord => ({ kind: 'keyEnd', raw, valueBytes: raw ? raw.length - 1 : 0 });

/** RESP2 multibulks -> commands (arguments as latin1 strings); throws on anything else or a cut command. */
function parseCommands(buf: Buffer): string[][] {
  const out: string[][] = [];
  let o = 0;
  const line = (): string => {
    const end = buf.indexOf('\r\n', o, 'latin1');
    if (end < 0) throw new Error(`no CRLF after byte ${o}`);
    const s = buf.toString('latin1', o, end);
    o = end + 2;
    return s;
  };
  while (o < buf.length) {
    const head = line();
    if (!head.startsWith('*')) throw new Error(`expected a multibulk at byte ${o}, got ${head}`);
    const n = Number(head.slice(1));
    const cmd: string[] = [];
    for (let i = 0; i < n; i++) {
      const h = line();
      if (!h.startsWith('$')) throw new Error(`expected a bulk, got ${h}`);
      const len = Number(h.slice(1));
      if (o + len + 2 > buf.length || buf[o + len] !== 0x0d || buf[o + len + 1] !== 0x0a) throw new Error(`bulk of ${len} bytes cut or unterminated at byte ${o}`);
      cmd.push(buf.toString('latin1', o, o + len));
      o += len + 2;
    }
    out.push(cmd);
  }
  return out;
}

class RecordingWriter {
  units: WriteUnit[] = [];
  /** submit() answers false every `stallEvery` units (0: never); waitDrain calls counted. */
  drains = 0;
  constructor(private readonly stallEvery = 0) {}
  submit(unit: WriteUnit): boolean {
    // Copy: the applier must not touch a payload after submitting it, and this proves it.
    this.units.push({ ...unit, payload: Buffer.from(unit.payload as Buffer) });
    return this.stallEvery === 0 || this.units.length % this.stallEvery !== 0;
  }
  async waitDrain(): Promise<void> {
    this.drains++;
    await new Promise((r) => setImmediate(r));
  }
}

const text = (a: Arg) => (Buffer.isBuffer(a) ? a.toString('latin1') : String(a));

async function applyAll(records: RdbRecord[], slices: number[], opts: Partial<SnapshotApplierOptions>, translate: TranslateOptions, writer = new RecordingWriter()) {
  const applier = new SnapshotApplier({ writer: writer as unknown as UnitWriter, logger: silentLogger(), translate, ...opts });
  let at = 0;
  for (const n of slices) {
    await applier.apply(records.slice(at, at + n));
    at += n;
  }
  await applier.apply(records.slice(at));
  await applier.finish();
  return { applier, writer };
}

/** What the units must add up to: the translator's own commands, with MSETs expanded back. */
function expected(records: RdbRecord[], translate: TranslateOptions): string[][] {
  const t = new Translator(translate);
  const out: Arg[][] = [];
  for (const r of records) t.push(r, out);
  return out.map((c) => c.map(text));
}

function expandMsets(cmds: string[][]): string[][] {
  const out: string[][] = [];
  for (const c of cmds) {
    if (c[0] !== 'MSET') {
      out.push(c);
      continue;
    }
    for (let i = 1; i < c.length; i += 2) out.push(['SET', c[i]!, c[i + 1]!]);
  }
  return out;
}

function checkUnits(writer: RecordingWriter, unitBytes: number, unitCommands: number): string[][] {
  const all: string[][] = [];
  for (const u of writer.units) {
    const payload = u.payload as Buffer;
    const cmds = parseCommands(payload);
    expect(cmds.length).toBe(u.count);
    expect(u.count).toBeGreaterThan(0);
    expect(u.count).toBeLessThanOrEqual(unitCommands);
    // Over the byte budget only when one command alone is bigger.
    if (payload.length > unitBytes) expect(u.count).toBe(1);
    for (const c of cmds) if (c[0] === 'MSET') expect(c.length).toBeLessThanOrEqual(1 + 2 * MSET_PAIRS);
    all.push(...cmds);
  }
  return all;
}

// A key of any kind the snapshot path meets: strings of every size (with and without TTL),
// lists written as commands, and collections written with RESTORE.
const keyArb: fc.Arbitrary<KeySpec> = fc.record({
  kind: fc.constantFrom('string', 'string', 'string', 'ttl', 'list', 'restore'),
  name: fc.string({ minLength: 1, maxLength: 12 }),
  size: fc.oneof(fc.nat({ max: 40 }), fc.nat({ max: 3000 }), fc.constant(5000)),
  db: fc.constantFrom(0, 0, 0, 1),
});

interface KeySpec {
  kind: string;
  name: string;
  size: number;
  db: number;
}

function recordsFor(keys: KeySpec[]): RdbRecord[] {
  const recs: RdbRecord[] = [{ kind: 'header', version: 11, magic: 'REDIS' } as RdbRecord];
  keys.forEach((k, i) => {
    const key = B(`${k.name}:${i}`);
    const value = Buffer.alloc(k.size, (i % 250) + 1);
    switch (k.kind) {
      case 'string':
      case 'ttl':
        recs.push(keyStart(key, 'string', { db: k.db, expireMs: k.kind === 'ttl' ? 9e12 + i : null }), { kind: 'string', value }, keyEnd(null));
        break;
      case 'list':
        recs.push(keyStart(key, 'list', { db: k.db }), { kind: 'listItems', items: [value.subarray(0, k.size >> 1), B('x')] }, keyEnd(null));
        break;
      default: {
        // RESTORE from raw bytes: distinct content per key, so a reused payload buffer would show.
        const raw = Buffer.alloc(k.size + 1, i & 0xff);
        recs.push(keyStart(key, 'set', { db: k.db, lruIdle: i % 3 === 0 ? i : null }), { kind: 'setItems', items: [B('m')] }, keyEnd(raw));
      }
    }
  });
  recs.push({ kind: 'end', checksum: 0n, checksumVerified: false } as RdbRecord);
  return recs;
}

describe('SnapshotApplier', () => {
  it(`coalesces runs of plain SETs into MSETs of at most ${MSET_PAIRS} pairs`, async () => {
    const recs: RdbRecord[] = [];
    for (let i = 0; i < 2 * MSET_PAIRS + 44; i++) recs.push(keyStart(B(`k${i}`), 'string'), { kind: 'string', value: B(`v${i}`) }, keyEnd(null));
    recs.push(keyStart(B('t'), 'string', { expireMs: 9e12 }), { kind: 'string', value: B('tv') }, keyEnd(null));
    recs.push(keyStart(B('after'), 'string'), { kind: 'string', value: B('a') }, keyEnd(null));
    const translate: TranslateOptions = { emitSelect: false, now: () => 0 };
    const { writer, applier } = await applyAll(recs, [], {}, translate);
    const cmds = checkUnits(writer, 512 * 1024, 1000);
    expect(cmds.map((c) => [c[0], c.length])).toEqual([['MSET', 2 * MSET_PAIRS + 1], ['MSET', 2 * MSET_PAIRS + 1], ['MSET', 89], ['SET', 5], ['MSET', 3]]);
    expect(expandMsets(cmds)).toEqual(expected(recs, translate));
    expect(applier.stats.commands).toBe(5);
    expect(applier.stats.keys).toBe(2 * MSET_PAIRS + 46);
  });

  it('without coalescing every SET is its own command', async () => {
    const recs: RdbRecord[] = [];
    for (let i = 0; i < 5; i++) recs.push(keyStart(B(`k${i}`), 'string'), { kind: 'string', value: B(`v${i}`) }, keyEnd(null));
    const translate: TranslateOptions = { emitSelect: false };
    const { writer } = await applyAll(recs, [], { coalesceSets: false }, translate);
    const cmds = checkUnits(writer, 512 * 1024, 1000);
    expect(cmds).toEqual(expected(recs, translate));
  });

  it('cuts units by bytes and by commands; a command bigger than a unit goes alone', async () => {
    const recs: RdbRecord[] = [];
    for (let i = 0; i < 40; i++) recs.push(keyStart(B(`k${i}`), 'string'), { kind: 'string', value: Buffer.alloc(i === 20 ? 5000 : 100, i) }, keyEnd(null));
    for (let i = 0; i < 30; i++) recs.push(keyStart(B(`t${i}`), 'string', { expireMs: 9e12 }), { kind: 'string', value: B('v') }, keyEnd(null));
    const translate: TranslateOptions = { emitSelect: false, now: () => 0 };
    const { writer } = await applyAll(recs, [7, 50], { unitBytes: 1024, unitCommands: 8 }, translate);
    const cmds = checkUnits(writer, 1024, 8);
    expect(expandMsets(cmds)).toEqual(expected(recs, translate));
    expect(writer.units.some((u) => (u.payload as Buffer).length > 5000 && u.count === 1)).toBe(true);
    expect(writer.units.filter((u) => u.count === 8).length).toBeGreaterThan(0);
  });

  it('waits for the writer to drain when it asks to', async () => {
    const recs: RdbRecord[] = [];
    for (let i = 0; i < 50; i++) recs.push(keyStart(B(`t${i}`), 'string', { expireMs: 9e12 }), { kind: 'string', value: B('v') }, keyEnd(null));
    const translate: TranslateOptions = { emitSelect: false, now: () => 0 };
    const { writer } = await applyAll(recs, [], { unitCommands: 5 }, translate, new RecordingWriter(2));
    expect(writer.units.length).toBe(10);
    expect(writer.drains).toBe(5);
    expect(checkUnits(writer, 512 * 1024, 5)).toEqual(expected(recs, translate));
  });

  it('any mix of keys, unit limits and record slicing gives the translator\'s commands in order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(keyArb, { maxLength: 120 }),
        fc.constantFrom(1024, 4096, 512 * 1024),
        fc.constantFrom(1, 3, 1000),
        fc.array(fc.nat({ max: 40 }), { maxLength: 10 }),
        fc.boolean(),
        fc.constantFrom('auto', 'restore', 'commands') as fc.Arbitrary<'auto' | 'restore' | 'commands'>,
        async (keys, unitBytes, unitCommands, slices, coalesceSets, mode) => {
          const recs = recordsFor(keys);
          const translate: TranslateOptions = { mode, now: () => 0, batchBytes: 2048 };
          const { writer, applier } = await applyAll(recs, slices, { unitBytes, unitCommands, coalesceSets }, translate);
          const cmds = checkUnits(writer, unitBytes, unitCommands);
          if (!coalesceSets) expect(cmds.some((c) => c[0] === 'MSET')).toBe(false);
          expect(expandMsets(cmds)).toEqual(expected(recs, translate));
          expect(applier.stats.commands).toBe(cmds.length);
          expect(applier.currentDb).toBe(keys.length === 0 ? 0 : keys[keys.length - 1]!.db);
        },
      ),
      { numRuns: 150 },
    );
  });
  it("the decoder's own string records (each key in one step when plain) give the translator's commands in order", async () => {
    // The records of a real decode, not plain objects: small plain strings take the applier's
    // one-step path (Translator.plainString), the others (TTL, int-encoded, over batchBytes,
    // another db first seen) the record-by-record one; both must give the same commands.
    const stringKeyArb = fc.record({
      name: fc.string({ minLength: 1, maxLength: 12 }),
      size: fc.oneof(fc.nat({ max: 40 }), fc.nat({ max: 3000 })),
      ttl: fc.boolean(),
      int: fc.boolean(),
      db: fc.constantFrom(0, 0, 0, 1, 2),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(stringKeyArb, { maxLength: 150 }),
        fc.constantFrom(1024, 512 * 1024),
        fc.constantFrom(3, 1000),
        fc.constantFrom(7, 100, 65536),
        fc.constantFrom('auto', 'commands') as fc.Arbitrary<'auto' | 'commands'>,
        async (keys, unitBytes, unitCommands, slice, mode) => {
          const w = new RdbWriter(10);
          let db = -1;
          keys.forEach((k, i) => {
            if (k.db !== db) w.selectDb((db = k.db));
            if (k.ttl) w.expireMs(9e12 + i);
            if (k.int) w.key(0, `${k.name}:${i}`).raw(intStrBytes(i * 1000));
            else w.stringKey(`${k.name}:${i}`, Buffer.alloc(k.size, (i % 250) + 1));
          });
          const rdb = w.end();
          const decoder = new RdbDecoder({ verifyChecksum: true });
          const recs: RdbRecord[] = [];
          for (let at = 0; at < rdb.length; at += slice) recs.push(...decoder.push(rdb.subarray(at, at + slice)));
          expect(recs.filter((r) => r instanceof KeyStartRecord).length).toBe(keys.length);
          const translate: TranslateOptions = { mode, now: () => 0, batchBytes: 2048 };
          const { writer, applier } = await applyAll(recs, [slice % 13, 5], { unitBytes, unitCommands }, translate);
          const cmds = checkUnits(writer, unitBytes, unitCommands);
          expect(expandMsets(cmds)).toEqual(expected(recs, translate));
          expect(applier.stats.keys).toBe(keys.length);
          expect(applier.translatorStats.keys).toBe(keys.length);
          expect(applier.currentDb).toBe(keys.length === 0 ? 0 : keys[keys.length - 1]!.db);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('tells when a string streamed in pieces starts and ends, once each', async () => {
    const events: string[] = [];
    const writer = { submit: (u: WriteUnit) => (events.push(`unit:${parseCommands(u.payload as Buffer).map((c) => c[0]).join(',')}`), true), waitDrain: async () => {} };
    const piece = (offset: number): RdbRecord => ({ kind: 'stringPart', value: Buffer.alloc(1000, 0x61), offset, total: 3000 });
    const recs: RdbRecord[] = [
      keyStart(B('small'), 'string'), { kind: 'string', value: B('v') }, keyEnd(null),
      keyStart(B('long'), 'string'), piece(0), piece(1000), piece(2000), keyEnd(null),
      keyStart(B('after'), 'string', { expireMs: 9e12 }), { kind: 'string', value: B('a') }, keyEnd(null),
    ];
    const applier = new SnapshotApplier({
      writer: writer as unknown as UnitWriter,
      logger: silentLogger(),
      coalesceSets: false,
      unitBytes: 1024,
      translate: { emitSelect: false, batchBytes: 1000, now: () => 0 },
      onLongString: (on) => events.push(on ? 'long:on' : 'long:off'),
    });
    for (const r of recs) await applier.apply([r]);
    await applier.finish();
    // On before the first piece is translated, off at the key's end, once each (a unit is
    // submitted when the next one starts, so the small key's SET goes out after 'on').
    expect(events).toEqual(['long:on', 'unit:SET', 'unit:SET', 'unit:SETRANGE', 'unit:SETRANGE', 'long:off', 'unit:SETRANGE', 'unit:SET']);
  });

  it('sends the pieces of a long string by reference, each in a unit of its own', async () => {
    const submitted: WriteUnit[] = [];
    const writer = { submit: (u: WriteUnit) => submitted.push(u) > 0, waitDrain: async () => {} };
    const pieces = [Buffer.alloc(1500, 0x61), Buffer.alloc(1500, 0x62), Buffer.alloc(700, 0x63)];
    let offset = 0;
    const recs: RdbRecord[] = [keyStart(B('long'), 'string', { db: 3 })];
    for (const value of pieces) {
      recs.push({ kind: 'stringPart', value, offset, total: 3700 });
      offset += value.length;
    }
    recs.push(keyEnd(null), keyStart(B('k'), 'string', { db: 3 }), { kind: 'string', value: B('v') }, keyEnd(null));
    const translate: TranslateOptions = { batchBytes: 1500 };
    const applier = new SnapshotApplier({ writer: writer as unknown as UnitWriter, logger: silentLogger(), unitBytes: 1024, translate });
    await applier.apply(recs);
    await applier.finish();
    const cmds = submitted.flatMap((u) => parseCommands(Buffer.concat(Array.isArray(u.payload) ? u.payload : [u.payload])));
    expect(expandMsets(cmds)).toEqual(expected(recs, translate));
    // The two 1500-byte pieces are the very Buffers the decoder emitted (not copies); the
    // 700-byte one, smaller than a unit, is encoded into a unit's buffer as usual.
    const byRef = submitted.filter((u) => Array.isArray(u.payload));
    expect(byRef.map((u) => (u.payload as Buffer[])[1])).toEqual([pieces[0], pieces[1]]);
    for (const [i, u] of byRef.entries()) expect((u.payload as Buffer[])[1]!.buffer).toBe(pieces[i]!.buffer);
    expect(byRef.every((u) => u.count === 1 && applier.dbOf(u.payload) === 3)).toBe(true);
  });

  it('starts a unit at each SELECT, so dbOf() tells the db of any unit it submitted', async () => {
    const submitted: WriteUnit[] = [];
    const writer = { submit: (u: WriteUnit) => submitted.push(u) > 0, waitDrain: async () => {} };
    const recs: RdbRecord[] = [];
    for (const [db, key] of [[0, 'a'], [0, 'b'], [2, 'c'], [2, 'd'], [5, 'e']] as const) {
      recs.push(keyStart(B(key), 'string', { db }), { kind: 'string', value: B('v') }, keyEnd(null));
    }
    const applier = new SnapshotApplier({ writer: writer as unknown as UnitWriter, logger: silentLogger(), translate: {} });
    await applier.apply(recs);
    await applier.finish();
    const units = submitted.map((u) => ({ db: applier.dbOf(u.payload), cmds: parseCommands(u.payload as Buffer) }));
    expect(units).toEqual([
      { db: 0, cmds: [['SELECT', '0'], ['MSET', 'a', 'v', 'b', 'v']] },
      { db: 2, cmds: [['SELECT', '2'], ['MSET', 'c', 'v', 'd', 'v']] },
      { db: 5, cmds: [['SELECT', '5'], ['MSET', 'e', 'v']] },
    ]);
    expect(applier.dbOf(Buffer.from('not one of its units'))).toBeUndefined();
  });
});
