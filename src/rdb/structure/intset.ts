/** Intset decoding (redis-internals §2.11.3): sorted, unique, 16/32/64-bit integers. */
import { BlobError } from './blob-error.js';
import { intText } from './int-text.js';

export function intsetValues(blob: Buffer, absOffset: number): Buffer[] {
  if (blob.length < 8) throw new BlobError(`intset of ${blob.length} bytes is shorter than its 8-byte header`, absOffset);
  const enc = blob.readUInt32LE(0);
  const n = blob.readUInt32LE(4);
  if (enc !== 2 && enc !== 4 && enc !== 8) throw new BlobError(`intset encoding ${enc} is not 2, 4 or 8`, absOffset);
  if (n === 0) throw new BlobError('intset length is 0', absOffset + 4);
  if (blob.length !== 8 + n * enc) {
    throw new BlobError(`intset of ${n} x ${enc}-byte values needs ${8 + n * enc} bytes, its string holds ${blob.length}`, absOffset);
  }
  const out: Buffer[] = new Array<Buffer>(n);
  if (enc === 8) {
    let prev: bigint | null = null;
    for (let i = 0; i < n; i++) {
      const v = blob.readBigInt64LE(8 + i * 8);
      if (prev !== null && v <= prev) throw new BlobError('intset values are not sorted and unique', absOffset + 8 + i * 8);
      prev = v;
      out[i] = Buffer.from(v.toString(), 'latin1');
    }
    return out;
  }
  let prev = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = enc === 2 ? blob.readInt16LE(8 + i * 2) : blob.readInt32LE(8 + i * 4);
    if (v <= prev) throw new BlobError('intset values are not sorted and unique', absOffset + 8 + i * enc);
    prev = v;
    out[i] = intText(v);
  }
  return out;
}
