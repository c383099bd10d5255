import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { KeyHeader, RdbRecord, ValueType } from '../../src/rdb/types.js';
import type { Arg } from '../../src/resp/encode.js';
import { HeldRecords, recordBytes } from '../../src/translate/held-records.js';
import { Translator } from '../../src/translate/translator.js';
import type { TranslateOptions } from '../../src/translate/options.js';

const B = (s: string) => Buffer.from(s);
const bytesArb = fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u));
const scoreArb = fc.oneof(fc.double({ noNaN: true }), fc.constantFrom(-0, 0, Infinity, -Infinity, 1.5));

/** Item records of one kind, with `n` elements in all, cut into records of up to `per`. */
function itemRecords(kind: 'list' | 'set' | 'zset' | 'hash' | 'stream', n: number, per: number, seed: number): RdbRecord[] {
  const out: RdbRecord[] = [];
  const el = (i: number) => B(`e${seed}:${i}`);
  for (let i = 0; i < n; i += per) {
    const m = Math.min(per, n - i);
    const idx = Array.from({ length: m }, (_, k) => i + k);
    switch (kind) {
      case 'list':
        out.push({ kind: 'listItems', items: idx.map(el) });
        break;
      case 'set':
        out.push({ kind: 'setItems', items: idx.map(el) });
        break;
      case 'zset':
        out.push({ kind: 'zsetItems', items: idx.map((k) => ({ member: el(k), score: k % 7 === 0 ? -0 : k % 11 === 0 ? -Infinity : k / 3 })) });
        break;
      case 'hash':
        out.push({ kind: 'hashItems', items: idx.map((k) => ({ field: el(k), value: k % 5 === 0 ? Buffer.alloc(0) : B(`v${k}`), expireMs: k % 3 === 0 ? 5_000_000 + k : null })) });
        break;
      case 'stream':
        out.push({ kind: 'streamEntries', entries: idx.map((k) => ({ id: `${1000 + k}-0`, fields: k % 4 === 0 ? [] : [B('f'), el(k), B('g'), B('')] })) });
        break;
    }
  }
  return out;
}

/** A record as comparable text: Buffers as hex, -0 kept apart from 0. */
const plain = (r: RdbRecord): string =>
  JSON.stringify(r, function (this: unknown, k: string, v: unknown) {
    const raw = (this as Record<string, unknown>)[k];
    if (Buffer.isBuffer(raw)) return `hex:${raw.toString('hex')}`;
    return typeof v === 'number' && Object.is(v, -0) ? '-0' : v;
  });

describe('HeldRecords', () => {
  it('gives back exactly what it was given, packed or not, with the same byte estimate', () => {
    for (const kind of ['list', 'set', 'zset', 'hash', 'stream'] as const) {
      for (const n of [10, 5000, 12_000]) {
        const recs = itemRecords(kind, n, 1024, n);
        const meta: RdbRecord = { kind: 'streamMeta', meta: { length: n, lastId: '1-0', firstId: null, maxDeletedId: null, entriesAdded: null } };
        const all = kind === 'stream' ? [...recs, meta] : recs;
        const h = new HeldRecords();
        for (const r of all) h.push(r);
        expect(h.length).toBe(all.length);
        expect(h.bytes).toBe(all.reduce((s, r) => s + recordBytes(r), 0));
        const back = h.take();
        expect(back.map(plain)).toEqual(all.map(plain));
        expect(h.length).toBe(0);
        expect(h.bytes).toBe(0);
      }
    }
  });

  it('round-trips arbitrary element bytes (empty ones included) once packing has started', () => {
    fc.assert(
      fc.property(
        fc.array(bytesArb, { minLength: 1, maxLength: 50 }),
        fc.array(fc.record({ member: bytesArb, score: scoreArb }), { maxLength: 20 }),
        fc.array(fc.record({ field: bytesArb, value: bytesArb, expireMs: fc.option(fc.nat(), { nil: null }) }), { maxLength: 20 }),
        (items, zitems, hitems) => {
          const recs: RdbRecord[] = [
            ...itemRecords('list', 5000, 1024, 1),
            { kind: 'listItems', items },
            { kind: 'zsetItems', items: zitems },
            { kind: 'hashItems', items: hitems },
          ];
          const h = new HeldRecords();
          for (const r of recs) h.push(r);
          expect(h.bytes).toBe(recs.reduce((s, r) => s + recordBytes(r), 0));
          expect(h.take().map(plain)).toEqual(recs.map(plain));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('packs a copy: later changes to the decoder\'s buffers do not reach held elements', () => {
    const backing = Buffer.alloc(5000 * 2, 0x61);
    const items = Array.from({ length: 5000 }, (_, i) => backing.subarray(2 * i, 2 * i + 2));
    const h = new HeldRecords();
    h.push({ kind: 'listItems', items });
    backing.fill(0x62);
    const back = h.take()[0]!;
    if (back.kind !== 'listItems') throw new Error('kind');
    expect(back.items.every((b) => b.toString() === 'aa')).toBe(true);
  });
});

describe('Translator: big keys held in restore mode', () => {
  const keyStart = (type: ValueType, extra: Partial<KeyHeader> = {}): RdbRecord =>
    ({ kind: 'keyStart', db: 0, key: B('big'), rdbType: 0, type, expireMs: null, lruIdle: null, lfuFreq: null, offset: 0, ...extra });
  const text = (a: Arg) => (Buffer.isBuffer(a) ? a.toString('latin1') : String(a));
  function translate(records: RdbRecord[], opts: TranslateOptions): string[][] {
    const t = new Translator({ emitSelect: false, now: () => 1_000_000, targetVersion: '7.4', ...opts });
    const out: Arg[][] = [];
    for (const r of records) t.push(r, out);
    return out.map((c) => c.map(text));
  }

  it('without raw bytes (or past the buffer limit) writes the same commands as commands mode', () => {
    for (const kind of ['list', 'set', 'zset', 'hash', 'stream'] as const) {
      const items = itemRecords(kind, 9000, 1000, 7);
      const tail: RdbRecord[] = kind === 'stream'
        ? [{ kind: 'streamMeta', meta: { length: 9000, lastId: '99999-0', firstId: '1000-0', maxDeletedId: '0-0', entriesAdded: 9000 } }]
        : [];
      const recs = [keyStart(kind, { expireMs: 9_000_000 }), ...items, ...tail, { kind: 'keyEnd', raw: null, valueBytes: 1 } as RdbRecord];
      const want = translate(recs, { mode: 'commands' });
      expect(want.length).toBeGreaterThan(10);
      expect(translate(recs, { mode: 'restore', payloadVersion: 11 })).toEqual(want);
      // Released part-way (after packing began): held records first, then the rest as they come.
      expect(translate(recs, { mode: 'restore', payloadVersion: 11, restoreBufferBytes: 150_000 })).toEqual(want);
      // With raw bytes: one RESTORE, nothing else.
      const withRaw = [...recs.slice(0, -1), { kind: 'keyEnd', raw: Buffer.from([0x0e, 1, 2]), valueBytes: 2 } as RdbRecord];
      expect(translate(withRaw, { mode: 'restore', payloadVersion: 11 }).map((c) => c[0])).toEqual(['RESTORE']);
    }
  });
});
