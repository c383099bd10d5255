import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc64 } from '../../src/rdb/crc64.js';
import { DUMP_TRAILER_BYTES, buildDumpPayload, writeDumpPayload } from '../../src/rdb/dump.js';

/** raw + u16le version + u64le CRC-64 of both, the slow way. */
function reference(raw: Buffer, version: number): Buffer {
  const body = Buffer.concat([raw, Buffer.from([version & 0xff, version >> 8])]);
  const crc = Buffer.alloc(8);
  crc.writeBigUInt64LE(crc64(body));
  return Buffer.concat([body, crc]);
}

describe('DUMP payloads', () => {
  it('the redis-internals example: SET s1 12345 at RDB 10', () => {
    expect(buildDumpPayload(Buffer.from('00c13930', 'hex'), 10).toString('hex')).toBe('00c139300a009d94ea2793fc08b9');
  });

  it('match the reference for any value and version, built alone or in place at any offset', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 1, max: 0xffff }), fc.nat({ max: 9 }), (u, version, offset) => {
        const raw = Buffer.from(u);
        const want = reference(raw, version);
        expect(buildDumpPayload(raw, version)).toEqual(want);
        const out = Buffer.alloc(offset + raw.length + DUMP_TRAILER_BYTES + 2, 0xee);
        expect(writeDumpPayload(out, offset, raw, version)).toBe(offset + want.length);
        expect(out.subarray(offset, offset + want.length)).toEqual(want);
        expect(out[offset + want.length]).toBe(0xee);
        if (offset > 0) expect(out[offset - 1]).toBe(0xee);
      }),
      { numRuns: 500 },
    );
  });

  it('a long value (the word-at-a-time CRC path) and consecutive payloads are independent', () => {
    const big = Buffer.alloc(100_003);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    const a = buildDumpPayload(big, 11);
    const b = buildDumpPayload(Buffer.from('00c13930', 'hex'), 10);
    expect(a.equals(reference(big, 11))).toBe(true);
    expect(b.toString('hex')).toBe('00c139300a009d94ea2793fc08b9');
  });

  it('rejects versions that do not fit the u16 field, and buffers without room', () => {
    expect(() => buildDumpPayload(Buffer.alloc(1), 0)).toThrow(RangeError);
    expect(() => buildDumpPayload(Buffer.alloc(1), 0x10000)).toThrow(RangeError);
    expect(() => buildDumpPayload(Buffer.alloc(1), 1.5)).toThrow(RangeError);
    expect(() => writeDumpPayload(Buffer.alloc(12), 3, Buffer.alloc(4), 10)).toThrow(/does not fit at offset 3 of a 12-byte buffer/);
  });
});
