import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isJsonText, jsonBytes, jsonScore, writeJsonBytes } from '../../src/export/json-bytes.js';
import { JsonlWriter } from '../../src/export/jsonl.js';
import { OutputBuffer } from '../../src/export/output.js';
import type { KeyHeader, RdbRecord, ValueType } from '../../src/rdb/types.js';

const B = (s: string) => Buffer.from(s);

class Collect extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function keyStart(key: string | Buffer, type: ValueType, extra: Partial<KeyHeader> = {}): RdbRecord {
  return { kind: 'keyStart', db: 0, key: typeof key === 'string' ? B(key) : key, rdbType: 0, type, expireMs: null, lruIdle: null, lfuFreq: null, offset: 0, ...extra };
}
const keyEnd: RdbRecord = { kind: 'keyEnd', raw: null, valueBytes: 0 };

function render(records: RdbRecord[], chunkSize?: number): { lines: unknown[]; text: string; w: JsonlWriter } {
  const sink = new Collect();
  const out = new OutputBuffer(sink, chunkSize);
  const w = new JsonlWriter(out);
  for (const r of records) w.push(r);
  out.flush();
  const text = sink.text;
  return { lines: text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown), text, w };
}

describe('byte strings in JSON', () => {
  it('keeps printable UTF-8 as text and escapes quotes and backslashes', () => {
    expect(jsonBytes(B('hello'))).toBe('"hello"');
    expect(jsonBytes(B('héllo ✓ 😀'))).toBe('"héllo ✓ 😀"');
    expect(jsonBytes(B('a"b\\c'))).toBe('"a\\"b\\\\c"');
    expect(jsonBytes(B(''))).toBe('""');
  });
  it('uses base64 for control characters, DEL and invalid UTF-8', () => {
    for (const b of [B('a\nb'), B('\x00'), B('x\x7f'), B('\t'), Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80])]) {
      expect(isJsonText(b)).toBe(false);
      expect(JSON.parse(jsonBytes(b))).toEqual({ b64: b.toString('base64') });
    }
    // C1 controls (U+0080-U+009F) are not in the excluded set
    expect(isJsonText(B('\u0085'))).toBe(true);
  });
  it('the streaming writer produces the same text, across chunk boundaries', () => {
    const sink = new Collect();
    const out = new OutputBuffer(sink, 8);
    const values = [B('plain text value'), B('q"u\\o"te'), B('ünï'), Buffer.from([0, 1, 2, 255]), B('')];
    for (const v of values) {
      writeJsonBytes(out, v);
      out.byte(0x0a);
    }
    out.flush();
    expect(sink.text.split('\n').slice(0, -1)).toEqual(values.map(jsonBytes));
  });
  it('scores: numbers, -0 and infinities', () => {
    expect(jsonScore(1.5)).toBe('1.5');
    expect(jsonScore(1e300)).toBe('1e+300');
    expect(Object.is(JSON.parse(jsonScore(-0)), -0)).toBe(true);
    expect(jsonScore(Infinity)).toBe('"inf"');
    expect(jsonScore(-Infinity)).toBe('"-inf"');
  });
});

