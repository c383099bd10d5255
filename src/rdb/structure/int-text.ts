/**
 * Decimal text of an integer as a Buffer (int-encoded RDB strings, ziplist / listpack /
 * intset integers all become their text). Digits are written straight into a slab and handed
 * out as non-overlapping views, which is about twice as fast as Buffer.from(String(v)).
 * A slab is never written again once a view of it is out, so sharing one is safe; it is freed
 * when its last view is (like Node's own Buffer pool).
 */
const SLAB_SIZE = 16 * 1024;
/** Longest text: "-9007199254740991" is 17 bytes; keep room for any safe integer. */
const MAX_TEXT = 24;

let slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
let used = 0;

/** Text of an integer with |v| < 2^53. */
export function intText(v: number): Buffer {
  if (used + MAX_TEXT > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    used = 0;
  }
  const s = slab;
  const start = used;
  let x = v;
  let p = start;
  if (x < 0) {
    s[p++] = 0x2d;
    x = -x;
  }
  let digits = 1;
  for (let d = x; d >= 10; d = Math.floor(d / 10)) digits++;
  const end = p + digits;
  for (let i = end - 1; i >= p; i--) {
    s[i] = 0x30 + (x % 10);
    x = Math.floor(x / 10);
  }
  used = end;
  return s.subarray(start, end);
}

/** Length of intText(v) (|v| < 2^53), without making it. */
export function intTextLength(v: number): number {
  let n = v < 0 ? 2 : 1;
  for (let d = Math.abs(v); d >= 10; d = Math.floor(d / 10)) n++;
  return n;
}
