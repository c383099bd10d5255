/**
 * DUMP payloads (redis-internals §3.1): the serialized value (type byte first, exactly as in
 * an RDB, i.e. keyEnd.raw), then the RDB version as u16le, then the CRC-64 of all of that.
 */
import { Crc64 } from './crc64.js';

export function buildDumpPayload(raw: Buffer, rdbVersion: number): Buffer {
  if (!Number.isInteger(rdbVersion) || rdbVersion < 1 || rdbVersion > 0xffff) {
    throw new RangeError(`RDB version ${rdbVersion} does not fit a DUMP payload's u16 field`);
  }
  const out = Buffer.allocUnsafe(raw.length + 10);
  raw.copy(out, 0);
  out.writeUInt16LE(rdbVersion, raw.length);
  const crc = new Crc64();
  crc.update(out, 0, raw.length + 2);
  out.writeBigUInt64LE(crc.value(), raw.length + 2);
  return out;
}
