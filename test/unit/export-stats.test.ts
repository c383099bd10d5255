import { describe, expect, it } from 'vitest';
import { StatsCollector, formatStats, statsToJson } from '../../src/export/stats.js';
import type { KeyHeader, RdbRecord, ValueType } from '../../src/rdb/types.js';

function key(name: string, type: ValueType, db: number, bytes: number, items: number, extra: Partial<KeyHeader> = {}): RdbRecord[] {
  const recs: RdbRecord[] = [{ kind: 'keyStart', db, key: Buffer.from(name), rdbType: 0, type, expireMs: null, lruIdle: null, lfuFreq: null, offset: 0, ...extra }];
  if (type === 'string') recs.push({ kind: 'string', value: Buffer.alloc(bytes) });
  else if (type === 'list') recs.push({ kind: 'listItems', items: Array.from({ length: items }, () => Buffer.from('x')) });
  else if (type === 'hash') recs.push({ kind: 'hashItems', items: Array.from({ length: items }, () => ({ field: Buffer.from('f'), value: Buffer.from('v'), expireMs: null })) });
  recs.push({ kind: 'keyEnd', raw: null, valueBytes: bytes });
  return recs;
}

describe('StatsCollector', () => {
  const records: RdbRecord[] = [
    { kind: 'header', magic: 'REDIS', version: 10 },
    { kind: 'aux', key: Buffer.from('redis-ver'), value: Buffer.from('7.0.15') },
    { kind: 'function', code: Buffer.from('#!lua name=l') },
    ...key('s1', 'string', 0, 10, 1, { expireMs: 5 }),
    ...key('s2', 'string', 0, 300, 1, { expireMs: 2_000 }),
    ...key('l1', 'list', 1, 50, 7),
    ...key('h1', 'hash', 1, 1000, 3),
    ...key('h2', 'hash', 1, 20, 2),
    { kind: 'keyStart', db: 1, key: Buffer.from('bad'), rdbType: 0, type: 'list', expireMs: null, lruIdle: null, lfuFreq: null, offset: 0 },
    { kind: 'keySkipped', error: new Error('x') },
  ];

  it('counts keys, expiries and value bytes per db and type, and keeps the N biggest', () => {
    const c = new StatsCollector({ top: 3, now: 1_000 });
    for (const r of records) c.push(r);
    const s = c.stats;
    expect(s.rdbVersion).toBe(10);
    expect(s.total).toEqual({ keys: 5, expires: 2, expired: 1, bytes: 1380, elements: 14 });
    expect(s.dbs.get(0)).toEqual({ keys: 2, expires: 2, expired: 1, bytes: 310, elements: 2 });
    expect(s.dbs.get(1)).toEqual({ keys: 3, expires: 0, expired: 0, bytes: 1070, elements: 12 });
    expect(s.types.get('hash')).toEqual({ keys: 2, expires: 0, expired: 0, bytes: 1020, elements: 5 });
    expect(s.top.map((k) => [k.key.toString(), k.bytes])).toEqual([['h1', 1000], ['s2', 300], ['l1', 50]]);
    expect(s.corruptSkipped).toBe(1);
    expect(s.functions).toBe(1);
    // The same records handed over a push at a time (as `replicant rdb` does) count the same.
    const all = new StatsCollector({ top: 3, now: 1_000 });
    all.pushAll(records.slice(0, 5));
    all.pushAll(records.slice(5));
    expect(statsToJson(all.stats)).toEqual(statsToJson(s));
  });

  it('renders a table and JSON', () => {
    const c = new StatsCollector({ top: 2, now: 1_000 });
    for (const r of records) c.push(r);
    const table = formatStats(c.stats);
    expect(table).toMatch(/RDB version 10: 5 keys, 1380 value bytes/);
    expect(table).toMatch(/^hash\s+2\s+0\s+0\s+5\s+1020$/m);
    expect(table).toMatch(/1000\s+hash\s+db1\s+3 el\s+h1/);
    const json = JSON.parse(JSON.stringify(statsToJson(c.stats))) as { dbs: Record<string, { keys: number }>; top: { key: string }[] };
    expect(json.dbs['1']!.keys).toBe(3);
    expect(json.top.map((t) => t.key)).toEqual(['h1', 's2']);
  });

  it('top 0 keeps no keys', () => {
    const c = new StatsCollector({ top: 0 });
    for (const r of records) c.push(r);
    expect(c.stats.top).toEqual([]);
  });
});
