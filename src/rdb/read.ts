/**
 * Decode a whole byte stream (file, stdin, socket) as an async iterable of records.
 * Records are produced as the consumer pulls them, so a slow consumer slows the reading
 * (backpressure). At the 'end' record the generator returns, which releases the input (a
 * Node stream is destroyed); bytes after the RDB are not consumed. To keep those bytes (a
 * replication link: diskless EOF mark, then the command stream), drive an RdbDecoder directly
 * and call remainder(). If the input ends before the RDB does, the generator throws RdbError.
 *
 * Each record costs a promise turn here; a hot loop over millions of keys is several times
 * faster with RdbDecoder.push() and KeyAssembler, which are synchronous.
 */
import { RdbDecoder } from './decoder.js';
import type { RdbDecoderOptions, RdbRecord } from './types.js';

/**
 * Bytes to hand RdbDecoder.push() at a time; every loop that feeds the decoder large chunks
 * slices them to this size. The records of one push() are all alive at once, and keeping them
 * few lets them die young (a 1 MiB push of small keys makes ~100k records that the GC would
 * otherwise copy and promote, about 3x slower overall).
 */
export const DECODE_SLICE_BYTES = 64 * 1024;

export async function* decodeRdbStream(input: AsyncIterable<Buffer>, opts?: RdbDecoderOptions): AsyncGenerator<RdbRecord> {
  const decoder = new RdbDecoder(opts);
  for await (const data of input) {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < chunk.length; off += DECODE_SLICE_BYTES) {
      const records = decoder.push(chunk.length <= DECODE_SLICE_BYTES ? chunk : chunk.subarray(off, off + DECODE_SLICE_BYTES));
      for (let i = 0; i < records.length; i++) yield records[i]!;
      if (decoder.done) return;
    }
  }
  decoder.finish();
}
