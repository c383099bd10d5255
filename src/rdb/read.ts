/**
 * Decode a whole byte stream (file, stdin, socket) as an async iterable of records.
 * Records are produced as the consumer pulls them, so a slow consumer slows the reading
 * (backpressure). Reading stops at the end of the RDB; bytes after it are not consumed.
 */
import { RdbDecoder } from './decoder.js';
import type { RdbDecoderOptions, RdbRecord } from './types.js';

export async function* decodeRdbStream(input: AsyncIterable<Buffer>, opts?: RdbDecoderOptions): AsyncGenerator<RdbRecord> {
  const decoder = new RdbDecoder(opts);
  for await (const chunk of input) {
    const records = decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    for (let i = 0; i < records.length; i++) yield records[i]!;
    if (decoder.done) return;
  }
  decoder.finish();
}
