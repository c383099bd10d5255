/** Zipmap decoding (redis-internals §2.11.4, Redis <= 2.4 hashes): returns field, value, field, value... */
import { BlobError } from './blob-error.js';

const BIGLEN = 254;
const END = 255;

export function zipmapValues(blob: Buffer, absOffset: number): Buffer[] {
  const size = blob.length;
  if (size < 2) throw new BlobError(`zipmap of ${size} bytes is too short`, absOffset);
  if (blob[size - 1] !== END) throw new BlobError('bad zipmap terminator', absOffset + size - 1);
  const declared = blob[0]!;
  const out: Buffer[] = [];
  let p = 1;
  const fail = (msg: string, at: number): BlobError => new BlobError(`zipmap: ${msg} (at blob offset ${at}, blob length ${size})`, absOffset + at);
  // The count byte stops at 254 ("count the entries"); Redis never writes 255 and refuses to load it.
  if (declared === END) throw fail('entry count byte is 0xff (at most 0xfe is valid)', 0);
  const readLen = (): number => {
    const b = blob[p]!;
    if (b < BIGLEN) {
      p += 1;
      return b;
    }
    if (b === BIGLEN) {
      if (p + 5 > size - 1) throw fail('length runs past the blob', p);
      const n = blob.readUInt32LE(p + 1);
      p += 5;
      return n;
    }
    throw fail('unexpected end marker', p);
  };
  for (;;) {
    if (p >= size) throw fail('entry runs past the blob', p);
    if (blob[p] === END) {
      if (p !== size - 1) throw fail('end marker before the last byte', p);
      break;
    }
    const klen = readLen();
    if (p + klen > size - 1) throw fail('key runs past the blob', p);
    const key = blob.subarray(p, p + klen);
    p += klen;
    if (p >= size - 1) throw fail('value length runs past the blob', p);
    const vlen = readLen();
    if (p >= size - 1) throw fail('free byte runs past the blob', p);
    const free = blob[p]!;
    p += 1;
    if (p + vlen + free > size - 1) throw fail('value runs past the blob', p);
    out.push(key, blob.subarray(p, p + vlen));
    p += vlen + free;
  }
  const pairs = out.length / 2;
  if (declared < BIGLEN && declared !== pairs) throw fail(`zipmap has ${pairs} pairs but its header says ${declared}`, 0);
  return out;
}
