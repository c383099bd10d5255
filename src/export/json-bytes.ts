/**
 * The corpus convention for a byte string in JSON (see ../shared/rdb-corpus/README.md):
 * a JSON string when the bytes are valid UTF-8 without control characters (U+0000-U+001F,
 * U+007F), else `{"b64": "<standard base64>"}`.
 *
 * The fast path never builds a JS string: such bytes are already valid JSON string content
 * except for `"` and `\`, which are escaped while copying.
 */
import { isUtf8 } from 'node:buffer';
import type { OutputBuffer } from './output.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** 0: plain text, 1: text that needs `"`/`\` escaped, 2: needs base64. */
function classify(b: Buffer): 0 | 1 | 2 {
  let escape = false;
  let ascii = true;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c === 0x7f) return 2;
    if (c >= 0x80) ascii = false;
    else if (c === QUOTE || c === BACKSLASH) escape = true;
  }
  if (!ascii && !isUtf8(b)) return 2;
  return escape ? 1 : 0;
}

/** True when `b` is written as a plain JSON string (not base64). */
export function isJsonText(b: Buffer): boolean {
  return classify(b) !== 2;
}

/** Write `b` to `out` in the byte-string convention. */
export function writeJsonBytes(out: OutputBuffer, b: Buffer): void {
  const kind = classify(b);
  if (kind === 0) {
    out.byte(QUOTE);
    out.bytes(b);
    out.byte(QUOTE);
  } else if (kind === 1) {
    out.byte(QUOTE);
    writeEscaped(out, b);
    out.byte(QUOTE);
  } else {
    out.ascii('{"b64":"');
    out.ascii(b.toString('base64'));
    out.ascii('"}');
  }
}

/** Text bytes as JSON string content: `"` and `\` escaped, the rest copied. */
export function writeEscaped(out: OutputBuffer, b: Buffer): void {
  let start = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === QUOTE || c === BACKSLASH) {
      if (i > start) out.bytes(b.subarray(start, i));
      out.byte(BACKSLASH);
      out.byte(c);
      start = i + 1;
    }
  }
  if (start < b.length) out.bytes(b.subarray(start));
}

/** The same convention as a JSON text (for small values, tests and messages). */
export function jsonBytes(b: Buffer): string {
  return classify(b) === 2 ? `{"b64":${JSON.stringify(b.toString('base64'))}}` : JSON.stringify(b.toString('utf8'));
}

/** A zset score as JSON: a number, `-0` kept, infinities as "inf"/"-inf". */
export function jsonScore(score: number): string {
  if (score === Infinity) return '"inf"';
  if (score === -Infinity) return '"-inf"';
  if (score === 0 && 1 / score < 0) return '-0';
  if (Number.isNaN(score)) return '"nan"';
  return String(score);
}
