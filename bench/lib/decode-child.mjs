/**
 * Child process for bench/rdb-decode.mjs: decodes one RDB file with the library's RdbDecoder
 * over a file stream, counts keys and elements, and prints one JSON line:
 * { bytes, keys, elements, records, ms, maxRssKb }.
 *
 *   node bench/lib/decode-child.mjs <file> [--capture-raw] [--no-verify-checksum] [--chunk BYTES] [--dist DIR]
 *
 * Run as a separate process so its peak RSS is the decoder's alone.
 */
import { createReadStream, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

// --dist DIR decodes with another build (A/B runs); default: this checkout's dist/.
const distAt = process.argv.indexOf('--dist');
const distUrl = distAt >= 0 ? pathToFileURL(`${resolve(process.argv[distAt + 1])}/`).href : new URL('../../dist/', import.meta.url).href;
const { RdbDecoder } = await import(new URL('rdb/decoder.js', distUrl).href);

const [file, ...flags] = process.argv.slice(2);
if (!file) {
  console.error('usage: decode-child.mjs <file> [--capture-raw] [--no-verify-checksum]');
  process.exit(2);
}
const chunkAt = flags.indexOf('--chunk');
const chunkBytes = chunkAt >= 0 ? Number(flags[chunkAt + 1]) : 1024 * 1024;
const decoder = new RdbDecoder({ captureRaw: flags.includes('--capture-raw'), verifyChecksum: !flags.includes('--no-verify-checksum') });
let keys = 0;
let elements = 0;
let records = 0;
const t0 = process.hrtime.bigint();
for await (const chunk of createReadStream(file, { highWaterMark: chunkBytes })) {
  const recs = decoder.push(chunk);
  records += recs.length;
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i];
    switch (r.kind) {
      case 'keyStart':
        keys++;
        break;
      case 'string':
        elements++;
        break;
      case 'listItems':
      case 'setItems':
      case 'zsetItems':
      case 'hashItems':
      case 'arrayItems':
        // A compact blob's record knows its count without making its items (src/rdb/values/blob-items.ts).
        elements += typeof r.count === 'number' ? r.count : r.items.length;
        break;
      case 'streamEntries':
        elements += r.entries.length;
        break;
      default:
        break;
    }
  }
  if (decoder.done) break;
}
decoder.finish();
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(`${JSON.stringify({ bytes: statSync(file).size, keys, elements, records, ms, maxRssKb: process.resourceUsage().maxRSS })}\n`);
