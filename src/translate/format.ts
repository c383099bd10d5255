/**
 * Small formatting rules shared by the translator and the exporters: how a score,
 * a target version and a command's size are written.
 */
import type { Arg } from '../resp/encode.js';

/**
 * A zset score as ZADD argument text that parses back (strtod) to the same double.
 * ECMAScript's Number-to-String gives the shortest text that round-trips; -0 needs its
 * sign spelled out (String(-0) is "0"), and the infinities use the spelling ZADD documents.
 */
export function formatScore(score: number): string {
  if (score === Infinity) return '+inf';
  if (score === -Infinity) return '-inf';
  if (Number.isNaN(score)) throw new RangeError('a zset score cannot be NaN');
  if (score === 0 && 1 / score < 0) return '-0';
  return String(score);
}

/** `"7.0"`, `"7.4.1"`, `"6"` -> major*100 + minor (700, 704, 600). Throws on junk. */
export function parseTargetVersion(version: string): number {
  const m = /^(\d+)(?:\.(\d+))?(?:\.\d+)?$/.exec(version.trim());
  if (!m) throw new RangeError(`not a server version: "${version}" (expected e.g. 7.0 or 7.4.1)`);
  const minor = m[2] === undefined ? 0 : Number(m[2]);
  return Number(m[1]) * 100 + Math.min(minor, 99);
}

/** Bytes an argument takes on the wire, without the RESP framing. */
export function argBytes(a: Arg): number {
  if (typeof a === 'string') return Buffer.byteLength(a);
  if (typeof a === 'number') return String(a).length;
  return a.length;
}

/** RESP framing per bulk argument: `$<len>\r\n...\r\n` (len digits approximated as 4..8). */
export const ARG_OVERHEAD = 12;
