/**
 * DUMP payloads (redis-internals §3.1): the serialized value (type byte first, exactly as in
 * an RDB, i.e. keyEnd.raw), then the RDB version as u16le, then the CRC-64 of all of that.
 */
import { Crc64 } from './crc64.js';

/** Bytes a DUMP payload adds after the serialized value: u16 RDB version + u64 CRC. */
export const DUMP_TRAILER_BYTES = 10;

/**
 * One state reused for every payload: `new Crc64()` converts its BigInt seed and `value()`
 * builds a BigInt, both needless per key; the two 32-bit halves are written directly.
 */
const crc = new Crc64();

function checkVersion(rdbVersion: number): void {
  if (!Number.isInteger(rdbVersion) || rdbVersion < 1 || rdbVersion > 0xffff) {
    throw new RangeError(`RDB version ${rdbVersion} does not fit a DUMP payload's u16 field`);
  }
}

/**
 * Writes the DUMP payload of `raw` into `out` at `offset` (`raw.length + 10` bytes, which the
 * caller has made room for); returns the offset after it.
 */
export function writeDumpPayload(out: Buffer, offset: number, raw: Buffer, rdbVersion: number): number {
  checkVersion(rdbVersion);
  const n = raw.length;
  if (offset < 0 || offset + n + DUMP_TRAILER_BYTES > out.length) {
    throw new RangeError(`a ${n + DUMP_TRAILER_BYTES}-byte DUMP payload does not fit at offset ${offset} of a ${out.length}-byte buffer`);
  }
  out.set(raw, offset);
  let o = offset + n;
  out[o] = rdbVersion & 0xff;
  out[o + 1] = rdbVersion >>> 8;
  crc.lo = 0;
  crc.hi = 0;
  crc.update(out, offset, o + 2);
  const lo = crc.lo;
  const hi = crc.hi;
  o += 2;
  out[o] = lo & 0xff;
  out[o + 1] = (lo >>> 8) & 0xff;
  out[o + 2] = (lo >>> 16) & 0xff;
  out[o + 3] = lo >>> 24;
  out[o + 4] = hi & 0xff;
  out[o + 5] = (hi >>> 8) & 0xff;
  out[o + 6] = (hi >>> 16) & 0xff;
  out[o + 7] = hi >>> 24;
  return o + 8;
}

/** The DUMP payload of `raw`, in a Buffer of its own. */
export function buildDumpPayload(raw: Buffer, rdbVersion: number): Buffer {
  checkVersion(rdbVersion);
  const out = Buffer.allocUnsafe(raw.length + DUMP_TRAILER_BYTES);
  writeDumpPayload(out, 0, raw, rdbVersion);
  return out;
}
