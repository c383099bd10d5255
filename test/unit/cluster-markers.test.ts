import { describe, expect, it } from 'vitest';
import { ClusterMarkers, type MasterSlot } from '../../src/checkpoint/cluster-markers.js';
import { keySlot } from '../../src/commands/slot.js';

/** A fake master holding keys in a Set (the marker logic only runs EXISTS and SET). */
function master(addr: string, slot: number, keys = new Set<string>()): MasterSlot & { keys: Set<string> } {
  return {
    addr,
    slot,
    keys,
    call: async (args) => {
      const [cmd, key] = args.map(String);
      if (cmd === 'EXISTS') return keys.has(key!) ? 1 : 0;
      keys.add(key!);
      return 'OK';
    },
  };
}

describe('ClusterMarkers', () => {
  it('puts each marker in the slot it is for, whatever braces the sync name holds', () => {
    for (const name of ['orders', 'a{b}c', '{x}']) {
      const m = new ClusterMarkers(name);
      for (const slot of [0, 1, 5460, 16383]) expect(keySlot(Buffer.from(m.key(slot)))).toBe(slot);
    }
  });

  it('places markers, then reports a master that lost one; a suspended check places them again', async () => {
    const m = new ClusterMarkers('s');
    const a = master('a:1', 0);
    const b = master('b:1', 8000);
    expect(await m.check([a, b], 10)).toBeNull();
    expect(a.keys.size + b.keys.size).toBe(2);
    expect(await m.check([a, b], 11)).toBeNull();
    b.keys.clear();
    expect(await m.check([a, b], 12)).toMatch(/^master b:1 no longer holds the marker key __replicant:marker:s\{\d+\}/);
    // A relayed FLUSHALL at offset 20: nothing is checked before it is applied, then markers are placed again.
    m.suspendUntil(20);
    a.keys.clear();
    expect(await m.check([a, b], 19)).toBeNull();
    expect(a.keys.size).toBe(0);
    expect(await m.check([a, b], 20)).toBeNull();
    expect(a.keys.size + b.keys.size).toBe(2);
  });
});
