/**
 * Ziplist walker (redis-internals §2.11.1) with Redis's deep integrity checks: header size,
 * terminator, prevlen of every entry, tail offset and entry count.
 */
import { BlobError } from './blob-error.js';
import { PackedCursor } from './packed.js';

const HEADER = 10;
const UNKNOWN_COUNT = 65535;

export class ZiplistCursor extends PackedCursor {
  private p = HEADER;
  private readonly end: number;
  private readonly declared: number;
  private readonly tail: number;
  private prevLen = 0;

  constructor(blob: Buffer, absOffset: number) {
    super(blob, absOffset, 'ziplist');
    const size = blob.length;
    if (size < HEADER + 1) throw new BlobError(`ziplist of ${size} bytes is shorter than its 11-byte minimum`, absOffset);
    const total = blob.readUInt32LE(0);
    if (total !== size) throw new BlobError(`ziplist header says ${total} bytes but its string holds ${size}`, absOffset);
    if (blob[size - 1] !== 0xff) throw new BlobError(`bad ziplist terminator 0x${blob[size - 1]!.toString(16)} (expected 0xff)`, absOffset + size - 1);
    this.tail = blob.readUInt32LE(4);
    if (this.tail > size - 1) throw new BlobError(`ziplist tail offset ${this.tail} is outside its ${size} bytes`, absOffset + 4);
    this.declared = blob.readUInt16LE(8);
    this.end = size - 1;
  }

  next(): boolean {
    const b = this.blob;
    const p = this.p;
    const end = this.end;
    this.elemStart = p;
    if (b[p] === 0xff) {
      if (p !== end) throw this.error('ziplist end marker found before the last byte');
      if (this.count > 0 && this.tail !== p - this.prevLen) {
        throw this.error(`ziplist tail offset ${this.tail} does not point at the last entry (${p - this.prevLen})`);
      }
      if (this.declared !== UNKNOWN_COUNT && this.count !== this.declared) {
        throw this.error(`ziplist has ${this.count} entries but its header says ${this.declared}`);
      }
      return false;
    }
    // prevlen: 1 byte, or 0xFE + u32le (which may hold a small value).
    let q: number;
    let prev: number;
    if (b[p]! < 0xfe) {
      prev = b[p]!;
      q = p + 1;
    } else {
      if (p + 5 > end) throw this.error('ziplist prevlen runs past its blob');
      prev = b.readUInt32LE(p + 1);
      q = p + 5;
    }
    if (prev !== this.prevLen) throw this.error(`ziplist prevlen is ${prev}, previous entry is ${this.prevLen} bytes`);
    if (q >= end) throw this.error('ziplist entry runs past its blob');
    const e = b[q]!;
    let dataEnd: number;
    const kind = e >> 6;
    if (kind === 0) {
      this.isInt = false;
      this.strStart = q + 1;
      dataEnd = q + 1 + (e & 0x3f);
    } else if (kind === 1) {
      if (q + 2 > end) throw this.error('ziplist entry runs past its blob');
      this.isInt = false;
      this.strStart = q + 2;
      dataEnd = q + 2 + (((e & 0x3f) << 8) | b[q + 1]!);
    } else if (kind === 2) {
      if (q + 5 > end) throw this.error('ziplist entry runs past its blob');
      this.isInt = false;
      this.strStart = q + 5;
      dataEnd = q + 5 + b.readUInt32BE(q + 1);
    } else {
      this.isInt = true;
      this.bigVal = null;
      switch (e) {
        case 0xc0:
          dataEnd = q + 3;
          if (dataEnd > end) throw this.error('ziplist entry runs past its blob');
          this.intVal = b.readInt16LE(q + 1);
          break;
        case 0xd0:
          dataEnd = q + 5;
          if (dataEnd > end) throw this.error('ziplist entry runs past its blob');
          this.intVal = b.readInt32LE(q + 1);
          break;
        case 0xe0: {
          dataEnd = q + 9;
          if (dataEnd > end) throw this.error('ziplist entry runs past its blob');
          const lo = b.readUInt32LE(q + 1);
          const hi = b.readInt32LE(q + 5);
          if (hi < 0x200000 && hi >= -0x200000) {
            this.intVal = hi * 4294967296 + lo;
          } else {
            this.bigVal = b.readBigInt64LE(q + 1);
            this.intVal = Number(this.bigVal);
          }
          break;
        }
        case 0xf0:
          dataEnd = q + 4;
          if (dataEnd > end) throw this.error('ziplist entry runs past its blob');
          this.intVal = b.readIntLE(q + 1, 3);
          break;
        case 0xfe:
          dataEnd = q + 2;
          if (dataEnd > end) throw this.error('ziplist entry runs past its blob');
          this.intVal = b.readInt8(q + 1);
          break;
        default:
          if (e >= 0xf1 && e <= 0xfd) {
            dataEnd = q + 1;
            this.intVal = (e & 0x0f) - 1;
            break;
          }
          throw this.error(`invalid ziplist encoding byte 0x${e.toString(16)}`);
      }
    }
    if (dataEnd > end) throw this.error('ziplist entry runs past its blob');
    this.strEnd = dataEnd;
    this.prevLen = dataEnd - p;
    this.p = dataEnd;
    this.count++;
    return true;
  }
}