describe('JsonlWriter', () => {
  it('writes every type in the corpus shape', () => {
    const { lines } = render([
      { kind: 'aux', key: B('redis-ver'), value: B('7.0.15') },
      { kind: 'function', code: B('#!lua name=x') },
      keyStart('s', 'string', { expireMs: 123, lruIdle: 4 }),
      { kind: 'string', value: B('v') },
      keyEnd,
      keyStart(Buffer.from([0, 0xff]), 'list', { db: 2, rdbType: 18, lfuFreq: 9 }),
      { kind: 'listItems', items: [B('a'), B('b')] },
      { kind: 'listItems', items: [B('c')] },
      keyEnd,
      keyStart('z', 'zset'),
      { kind: 'zsetItems', items: [{ member: B('m'), score: -0 }, { member: B('n'), score: -Infinity }] },
      keyEnd,
      keyStart('h', 'hash'),
      { kind: 'hashItems', items: [{ field: B('f'), value: B('1'), expireMs: 99 }, { field: B('g'), value: B('2'), expireMs: null }] },
      keyEnd,
      keyStart('m', 'module', { rdbType: 7 }),
      { kind: 'module', moduleId: 5n, moduleName: 'ReJSON-RL', encVersion: 3, payload: B('xyz') },
      keyEnd,
    ]);
    expect(lines).toEqual([
      { aux: 'redis-ver', value: '7.0.15' },
      { function: '#!lua name=x' },
      { db: 0, key: 's', type: 'string', rdb_type: 0, expire_ms: 123, lru_idle_s: 4, value: 'v' },
      { db: 2, key: { b64: 'AP8=' }, type: 'list', rdb_type: 18, expire_ms: null, lfu_freq: 9, value: ['a', 'b', 'c'] },
      { db: 0, key: 'z', type: 'zset', rdb_type: 0, expire_ms: null, value: [['m', -0], ['n', '-inf']] },
      { db: 0, key: 'h', type: 'hash', rdb_type: 0, expire_ms: null, value: [['f', '1'], ['g', '2']], field_expire_ms: [['f', 99]] },
      { db: 0, key: 'm', type: 'module', rdb_type: 7, expire_ms: null, module: 'ReJSON-RL', module_enc_version: 3, value: { b64: B('xyz').toString('base64') } },
    ]);
  });

  it('writes streams with groups, joining the PEL with its consumers', () => {
    const { lines } = render([
      keyStart('st', 'stream', { rdbType: 21 }),
      { kind: 'streamEntries', entries: [{ id: '1-0', fields: [B('a'), B('1')] }] },
      { kind: 'streamEntries', entries: [{ id: '2-5', fields: [B('b'), Buffer.from([0])] }] },
      { kind: 'streamMeta', meta: { length: 2, lastId: '3-0', firstId: '1-0', maxDeletedId: '3-0', entriesAdded: 3 } },
      { kind: 'streamGroup', group: { name: B('g'), lastId: '2-5', entriesRead: null } },
      { kind: 'streamPel', entries: [{ id: '1-0', deliveryTimeMs: 10, deliveryCount: 2 }] },
      { kind: 'streamConsumer', consumer: { name: B('bob'), seenTimeMs: 11, activeTimeMs: -1, pel: ['1-0'] } },
      { kind: 'streamGroup', group: { name: B('h'), lastId: '0-0', entriesRead: 0 } },
      keyEnd,
      keyStart('empty', 'stream', { rdbType: 15 }),
      { kind: 'streamMeta', meta: { length: 0, lastId: '5-1', firstId: null, maxDeletedId: null, entriesAdded: null } },
      keyEnd,
    ]);
    expect(lines).toEqual([
      {
        db: 0, key: 'st', type: 'stream', rdb_type: 21, expire_ms: null,
        value: {
          entries: [['1-0', ['a', '1']], ['2-5', ['b', { b64: 'AA==' }]]],
          length: 2, last_id: '3-0', max_deleted_id: '3-0', entries_added: 3, first_id: '1-0',
          groups: [
            { name: 'g', last_delivered_id: '2-5', entries_read: null, pel: [['1-0', 'bob', 10, 2]], consumers: [{ name: 'bob', seen_time_ms: 11, active_time_ms: -1, pel: [['1-0', 10, 2]] }] },
            { name: 'h', last_delivered_id: '0-0', entries_read: 0, pel: [], consumers: [] },
          ],
        },
      },
      {
        db: 0, key: 'empty', type: 'stream', rdb_type: 15, expire_ms: null,
        value: { entries: [], length: 0, last_id: '5-1', max_deleted_id: null, entries_added: null, first_id: null, groups: [] },
      },
    ]);
  });

  it('prints nothing for empty collections and counts them', () => {
    const { lines, w } = render([keyStart('e', 'set'), keyEnd, keyStart('s', 'string'), { kind: 'string', value: B('x') }, keyEnd]);
    expect(lines).toHaveLength(1);
    expect(w.stats.emptySkipped).toBe(1);
  });

  it('drops a corrupt key still in the buffer; closes one already flushed as valid JSON', () => {
    const skipped: RdbRecord = { kind: 'keySkipped', error: new Error('bad listpack') };
    const a = render([keyStart('a', 'list'), { kind: 'listItems', items: [B('x')] }, skipped, keyStart('b', 'string'), { kind: 'string', value: B('y') }, keyEnd]);
    expect(a.lines).toEqual([{ db: 0, key: 'b', type: 'string', rdb_type: 0, expire_ms: null, value: 'y' }]);
    expect(a.w.stats.corruptSkipped).toBe(1);
    // a tiny chunk size forces the key's start out of the buffer before the error
    const b = render([keyStart('a', 'hash'), { kind: 'hashItems', items: [{ field: B('f'), value: B('v'.repeat(100)), expireMs: null }] }, skipped], 32);
    expect(b.lines).toEqual([{ db: 0, key: 'a', type: 'hash', rdb_type: 0, expire_ms: null, value: [['f', 'v'.repeat(100)]], corrupt: 'bad listpack' }]);
  });

  it('streams a big list without building it (output grows in chunks)', () => {
    const sink = new Collect();
    const out = new OutputBuffer(sink, 4096);
    const w = new JsonlWriter(out);
    w.push(keyStart('big', 'list'));
    const batch = Array.from({ length: 1000 }, (_, i) => B(`element-${i}`));
    for (let i = 0; i < 20; i++) w.push({ kind: 'listItems', items: batch });
    expect(sink.chunks.length).toBeGreaterThan(10); // flushed while the key is still open
    w.push(keyEnd);
    out.flush();
    const v = (JSON.parse(sink.text) as { value: string[] }).value;
    expect(v).toHaveLength(20_000);
    expect(v[19_999]).toBe('element-999');
  });
});

describe('JsonlWriter: Redis 8.8 arrays', () => {
  it('writes the insert index and [index, value] pairs', () => {
    const { lines } = render([
      keyStart('a', 'array', { rdbType: 28 }),
      { kind: 'arrayMeta', insertIndex: 7 },
      { kind: 'arrayItems', items: [{ index: 0, value: B('x'), encoding: 'string' }, { index: 5, value: B('-3'), encoding: 'int' }] },
      keyEnd,
    ]);
    expect(lines).toEqual([{ db: 0, key: 'a', type: 'array', rdb_type: 28, expire_ms: null, insert_index: 7, value: [[0, 'x'], [5, '-3']] }]);
  });
});
