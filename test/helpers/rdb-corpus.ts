/**
 * Locating the shared RDB corpus (../shared/rdb-corpus, beside the repository) and turning
 * its JSON byte-string forms back into bytes.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS_DIR = fileURLToPath(new URL('../../../shared/rdb-corpus', import.meta.url));

/** Every .rdb in the corpus (top level and public/**), sorted, as absolute paths. */
export function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string, recurse: boolean): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (recurse) walk(p, true);
      } else if (name.endsWith('.rdb')) {
        out.push(p);
      }
    }
  };
  if (!existsSync(CORPUS_DIR)) throw new Error(`RDB corpus not found at ${CORPUS_DIR}`);
  walk(CORPUS_DIR, false);
  const pub = join(CORPUS_DIR, 'public');
  if (existsSync(pub)) walk(pub, true);
  return out;
}

/** A byte string as the corpus JSON writes it. */
export type JsonBytes = string | { b64: string } | { len: number; sha256: string };

/** True when `actual` is the byte string `expected` describes. */
export function bytesMatch(actual: Buffer, expected: JsonBytes): boolean {
  if (typeof expected === 'string') return actual.equals(Buffer.from(expected, 'utf8'));
  if ('b64' in expected) return actual.equals(Buffer.from(expected.b64, 'base64'));
  return actual.length === expected.len && createHash('sha256').update(actual).digest('hex') === expected.sha256;
}

/** A stable text form of a byte string, for sorting and for messages. */
export function jsonBytesKey(expected: JsonBytes): string {
  if (typeof expected === 'string') return Buffer.from(expected, 'utf8').toString('hex');
  if ('b64' in expected) return Buffer.from(expected.b64, 'base64').toString('hex');
  return `len:${expected.len}:${expected.sha256}`;
}

export function bufferKey(b: Buffer): string {
  return b.length > 65536 ? `len:${b.length}:${createHash('sha256').update(b).digest('hex')}` : b.toString('hex');
}
