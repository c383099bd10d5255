/** Intset decoding (redis-internals §2.11.3): sorted, unique, 16/32/64-bit integers. */
import { BlobError } from './blob-error.js';
import { intText, intTextLength } from './int-text.js';

/**
 * Checks an intset and appends its values' text to `out` (null: only checked). Returns the
 * total length of that text.
 */
export function walkIntset(blob: Buffer, absOffset: number, out: Buffer[] | null): number {
  if (blob.length < 8) throw new BlobError(`intset of ${blob.length} bytes is shorter than its 8-byte header`, absOffset);
  const enc = blob.readUInt32LE(0);
  const n = blob.readUInt32LE(4);
  if (enc !== 2 && enc !== 4 && enc !== 8) throw new BlobError(`intset encoding ${enc} is not 2, 4 or 8`, absOffset);
  if (n === 0) throw new BlobError('intset length is 0', absOffset + 4);
  if (blob.length !== 8 + n * enc) {
    throw new BlobError(`intset of ${n} x ${enc}-byte values needs ${8 + n * enc} bytes, its string holds ${blob.length}`, absOffset);
  }
  let textBytes = 0;
  if (enc === 8) {
    let prev: bigint | null = null;
    for (let i = 0; i < n; i++) {
      const v = blob.readBigInt64LE(8 + i * 8);
      if (prev !== null && v <= prev) throw new BlobError('intset values are not sorted and unique', absOffset + 8 + i * 8);
      prev = v;
      const text = v.toString();
      textBytes += text.length;
      out?.push(Buffer.from(text, 'latin1'));
    }
    return textBytes;
  }
  let prev = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = enc === 2 ? blob.readInt16LE(8 + i * 2) : blob.readInt32LE(8 + i * 4);
    if (v <= prev) throw new BlobError('intset values are not sorted and unique', absOffset + 8 + i * enc);
    prev = v;
    if (out !== null) out.push(intText(v));
    textBytes += intTextLength(v);
  }
  return textBytes;
}
