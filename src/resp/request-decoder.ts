/**
 * A small decoder for RESP *requests* (the multibulk commands we write). The writer keeps no
 * per-command metadata on its hot path; when a reply is an error it re-reads the offending
 * command out of the unit's payload with these functions, to name it and its key.
 * The cluster writer also uses `splitCommands` to route the commands of a unit by key.
 */

const CR = 0x0d;
const STAR = 0x2a;
const DOLLAR = 0x24;

/** Parses `<digits>\r\n` at `off`; returns [value, offsetAfterCRLF] or undefined when malformed/incomplete. */
function readNumberLine(buf: Buffer, off: number): [number, number] | undefined {
  let n = 0;
  let o = off;
  const end = buf.length;
  if (o >= end) return undefined;
  for (; o < end; o++) {
    const c = buf[o]!;
    if (c === CR) {
      if (o === off || o + 1 >= end || buf[o + 1] !== 0x0a) return undefined;
      return [n, o + 2];
    }
    if (c < 0x30 || c > 0x39) return undefined;
    n = n * 10 + (c - 0x30);
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return undefined;
}

/**
 * Reads the command starting at `off`: its arguments as views into `buf` (when `args` is given)
 * and the offset after it. Returns -1 when the bytes there are not one complete multibulk.
 */
export function readCommand(buf: Buffer, off: number, args?: Buffer[]): number {
  if (buf[off] !== STAR) return -1;
  const head = readNumberLine(buf, off + 1);
  if (head === undefined) return -1;
  let [argc, o] = head;
  for (let i = 0; i < argc; i++) {
    if (buf[o] !== DOLLAR) return -1;
    const len = readNumberLine(buf, o + 1);
    if (len === undefined) return -1;
    const start = len[1];
    const stop = start + len[0];
    if (stop + 2 > buf.length || buf[stop] !== CR || buf[stop + 1] !== 0x0a) return -1;
    if (args) args.push(buf.subarray(start, stop));
    o = stop + 2;
  }
  return o;
}

/** The payload as one Buffer (a copy only when it is given in several pieces; error path only). */
export function joinPayload(payload: Buffer | readonly Buffer[]): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  return payload.length === 1 ? payload[0]! : Buffer.concat(payload as Buffer[]);
}

/** The arguments of command number `index` (0-based) in `payload`, or undefined if it is not there. */
export function commandAt(payload: Buffer | readonly Buffer[], index: number): Buffer[] | undefined {
  const buf = joinPayload(payload);
  let off = 0;
  for (let i = 0; i < index; i++) {
    off = readCommand(buf, off);
    if (off < 0) return undefined;
  }
  const args: Buffer[] = [];
  return readCommand(buf, off, args) < 0 ? undefined : args;
}

/** Every command of `payload` with its byte range; throws nothing, returns undefined when malformed. */
export function splitCommands(payload: Buffer | readonly Buffer[]): { args: Buffer[]; start: number; end: number; buf: Buffer }[] | undefined {
  const buf = joinPayload(payload);
  const out: { args: Buffer[]; start: number; end: number; buf: Buffer }[] = [];
  let off = 0;
  while (off < buf.length) {
    const args: Buffer[] = [];
    const end = readCommand(buf, off, args);
    if (end < 0) return undefined;
    out.push({ args, start: off, end, buf });
    off = end;
  }
  return out;
}
