/**
 * Listpack walker (redis-internals §2.11.2): validates the header, every element's encoding,
 * its backlen and the terminator, and exposes one element at a time.
 */
import { BlobError } from './blob-error.js';
import { PackedCursor } from './packed.js';

const HEADER = 6;
const UNKNOWN_COUNT = 65535;

/** Size of the backlen field for an element whose encoding+data is `l` bytes. */
function backlenSize(l: number): number {
  if (l < 128) return 1;
  if (l < 16383) return 2;
  if (l < 2097151) return 3;
  if (l < 268435455) return 4;
  return 5;
}

export class ListpackCursor extends PackedCursor {
  private p = HEADER;
  /** Index of the terminating 0xFF. */
  private readonly end: number;
  /** Element count from the header (65535 = unknown). */
  readonly declared: number;

  constructor(blob: Buffer, absOffset: number) {
    super(blob, absOffset, 'listpack');
    const size = blob.length;
    if (size < HEADER + 1) throw new BlobError(`listpack of ${size} bytes is shorter than its 7-byte minimum`, absOffset);
    const total = blob.readUInt32LE(0);
    if (total !== size) throw new BlobError(`listpack header says ${total} bytes but its string holds ${size}`, absOffset);
    if (blob[size - 1] !== 0xff) throw new BlobError(`bad listpack terminator 0x${blob[size - 1]!.toString(16)} (expected 0xff)`, absOffset + size - 1);
    this.end = size - 1;
    this.declared = blob.readUInt16LE(4);
  }

  /** Number of elements, from the header when known; walking is the only way otherwise. */
  get declaredCount(): number | null {
    return this.declared === UNKNOWN_COUNT ? null : this.declared;
  }

  next(): boolean {
    const b = this.blob;
    const p = this.p;
    const end = this.end;
    this.elemStart = p;
    if (p >= end) {
      if (this.declared !== UNKNOWN_COUNT && this.count !== this.declared) {
        throw this.error(`listpack has ${this.count} elements but its header says ${this.declared}`);
      }
      return false;
    }
    const c = b[p]!;
    let encLen: number;
    if (c < 0x80) {
      this.isInt = true;
      this.bigVal = null;
      this.intVal = c;
      encLen = 1;
    } else if (c < 0xc0) {
      this.isInt = false;
      encLen = 1 + (c & 0x3f);
      this.strStart = p + 1;
      this.strEnd = p + encLen;
    } else if (c < 0xe0) {
      if (p + 2 > end) throw this.error('13-bit integer runs past the listpack end');
      const u = ((c & 0x1f) << 8) | b[p + 1]!;
      this.isInt = true;
      this.bigVal = null;
      this.intVal = u >= 4096 ? u - 8192 : u;
      encLen = 2;
    } else if (c < 0xf0) {
      if (p + 2 > end) throw this.error('12-bit string length runs past the listpack end');
      encLen = 2 + (((c & 0x0f) << 8) | b[p + 1]!);
      this.isInt = false;
      this.strStart = p + 2;
      this.strEnd = p + encLen;
    } else {
      switch (c) {
        case 0xf0: {
          if (p + 5 > end) throw this.error('32-bit string length runs past the listpack end');
          const n = b.readUInt32LE(p + 1);
          encLen = 5 + n;
          this.isInt = false;
          this.strStart = p + 5;
          this.strEnd = p + encLen;
          break;
        }
        case 0xf1:
          if (p + 3 > end) throw this.error('int16 runs past the listpack end');
          this.setInt(b.readInt16LE(p + 1));
          encLen = 3;
          break;
        case 0xf2:
          if (p + 4 > end) throw this.error('int24 runs past the listpack end');
          this.setInt(b.readIntLE(p + 1, 3));
          encLen = 4;
          break;
        case 0xf3:
          if (p + 5 > end) throw this.error('int32 runs past the listpack end');
          this.setInt(b.readInt32LE(p + 1));
          encLen = 5;
          break;
        case 0xf4: {
          if (p + 9 > end) throw this.error('int64 runs past the listpack end');
          const lo = b.readUInt32LE(p + 1);
          const hi = b.readInt32LE(p + 5);
          this.isInt = true;
          if (hi < 0x200000 && hi >= -0x200000) {
            this.intVal = hi * 4294967296 + lo;
            this.bigVal = null;
          } else {
            this.bigVal = b.readBigInt64LE(p + 1);
            this.intVal = Number(this.bigVal);
          }
          encLen = 9;
          break;
        }
        case 0xff:
          throw this.error('listpack end marker found before the last byte');
        default:
          throw this.error(`invalid listpack encoding byte 0x${c.toString(16)}`);
      }
    }
    const bl = backlenSize(encLen);
    const next = p + encLen + bl;
    if (next > end) throw this.error(`listpack entry of ${encLen + bl} bytes runs past its blob`);
    // The backlen must encode encLen: most significant 7-bit group first, continuation bits on all but the first byte.
    let v = b[p + encLen]!;
    if (v >= 128) throw this.error('listpack backlen is malformed');
    for (let i = 1; i < bl; i++) {
      const x = b[p + encLen + i]!;
      if (x < 128) throw this.error('listpack backlen is malformed');
      v = v * 128 + (x & 127);
    }
    if (v !== encLen) throw this.error(`listpack backlen says ${v} but the entry is ${encLen} bytes`);
    this.p = next;
    this.count++;
    return true;
  }

  private setInt(v: number): void {
    this.isInt = true;
    this.bigVal = null;
    this.intVal = v;
  }
}
