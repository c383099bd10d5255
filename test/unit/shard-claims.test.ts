import { describe, expect, it } from 'vitest';
import { planClaims, shardQuota } from '../../src/sync/cluster/claims.js';
import { parseMembers } from '../../src/sync/cluster/members.js';

const m = (id: string, maxShards: number | null = null) => ({ id, maxShards });

describe('shardQuota', () => {
  it('is the even share, rounded up, of the live members', () => {
    expect(shardQuota(3, [m('a')], 'a')).toBe(3);
    expect(shardQuota(3, [m('a'), m('b')], 'a')).toBe(2);
    expect(shardQuota(3, [m('a'), m('b'), m('c')], 'c')).toBe(1);
    expect(shardQuota(3, [m('a'), m('b'), m('c'), m('d')], 'd')).toBe(1);
    expect(shardQuota(30, [m('a'), m('b'), m('c'), m('d')], 'a')).toBe(8);
  });

  it('holds a capped member to its cap and shares what it leaves among the others', () => {
    expect(shardQuota(3, [m('a', 1), m('b', 1)], 'a')).toBe(1);
    expect(shardQuota(4, [m('a', 1), m('b')], 'b')).toBe(3);
    expect(shardQuota(10, [m('a', 1), m('b', 2), m('c')], 'c')).toBe(7);
    expect(shardQuota(10, [m('a', 1), m('b', 2), m('c')], 'b')).toBe(2);
    // A cap above the share changes nothing.
    expect(shardQuota(4, [m('a', 5), m('b')], 'a')).toBe(2);
  });

  it('the quotas cover every shard whenever the caps allow it', () => {
    for (let shards = 1; shards <= 12; shards++) {
      for (let n = 1; n <= 5; n++) {
        const members = Array.from({ length: n }, (_, i) => m(`p${i}`, i === 0 ? 1 : null));
        const total = members.reduce((t, x) => t + shardQuota(shards, members, x.id), 0);
        expect(total).toBeGreaterThanOrEqual(n === 1 ? 1 : shards);
      }
    }
  });

  it('is 0 for a process that is not a member', () => {
    expect(shardQuota(3, [m('a')], 'z')).toBe(0);
  });
});

describe('planClaims', () => {
  const view = (key: string, mine: boolean, held: boolean, streaming = true) => ({ key, mine, held, streaming });
  const order = (k: string) => k.charCodeAt(0);

  it('claims free shards up to the quota, in its own order', () => {
    expect(planClaims([view('a', false, false), view('b', false, true), view('c', false, false)], 1, order)).toEqual({ claim: ['a'], give: [] });
    expect(planClaims([view('c', false, false), view('a', false, false)], 5, order)).toEqual({ claim: ['a', 'c'], give: [] });
    expect(planClaims([view('a', true, true), view('b', false, false)], 1, order)).toEqual({ claim: [], give: [] });
  });

  it('gives back streaming shards over the quota, never one whose copy is in progress', () => {
    expect(planClaims([view('a', true, true), view('b', true, true), view('c', true, true)], 1, order)).toEqual({ claim: [], give: ['b', 'c'] });
    expect(planClaims([view('a', true, true), view('b', true, true, false)], 1, order)).toEqual({ claim: [], give: ['a'] });
    expect(planClaims([view('a', true, true, false), view('b', true, true, false)], 1, order)).toEqual({ claim: [], give: [] });
  });
});

describe('parseMembers', () => {
  it('reads the members hash with ages by the target clock, oldest member first, skipping garbage', () => {
    const hash = ['p2', `9000 ${JSON.stringify({ host: 'h', pid: 2, since: 20, shards: ['s2'], maxShards: 1 })}`, 'junk', 'nope', 'p1', `9500 ${JSON.stringify({ host: 'h', pid: 1, since: 10, shards: [], maxShards: null })}`];
    expect(parseMembers(hash, 10_000)).toEqual([
      { id: 'p1', host: 'h', pid: 1, since: 10, shards: [], maxShards: null, ageMs: 500 },
      { id: 'p2', host: 'h', pid: 2, since: 20, shards: ['s2'], maxShards: 1, ageMs: 1000 },
    ]);
  });
});
