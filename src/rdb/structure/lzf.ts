/**
 * LZF decompression (redis-internals §2.4), with every read and write bounds-checked so
 * corrupt input raises a BlobError instead of reading or writing out of range. Whole-blob
 * (lzfDecompress) or token by token as the compressed bytes arrive (lzfDecodeTokens), since
 * back-references only point into the output already written.
 */
import { BlobError } from './blob-error.js';

/** 3 input bytes expand to at most 264 output bytes: refuse impossible sizes before allocating. */
export function lzfLengthsPossible(compressedLen: number, outLen: number): boolean {
  return outLen <= compressedLen * 88 + 264;
}

/**
 * Decompress src[start, end) into a new Buffer of exactly `outLen` bytes.
 * `absOffset` is the absolute RDB offset of src[start], for error messages.
 */
export function lzfDecompress(src: Uint8Array, start: number, end: number, outLen: number, absOffset: number): Buffer {
  if (!lzfLengthsPossible(end - start, outLen)) {
    throw new BlobError(`LZF data of ${end - start} bytes cannot decompress to ${outLen} bytes`, absOffset);
  }
  const out = Buffer.allocUnsafe(outLen);
  lzfDecodeTokens(src, start, end, out, 0, false, absOffset - start);
  const op = lzfProgress.op;
  if (op !== outLen) throw new BlobError(`LZF data decompressed to ${op} bytes, expected ${outLen}`, absOffset);
  return out;
}

/** Bytes of the LZF token starting at src[ip] (1 when none of it is there yet: the control byte tells). */
export function lzfTokenSize(src: Uint8Array, ip: number, end: number): number {
  if (ip >= end) return 1;
  const ctrl = src[ip]!;
  if (ctrl < 32) return ctrl + 2;
  return ctrl >> 5 === 7 ? 3 : 2;
}

/** Where the last lzfDecodeTokens() call stopped: next input index, output length. */
export const lzfProgress = { ip: 0, op: 0 };

/**
 * Decode the LZF tokens of src[ip, end) into out[op..]; the result is left in lzfProgress.
 * With `partial`, a token cut off by `end` is left undecoded (its bytes have not arrived
 * yet); without, it is corrupt data. `absBase` is the absolute RDB offset of src[0], for
 * error messages. Throws BlobError.
 *
 * `out` is the whole output, or (with `windowFull` true) a window of it that holds the last
 * 8 KiB written before out[0] too: a token that does not fit is then left undecoded for the
 * caller to move the window on. `declared` is the value's declared length, for messages.
 */
export function lzfDecodeTokens(
  src: Uint8Array, ip: number, end: number, out: Buffer, op: number, partial: boolean, absBase: number,
  windowFull = false, declared = out.length,
): void {
  const outLen = out.length;
  while (ip < end) {
    const ctrl = src[ip]!;
    if (ctrl < 32) {
      // Literal run of ctrl + 1 bytes.
      const n = ctrl + 1;
      if (ip + 1 + n > end) {
        if (partial) break;
        throw new BlobError(`LZF literal run of ${n} bytes runs past the compressed data`, absBase + ip);
      }
      if (op + n > outLen) {
        if (windowFull) break;
        throw new BlobError(`LZF output overflows the declared length ${declared}`, absBase + ip);
      }
      ip++;
      for (let i = 0; i < n; i++) out[op++] = src[ip++]!;
    } else {
      let q = ip + 1;
      let n = ctrl >> 5;
      if (n === 7) {
        if (q >= end) {
          if (partial) break;
          throw new BlobError('LZF back-reference length runs past the compressed data', absBase + q);
        }
        n += src[q++]!;
      }
      if (q >= end) {
        if (partial) break;
        throw new BlobError('LZF back-reference offset runs past the compressed data', absBase + q);
      }
      const back = ((ctrl & 0x1f) << 8) + src[q++]! + 1;
      n += 2;
      let ref = op - back;
      if (ref < 0) throw new BlobError(`LZF back-reference points ${back} bytes back, before the start of the output`, absBase + q - 2);
      if (op + n > outLen) {
        if (windowFull) break;
        throw new BlobError(`LZF output overflows the declared length ${declared}`, absBase + q - 2);
      }
      ip = q;
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
  lzfProgress.ip = ip;
  lzfProgress.op = op;
}
