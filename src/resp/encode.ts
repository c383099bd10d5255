/**
 * RESP2 command encoding: `*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per argument.
 * One allocation per command: sizes are computed first, then bytes are written at offsets.
 *
 * This is the hot path of a full sync (millions of short arguments), so nothing goes through
 * Buffer#write/copy or String(), whose per-call overhead exceeds the work for short pieces:
 * decimal lengths are written digit by digit, short ASCII strings char by char, Buffers with
 * TypedArray#set (a builtin V8 inlines well) or a loop when tiny.
 */

export type Arg = Buffer | string | number;

/** Strings up to this length are scanned for ASCII and copied by a loop; longer ones natively. */
const SHORT_STRING = 64;
/** Buffers up to this length are copied by a loop; longer ones by TypedArray#set (a fast builtin, unlike Buffer#copy). */
const SHORT_BUFFER = 8;
/** Part of a Buffer up to this length is copied by a loop too: TypedArray#set would need a view of it. */
const SHORT_RANGE = 64;

/** Decimal digits of a non-negative safe integer. */
function uintDigits(n: number): number {
  if (n < 10) return 1;
  if (n < 100) return 2;
  if (n < 1000) return 3;
  if (n < 10000) return 4;
  if (n < 100000) return 5;
  if (n < 1000000) return 6;
  if (n < 10000000) return 7;
  if (n < 100000000) return 8;
  if (n < 1000000000) return 9;
  let d = 10;
  for (let p = 1e10; n >= p && d < 16; p *= 10) d++;
  return d;
}

/** A number written without String(): non-negative safe integers (all lengths, TTLs, dbs...). */
function isPlainUint(n: number): boolean {
  return n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n;
}

/** Writes `n` (a non-negative safe integer of `len` digits) at `o`; returns the offset after. */
function writeUint(out: Buffer, o: number, n: number, len: number): number {
  let p = o + len;
  if (n <= 0x7fffffff) {
    do {
      const q = (n / 10) | 0;
      out[--p] = 0x30 + (n - q * 10);
      n = q;
    } while (n > 0);
  } else {
    // Above 2^31 the int division trick overflows; double division is exact enough below 2^53.
    do {
      const q = Math.floor(n / 10);
      out[--p] = 0x30 + (n - q * 10);
      n = q;
    } while (n > 0);
  }
  return o + len;
}

/** UTF-8 byte length of a string: a loop for short ASCII ones, native otherwise. */
function stringBytes(s: string): number {
  const n = s.length;
  if (n <= SHORT_STRING) {
    let i = 0;
    while (i < n && s.charCodeAt(i) < 0x80) i++;
    if (i === n) return n;
  }
  return Buffer.byteLength(s, 'utf8');
}

/** Bytes of an argument on the wire, without the RESP framing. */
export function argLength(a: Arg): number {
  if (typeof a === 'string') return stringBytes(a);
  if (typeof a === 'number') return isPlainUint(a) ? uintDigits(a) : String(a).length;
  return a.length;
}

/** Bytes of an argument on the wire with its framing: `$<len>\r\n<bytes>\r\n`. */
export function bulkLength(a: Arg): number {
  const len = argLength(a);
  return 5 + uintDigits(len) + len;
}

/** Bytes of a multibulk header `*<n>\r\n`. */
export function multibulkHeaderLength(n: number): number {
  return 3 + uintDigits(n);
}

/** Bytes that `encodeCommand(args)` produces, without producing them. */
export function encodedLength(args: readonly Arg[]): number {
  let total = 3 + uintDigits(args.length);
  for (let i = 0; i < args.length; i++) total += bulkLength(args[i]!);
  return total;
}

/** Encode one command as a RESP2 multibulk. */
export function encodeCommand(args: readonly Arg[]): Buffer {
  const out = Buffer.allocUnsafe(encodedLength(args));
  writeCommand(out, 0, args);
  return out;
}

