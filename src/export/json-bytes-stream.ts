/**
 * A byte string written in the ./json-bytes.ts convention while it arrives in pieces (a long
 * string value: decoder `stringPart` records), never held whole, with output identical to
 * writeJsonBytes() of the whole value.
 *
 * Whether the value is text (valid UTF-8 without control characters) is known only at its
 * last byte. While every byte so far is text, the pieces go to a temporary file (unlinked at
 * once, so it disappears with the process), which is copied out escaped at the end. At the
 * first byte that is not text the base64 form starts: the file's bytes first, then each
 * piece as it comes (base64 of 3-byte-aligned runs concatenates exactly).
 */
import { isUtf8 } from 'node:buffer';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeEscaped } from './json-bytes.js';
import type { OutputBuffer } from './output.js';

const EMPTY = Buffer.alloc(0);
/** Bytes read back from the file at a time: a multiple of 3, so base64 runs stay aligned. */
const READ_BYTES = 3 * 349_525;
/** Bytes base64-encoded per string written (a multiple of 3). */
const BASE64_RUN = 3 * 16 * 1024;

export class JsonBytesStream {
  private mode: 'text' | 'b64' = 'text';
  /** text: the bytes of a UTF-8 sequence cut off by the end of the last piece; b64: the 0-2 bytes not encoded yet. */
  private carry: Buffer = EMPTY;
  private fd = -1;
  private spilled = 0;

  /** `dir`: where the temporary file goes (default: the OS temp dir). */
  constructor(
    private readonly out: OutputBuffer,
    private readonly dir: string = tmpdir(),
  ) {}

  /** The next piece of the value; `last` for the piece that ends it. */
  push(piece: Buffer, last: boolean): void {
    if (this.mode === 'text') {
      if (this.isText(piece) && !(last && this.carry.length > 0)) {
        if (!last) return this.spill(piece);
        this.out.byte(0x22);
        this.replay((b) => writeEscaped(this.out, b));
        writeEscaped(this.out, piece);
        this.out.byte(0x22);
        return this.close();
      }
      this.mode = 'b64';
      this.carry = EMPTY;
      this.out.ascii('{"b64":"');
      this.replay((b) => this.base64(b));
      this.close();
    }
    this.base64(piece);
    if (last) {
      this.out.ascii(`${this.carry.toString('base64')}"}`);
      this.carry = EMPTY;
    }
  }

  /** End a value cut short (its key was skipped) as valid JSON: `null`, or the base64 so far. */
  abort(): void {
    if (this.mode === 'text') this.out.ascii('null');
    else this.out.ascii(`${this.carry.toString('base64')}"}`);
    this.carry = EMPTY;
    this.close();
  }

  /** Drop the temporary file (the value is done, or its key was skipped). */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.spilled = 0;
  }

  /** Whether the bytes so far plus `piece` can still be text (a cut-off UTF-8 sequence is kept for the next piece). */
  private isText(piece: Buffer): boolean {
    for (let i = 0; i < piece.length; i++) {
      const c = piece[i]!;
      if (c < 0x20 || c === 0x7f) return false;
    }
    let rest = piece;
    if (this.carry.length > 0) {
      const need = sequenceLength(this.carry[0]!) - this.carry.length;
      if (piece.length < need) {
        this.carry = Buffer.concat([this.carry, piece]);
        return true;
      }
      if (!isUtf8(Buffer.concat([this.carry, piece.subarray(0, need)]))) return false;
      rest = piece.subarray(need);
    }
    const cut = rest.length - cutOffTail(rest);
    if (!isUtf8(rest.subarray(0, cut))) return false;
    this.carry = Buffer.from(rest.subarray(cut));
    return true;
  }

  private spill(piece: Buffer): void {
    if (this.fd < 0) {
      const dir = mkdtempSync(join(this.dir, 'replicant-jsonl-'));
      const file = join(dir, 'value');
      try {
        this.fd = openSync(file, 'wx+', 0o600);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    let o = 0;
    while (o < piece.length) o += writeSync(this.fd, piece, o, piece.length - o, this.spilled + o);
    this.spilled += piece.length;
  }

  /** The file's bytes, in order, in READ_BYTES runs. */
  private replay(each: (b: Buffer) => void): void {
    if (this.fd < 0) return;
    const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, this.spilled));
    for (let at = 0; at < this.spilled; ) {
      const n = readSync(this.fd, buf, 0, Math.min(buf.length, this.spilled - at), at);
      if (n <= 0) throw new Error(`temporary file of a JSON value ended at byte ${at} of ${this.spilled}`);
      each(buf.subarray(0, n));
      at += n;
    }
  }

  private base64(b: Buffer): void {
    let from = 0;
    if (this.carry.length > 0) {
      const need = 3 - this.carry.length;
      if (b.length < need) {
        this.carry = Buffer.concat([this.carry, b]);
        return;
      }
      this.out.ascii(Buffer.concat([this.carry, b.subarray(0, need)]).toString('base64'));
      from = need;
    }
    const end = from + Math.floor((b.length - from) / 3) * 3;
    // In short runs: young strings that the next scavenge frees (with the Buffers around them).
    for (let o = from; o < end; o += BASE64_RUN) this.out.ascii(b.toString('base64', o, Math.min(end, o + BASE64_RUN)));
    this.carry = Buffer.from(b.subarray(end));
  }
}

/** Bytes of the UTF-8 sequence that `lead` starts (invalid leads are caught by isUtf8 later). */
function sequenceLength(lead: number): number {
  return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
}

/** How many bytes at the end of `b` start a UTF-8 sequence that `b` does not complete. */
function cutOffTail(b: Buffer): number {
  for (let i = 1; i <= Math.min(3, b.length); i++) {
    const c = b[b.length - i]!;
    if (c < 0x80) return 0;
    if (c >= 0xc0) return sequenceLength(c) > i ? i : 0;
  }
  return 0;
}
