/**
 * RESP2 command encoding: `*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per argument.
 * One allocation per command: sizes are computed first, then bytes are written at offsets.
 */

export type Arg = Buffer | string | number;

function argLength(a: Arg): number {
  if (typeof a === 'string') return Buffer.byteLength(a);
  if (typeof a === 'number') return String(a).length;
  return a.length;
}

function digits(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : String(n).length;
}

/** Bytes that `encodeCommand(args)` produces, without producing them. */
export function encodedLength(args: readonly Arg[]): number {
  let total = 3 + digits(args.length);
  for (const a of args) {
    const len = argLength(a);
    total += 5 + digits(len) + len;
  }
  return total;
}

/** Encode one command as a RESP2 multibulk. */
export function encodeCommand(args: readonly Arg[]): Buffer {
  const out = Buffer.allocUnsafe(encodedLength(args));
  writeCommand(out, 0, args);
  return out;
}

/** Encode `args` into `out` at `offset`; returns the offset after the command. */
export function writeCommand(out: Buffer, offset: number, args: readonly Arg[]): number {
  let o = offset;
  out[o++] = 0x2a; // '*'
  o += out.write(String(args.length), o, 'latin1');
  out[o++] = 0x0d;
  out[o++] = 0x0a;
  for (const a of args) {
    out[o++] = 0x24; // '$'
    if (typeof a === 'string') {
      const len = Buffer.byteLength(a);
      o += out.write(String(len), o, 'latin1');
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      o += out.write(a, o, 'utf8');
    } else if (typeof a === 'number') {
      const s = String(a);
      o += out.write(String(s.length), o, 'latin1');
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      o += out.write(s, o, 'latin1');
    } else {
      o += out.write(String(a.length), o, 'latin1');
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      o += a.copy(out, o);
    }
    out[o++] = 0x0d;
    out[o++] = 0x0a;
  }
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
