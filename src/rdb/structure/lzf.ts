/**
 * LZF decompression (redis-internals §2.4), with every read and write bounds-checked so
 * corrupt input raises a BlobError instead of reading or writing out of range.
 */
import { BlobError } from './blob-error.js';

/**
 * Decompress src[start, end) into a new Buffer of exactly `outLen` bytes.
 * `absOffset` is the absolute RDB offset of src[start], for error messages.
 */
export function lzfDecompress(src: Uint8Array, start: number, end: number, outLen: number, absOffset: number): Buffer {
  // 3 input bytes expand to at most 264 output bytes: refuse impossible sizes before allocating.
  if (outLen > (end - start) * 88 + 264) {
    throw new BlobError(`LZF data of ${end - start} bytes cannot decompress to ${outLen} bytes`, absOffset);
  }
  const out = Buffer.allocUnsafe(outLen);
  let ip = start;
  let op = 0;
  while (ip < end) {
    const ctrl = src[ip++]!;
    if (ctrl < 32) {
      // Literal run of ctrl + 1 bytes.
      const n = ctrl + 1;
      if (ip + n > end) throw new BlobError(`LZF literal run of ${n} bytes runs past the compressed data`, absOffset + ip - start - 1);
      if (op + n > outLen) throw new BlobError(`LZF output overflows the declared length ${outLen}`, absOffset + ip - start - 1);
      for (let i = 0; i < n; i++) out[op++] = src[ip++]!;
    } else {
      let n = ctrl >> 5;
      if (n === 7) {
        if (ip >= end) throw new BlobError('LZF back-reference length runs past the compressed data', absOffset + ip - start);
        n += src[ip++]!;
      }
      if (ip >= end) throw new BlobError('LZF back-reference offset runs past the compressed data', absOffset + ip - start);
      const back = ((ctrl & 0x1f) << 8) + src[ip++]! + 1;
      n += 2;
      let ref = op - back;
      if (ref < 0) throw new BlobError(`LZF back-reference points ${back} bytes back, before the start of the output`, absOffset + ip - start - 2);
      if (op + n > outLen) throw new BlobError(`LZF output overflows the declared length ${outLen}`, absOffset + ip - start - 2);
      if (back >= n && n > 32) {
        out.copyWithin(op, ref, ref + n);
        op += n;
      } else {
        // Short or overlapping copy: byte by byte (overlap must repeat the pattern, and a
        // loop beats a native call for a few bytes).
        for (let i = 0; i < n; i++) out[op++] = out[ref++]!;
      }
    }
  }
  if (op !== outLen) throw new BlobError(`LZF data decompressed to ${op} bytes, expected ${outLen}`, absOffset);
  return out;
}
