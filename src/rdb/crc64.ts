/**
 * CRC-64/Jones as Redis uses it for the RDB trailer and DUMP payloads (redis-internals §2.15):
 * reflected polynomial 0x95AC9329AC4BC9B5, initial value 0, no final XOR.
 *
 * The state is two unsigned 32-bit halves, so the hot loop never touches BigInt. Sixteen
 * lookup tables fold 16 input bytes per step ("slicing-by-16"), read as four 32-bit words
 * through a Uint32Array view on little-endian hosts (every host Node runs on in practice).
 */
import { endianness } from 'node:os';
import { DATA, DATA_MAX, loadCrcKernel } from './crc64-wasm.js';

const POLY_LO = 0xac4bc9b5;
const POLY_HI = 0x95ac9329;
const SLICES = 16;

/** TABLE_LO[k * 256 + i] / TABLE_HI[...]: CRC of byte i followed by k zero bytes. */
const TABLE_LO = new Uint32Array(SLICES * 256);
const TABLE_HI = new Uint32Array(SLICES * 256);
const LITTLE_ENDIAN = endianness() === 'LE';

(function buildTables(): void {
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let bit = 0; bit < 8; bit++) {
      const odd = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (odd) {
        lo = (lo ^ POLY_LO) >>> 0;
        hi = (hi ^ POLY_HI) >>> 0;
      }
    }
    TABLE_LO[i] = lo;
    TABLE_HI[i] = hi;
  }
  for (let k = 1; k < SLICES; k++) {
    for (let i = 0; i < 256; i++) {
      const plo = TABLE_LO[(k - 1) * 256 + i]!;
      const phi = TABLE_HI[(k - 1) * 256 + i]!;
      const idx = plo & 0xff;
      TABLE_LO[k * 256 + i] = (((plo >>> 8) | (phi << 24)) ^ TABLE_LO[idx]!) >>> 0;
      TABLE_HI[k * 256 + i] = ((phi >>> 8) ^ TABLE_HI[idx]!) >>> 0;
    }
  }
})();

/** The WebAssembly loop (./crc64-wasm.ts), for ranges of KERNEL_MIN bytes or more; null where it cannot run. */
const KERNEL = LITTLE_ENDIAN ? loadCrcKernel(TABLE_LO, TABLE_HI) : null;
const KERNEL_MIN = 512;

/** Running CRC-64 state: feed byte ranges with `update`, read the value with `value()`. */
export class Crc64 {
  lo = 0;
  hi = 0;

  constructor(seed: bigint = 0n) {
    this.lo = Number(seed & 0xffffffffn);
    this.hi = Number((seed >> 32n) & 0xffffffffn);
  }

  /** Fold buf[start, end) into the state. */
  update(buf: Uint8Array, start = 0, end = buf.length): void {
    if (KERNEL !== null && end - start >= KERNEL_MIN) {
      // Copied into the module's memory (a memcpy) in pieces, each folded there.
      const k = KERNEL;
      k.state[0] = this.lo;
      k.state[1] = this.hi;
      for (let i = start; i < end; i += DATA_MAX) {
        const n = Math.min(DATA_MAX, end - i);
        k.mem.set(buf.subarray(i, i + n), DATA);
        k.fold(DATA + n);
      }
      this.lo = k.state[0]!;
      this.hi = k.state[1]!;
      return;
    }
    let lo = this.lo;
    let hi = this.hi;
    let i = start;
    const T = TABLE_LO;
    const H = TABLE_HI;
    if (LITTLE_ENDIAN && end - i >= 64) {
      // Byte-wise up to a 4-byte aligned address, then 16 bytes per step from a word view.
      while (((buf.byteOffset + i) & 3) !== 0) {
        const idx = (lo ^ buf[i]!) & 0xff;
        lo = ((lo >>> 8) | (hi << 24)) ^ T[idx]!;
        hi = (hi >>> 8) ^ H[idx]!;
        i++;
      }
      const words = ((end - i) >> 4) << 2;
      const w = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
      for (let j = 0; j < words; j += 4) {
        const a = lo ^ w[j]!;
        const b = hi ^ w[j + 1]!;
        const c = w[j + 2]!;
        const d = w[j + 3]!;
        const i15 = 3840 + (a & 0xff), i14 = 3584 + ((a >>> 8) & 0xff), i13 = 3328 + ((a >>> 16) & 0xff), i12 = 3072 + (a >>> 24);
        const i11 = 2816 + (b & 0xff), i10 = 2560 + ((b >>> 8) & 0xff), i9 = 2304 + ((b >>> 16) & 0xff), i8 = 2048 + (b >>> 24);
        const i7 = 1792 + (c & 0xff), i6 = 1536 + ((c >>> 8) & 0xff), i5 = 1280 + ((c >>> 16) & 0xff), i4 = 1024 + (c >>> 24);
        const i3 = 768 + (d & 0xff), i2 = 512 + ((d >>> 8) & 0xff), i1 = 256 + ((d >>> 16) & 0xff), i0 = d >>> 24;
        lo = T[i15]! ^ T[i14]! ^ T[i13]! ^ T[i12]! ^ T[i11]! ^ T[i10]! ^ T[i9]! ^ T[i8]! ^ T[i7]! ^ T[i6]! ^ T[i5]! ^ T[i4]! ^ T[i3]! ^ T[i2]! ^ T[i1]! ^ T[i0]!;
        hi = H[i15]! ^ H[i14]! ^ H[i13]! ^ H[i12]! ^ H[i11]! ^ H[i10]! ^ H[i9]! ^ H[i8]! ^ H[i7]! ^ H[i6]! ^ H[i5]! ^ H[i4]! ^ H[i3]! ^ H[i2]! ^ H[i1]! ^ H[i0]!;
      }
      i += words * 4;
    }
    while (i < end) {
      const idx = (lo ^ buf[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ T[idx]!;
      hi = (hi >>> 8) ^ H[idx]!;
      i++;
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  value(): bigint {
    return (BigInt(this.hi >>> 0) << 32n) | BigInt(this.lo >>> 0);
  }
}

/** CRC-64/Jones of `buf`, continuing from `seed` (the CRC of the bytes before it). */
export function crc64(buf: Uint8Array, seed: bigint = 0n): bigint {
  const c = new Crc64(seed);
  c.update(buf);
  return c.value();
}
