/**
 * The two records every small string key makes, `keyStart` and `string`, without a Buffer
 * each: the key name and the value stay byte ranges of the chunk they were read from, and a
 * view is made only when a consumer reads `key` / `value` (once, then kept). `--format stats`
 * reads neither; a consumer that copies the bytes somewhere (a command being encoded) can
 * take them from `src[at, at + len)` without a view. The ranges point into buffers the
 * decoder never writes to (see decoder.ts), so reading them later gives the same bytes.
 *
 * To every reader they are ordinary records (`rec.key`, `rec.value`), and tests and other
 * producers may still make plain object records of the same shape: a consumer that wants the
 * ranges checks `instanceof` and falls back to the Buffer. `toJSON()` gives the plain shape
 * (what JSON.stringify shows, and what to compare records by).
 */
import type { KeyHeader, ValueType } from './types.js';

export class KeyStartRecord implements KeyHeader {
  readonly kind = 'keyStart' as const;
  private view: Buffer | null = null;

  constructor(
    readonly db: number,
    readonly rdbType: number,
    readonly type: ValueType,
    readonly expireMs: number | null,
    readonly lruIdle: number | null,
    readonly lfuFreq: number | null,
    readonly offset: number,
    /** The key name is keySrc[keyAt, keyAt + keyLen). */
    readonly keySrc: Buffer,
    readonly keyAt: number,
    readonly keyLen: number,
  ) {}

  get key(): Buffer {
    return (this.view ??= this.keySrc.subarray(this.keyAt, this.keyAt + this.keyLen));
  }

  /** The record as plain data (JSON.stringify, comparisons), without the bytes it was read from. */
  toJSON(): { kind: 'keyStart' } & KeyHeader {
    const { db, rdbType, type, expireMs, lruIdle, lfuFreq, offset } = this;
    return { kind: 'keyStart', db, key: this.key, rdbType, type, expireMs, lruIdle, lfuFreq, offset };
  }
}

export class StringRecord {
  readonly kind = 'string' as const;
  private view: Buffer | null = null;

  constructor(
    /** The value is src[at, at + len). */
    readonly src: Buffer,
    readonly at: number,
    readonly len: number,
  ) {}

  get value(): Buffer {
    return (this.view ??= this.src.subarray(this.at, this.at + this.len));
  }

  toJSON(): { kind: 'string'; value: Buffer } {
    return { kind: 'string', value: this.value };
  }
}

/**
 * The keyEnd of a string key read in one unit (KeyOutput.stringKey()). With raw capture on,
 * `raw` (type byte 0, then the value as stored) is made when first read, from the value's
 * bytes src[at, at + valueBytes): the sync writes strings with SET and never reads it.
 */
export class StringKeyEndRecord {
  readonly kind = 'keyEnd' as const;
  private made: Buffer | null = null;

  constructor(
    readonly valueBytes: number,
    /** Whether raw bytes were captured (capture on, and within the raw limit). */
    private readonly captured: boolean,
    private readonly src: Buffer,
    private readonly at: number,
  ) {}

  get raw(): Buffer | null {
    if (!this.captured) return null;
    let raw = this.made;
    if (raw === null) {
      const n = this.valueBytes;
      raw = Buffer.allocUnsafe(1 + n);
      raw[0] = 0;
      const src = this.src;
      const from = this.at;
      // A byte loop beats Buffer.copy()'s call overhead for the typical few-byte value.
      if (n <= 64) for (let i = 0; i < n; i++) raw[1 + i] = src[from + i]!;
      else src.copy(raw, 1, from, from + n);
      this.made = raw;
    }
    return raw;
  }

  toJSON(): { kind: 'keyEnd'; raw: Buffer | null; valueBytes: number } {
    return { kind: 'keyEnd', raw: this.raw, valueBytes: this.valueBytes };
  }
}
