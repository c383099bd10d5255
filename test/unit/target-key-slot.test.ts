import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc16, keySlot } from '../../src/commands/slot.js';

describe('keySlot', () => {
  it('matches the reference CRC16 and known slots', () => {
    // Redis cluster spec: CRC16("123456789") = 0x31C3.
    expect(crc16(Buffer.from('123456789'))).toBe(0x31c3);
    expect(keySlot(Buffer.from('foo'))).toBe(12182);
    expect(keySlot(Buffer.from('bar'))).toBe(5061);
    expect(keySlot(Buffer.from(''))).toBe(0);
  });

  it('hashes only a non-empty hash tag', () => {
    expect(keySlot(Buffer.from('{user1000}.following'))).toBe(keySlot(Buffer.from('user1000')));
    expect(keySlot(Buffer.from('foo{}{bar}'))).toBe(keySlot(Buffer.from('foo{}{bar}'))); // empty first tag: whole key
    expect(keySlot(Buffer.from('foo{}{bar}'))).not.toBe(keySlot(Buffer.from('bar')));
    expect(keySlot(Buffer.from('foo{{bar}}zap'))).toBe(keySlot(Buffer.from('{bar')));
    expect(keySlot(Buffer.from('foo{bar}{zap}'))).toBe(keySlot(Buffer.from('bar')));
  });

  it('always lands in [0, 16384)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (a) => {
      const s = keySlot(Buffer.from(a));
      return Number.isInteger(s) && s >= 0 && s < 16384;
    }));
  });
});
