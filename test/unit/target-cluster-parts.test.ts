import { describe, expect, it } from 'vitest';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { NodeBatch } from '../../src/writer/cluster/batch.js';
import { ClusterOffsets } from '../../src/writer/cluster/offsets.js';
import { ROUTE_ALL, ROUTE_ANY, routeOf, splitCrossSlot } from '../../src/writer/cluster/routing.js';
import { NO_NODE, parseClusterSlots, parseRedirect } from '../../src/writer/cluster/topology.js';
import { keySlot } from '../../src/commands/slot.js';

describe('ClusterOffsets', () => {
  it('reports an offset only when every node applied what was submitted before it, in order', () => {
    const o = new ClusterOffsets();
    const a = o.addNode();
    const b = o.addNode();
    const a1 = o.nextSeq(a);
    const b1 = o.nextSeq(b);
    expect(o.mark(10)).toEqual([]);
    const a2 = o.nextSeq(a);
    expect(o.mark(20)).toEqual([]);
    expect(o.onApplied(a, a1)).toEqual([]);
    expect(o.onApplied(a, a2)).toEqual([]); // 10 still waits for b1, and 20 comes after 10
    expect(o.onApplied(b, b1)).toEqual([10, 20]);
    expect(o.mark(30)).toEqual([30]); // nothing outstanding
    expect(o.pending).toBe(0);
  });

  it('makes marks wait for a re-sent command on another node', () => {
    const o = new ClusterOffsets();
    const a = o.addNode();
    const b = o.addNode();
    const a1 = o.nextSeq(a);
    o.mark(5);
    const b1 = o.nextSeq(b); // MOVED: a1's command re-sent as b1, before a1 completes
    o.redirect(a, a1, b, b1);
    expect(o.onApplied(a, a1)).toEqual([]);
    expect(o.onApplied(b, b1)).toEqual([5]);
  });

  it('does not make earlier marks wait for a later redirect', () => {
    const o = new ClusterOffsets();
    const a = o.addNode();
    const b = o.addNode();
    const a1 = o.nextSeq(a);
    o.mark(1);
    const a2 = o.nextSeq(a);
    o.mark(2);
    const b1 = o.nextSeq(b);
    o.redirect(a, a2, b, b1);
    expect(o.onApplied(a, a1)).toEqual([1]);
    expect(o.onApplied(a, a2)).toEqual([]);
    expect(o.onApplied(b, b1)).toEqual([2]);
  });
});

describe('NodeBatch', () => {
  it('gathers encoded commands and payload ranges in order, merging adjacent ranges', () => {
    const payload = encodeCommands([['SET', 'a', '1'], ['SET', 'b', '2'], ['SET', 'c', '3']]);
    const first = encodeCommand(['SET', 'a', '1']).length;
    const second = first + encodeCommand(['SET', 'b', '2']).length;
    const b = new NodeBatch();
    b.appendCommand(['PING']);
    b.appendRange(payload, 0, first);
    b.appendRange(payload, first, second);
    b.appendCommand(['SET', 'big', Buffer.alloc(20_000)]);
    b.appendCommand(['ECHO', 'x']);
    const { pieces, count } = b.take();
    expect(count).toBe(5);
    expect(pieces).toHaveLength(4); // PING | merged range | big | ECHO
    expect(Buffer.concat(pieces)).toEqual(Buffer.concat([
      encodeCommand(['PING']), payload.subarray(0, second), encodeCommand(['SET', 'big', Buffer.alloc(20_000)]), encodeCommand(['ECHO', 'x']),
    ]));
    // The next batch never overwrites bytes already taken.
    b.appendCommand(['PING']);
    const next = b.take();
    expect(Buffer.concat(next.pieces)).toEqual(encodeCommand(['PING']));
    expect(pieces[0]).toEqual(encodeCommand(['PING']));
    expect(pieces[3]).toEqual(encodeCommand(['ECHO', 'x']));
  });
});

describe('cluster routing', () => {
  it('routes by the first key, broadcasts flushes, and sends keyless commands anywhere', () => {
    expect(routeOf(['SET', 'foo', '1'])).toBe(12182);
    expect(routeOf([Buffer.from('flushall')])).toBe(ROUTE_ALL);
    expect(routeOf(['PING'])).toBe(ROUTE_ANY);
  });

  it('splits cross-slot DEL/UNLINK/MSET per slot, keeping same-slot ones whole', () => {
    expect(splitCrossSlot(['DEL', '{x}1', '{x}2'])).toBeUndefined();
    const parts = splitCrossSlot(['MSET', 'a', '1', 'b', '2', '{a}z', '3'])!;
    expect(parts.map((p) => [p.slot, p.args])).toEqual([
      [keySlot(Buffer.from('a')), ['MSET', 'a', '1', '{a}z', '3']],
      [keySlot(Buffer.from('b')), ['MSET', 'b', '2']],
    ]);
    expect(splitCrossSlot(['MSETNX', 'a', '1', 'b', '2'])).toBeUndefined();
    expect(splitCrossSlot(['MSET', 'a'])).toBeUndefined();
  });
});

describe('cluster topology', () => {
  it('builds the slot table from CLUSTER SLOTS, filling unknown hosts', () => {
    const t = parseClusterSlots([
      [0, 5460, ['127.0.0.1', 7000, 'id1'], ['127.0.0.1', 7003, 'id4']],
      [5461, 10922, ['', 7001, 'id2']],
      [10923, 16383, ['127.0.0.1', 7002, 'id3']],
    ], '10.0.0.1');
    expect(t.masters).toEqual(['127.0.0.1:7000', '10.0.0.1:7001', '127.0.0.1:7002']);
    expect([t.slots[0], t.slots[5460], t.slots[5461], t.slots[16383]]).toEqual([0, 0, 1, 2]);
  });

  it('refuses holes and malformed entries', () => {
    expect(() => parseClusterSlots([[0, 100, ['h', 1, 'x']]], 'h')).toThrow(/slots 101-16383 are served by no master/);
    expect(parseClusterSlots([[0, 100, ['h', 1, 'x']]], 'h', false).slots[101]).toBe(NO_NODE);
    expect(() => parseClusterSlots([[0, 16384, ['h', 1]]], 'h')).toThrow(/bad slot range/);
    expect(() => parseClusterSlots([[0, 1, ['h', 'x']]], 'h')).toThrow(/bad port/);
    expect(() => parseClusterSlots('nope', 'h')).toThrow(/expected an array/);
  });

  it('parses MOVED/ASK and rejects out-of-range slots', () => {
    expect(parseRedirect('MOVED 3999 127.0.0.1:6381', 'x')).toEqual({ kind: 'MOVED', slot: 3999, addr: '127.0.0.1:6381' });
    expect(parseRedirect('ASK 1 :6381', '10.1.1.1')).toEqual({ kind: 'ASK', slot: 1, addr: '10.1.1.1:6381' });
    expect(parseRedirect('MOVED 16384 h:1', 'x')).toBeUndefined();
    expect(parseRedirect('MOVED __proto__ h:1', 'x')).toBeUndefined();
    expect(parseRedirect('ERR MOVED 1 h:1', 'x')).toBeUndefined();
  });
});