/** Writes `*<n>\r\n` at `offset`; returns the offset after it. */
export function writeMultibulkHeader(out: Buffer, offset: number, n: number): number {
  out[offset] = 0x2a; // '*'
  const o = writeUint(out, offset + 1, n, uintDigits(n));
  out[o] = 0x0d;
  out[o + 1] = 0x0a;
  return o + 2;
}

/** Writes one argument as a bulk string at `offset`; returns the offset after it. */
export function writeBulk(out: Buffer, offset: number, a: Arg): number {
  if (typeof a === 'object') return writeBufferBulk(out, offset, a);
  let o = offset;
  out[o++] = 0x24; // '$'
  if (typeof a === 'string') {
    const n = a.length;
    let ascii = n <= SHORT_STRING;
    for (let i = 0; ascii && i < n; i++) if (a.charCodeAt(i) >= 0x80) ascii = false;
    if (ascii) {
      o = writeUint(out, o, n, uintDigits(n));
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      for (let i = 0; i < n; i++) out[o++] = a.charCodeAt(i);
    } else {
      const len = Buffer.byteLength(a, 'utf8');
      o = writeUint(out, o, len, uintDigits(len));
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      o += out.write(a, o, 'utf8');
    }
  } else {
    if (isPlainUint(a)) {
      const d = uintDigits(a);
      o = writeUint(out, o, d, uintDigits(d));
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      o = writeUint(out, o, a, d);
    } else {
      // Negative, fractional, huge or not finite: JavaScript's own spelling, as before.
      const s = String(a);
      o = writeUint(out, o, s.length, uintDigits(s.length));
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      for (let i = 0; i < s.length; i++) out[o++] = s.charCodeAt(i);
    }
  }
  out[o++] = 0x0d;
  out[o++] = 0x0a;
  return o;
}

/** `writeBulk` for a Buffer (most arguments of a snapshot: keys, values, payloads). */
export function writeBufferBulk(out: Buffer, offset: number, a: Buffer): number {
  return writeRangeBulk(out, offset, a, 0, a.length);
}

/** Bytes of a bulk string of `len` bytes: `$<len>\r\n<bytes>\r\n`. */
export function bulkLengthOf(len: number): number {
  return 5 + uintDigits(len) + len;
}

/** Writes src[at, at + n) as a bulk string at `offset` (no view of it made); returns the offset after it. */
export function writeRangeBulk(out: Buffer, offset: number, src: Uint8Array, at: number, n: number): number {
  let o = offset;
  out[o] = 0x24; // '$'
  if (n < 10) {
    out[o + 1] = 0x30 + n;
    o += 2;
  } else if (n < 100) {
    const q = (n / 10) | 0;
    out[o + 1] = 0x30 + q;
    out[o + 2] = 0x30 + (n - q * 10);
    o += 3;
  } else {
    o = writeUint(out, o + 1, n, uintDigits(n));
  }
  out[o] = 0x0d;
  out[o + 1] = 0x0a;
  o += 2;
  const whole = at === 0 && n === src.length;
  if (n <= SHORT_BUFFER || (!whole && n <= SHORT_RANGE)) {
    for (let i = 0; i < n; i++) out[o + i] = src[at + i]!;
  } else {
    out.set(whole ? src : src.subarray(at, at + n), o);
  }
  o += n;
  out[o] = 0x0d;
  out[o + 1] = 0x0a;
  return o + 2;
}

/** Encode `args` into `out` at `offset`; returns the offset after the command. */
export function writeCommand(out: Buffer, offset: number, args: readonly Arg[]): number {
  let o = writeMultibulkHeader(out, offset, args.length);
  for (let i = 0; i < args.length; i++) o = writeBulk(out, o, args[i]!);
  return o;
}

/** Encode several commands into one Buffer (one socket write). */
export function encodeCommands(commands: readonly (readonly Arg[])[]): Buffer {
  let total = 0;
  for (const c of commands) total += encodedLength(c);
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (const c of commands) o = writeCommand(out, o, c);
  return out;
}
