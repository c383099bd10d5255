import type { ReplicationStreamParser, StreamCommand } from '../../src/resp/stream-parser.js';

/** Feed `bytes` to `parser` cut at the given chunk sizes (cycled); returns every command parsed. */
export function feed(parser: ReplicationStreamParser, bytes: Buffer, sizes: number[]): StreamCommand[] {
  const out: StreamCommand[] = [];
  let i = 0;
  let k = 0;
  while (i < bytes.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    for (const c of parser.push(bytes.subarray(i, i + n))) out.push(c);
    i += n;
  }
  return out;
}
