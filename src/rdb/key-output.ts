/**
 * Everything the decoder emits for one key: the deferred keyStart (so empty collections can
 * be dropped), element batches, corruption handling under onCorruptValue 'skip', the raw
 * capture, and the closing keyEnd / keySkipped. Value readers see it as their ValueContext.
 */
import { RdbError } from '../errors.js';
import { Capture } from './capture.js';
import { KeyStartRecord, StringKeyEndRecord, StringRecord } from './records.js';
import type { RdbInput } from './input.js';
import type { BlobError } from './structure/blob-error.js';
import type { ArrayItem, HashItem, RdbRecord, StreamEntry, StreamPelEntry, ZsetItem } from './types.js';
import type { BlobItemsRecord } from './values/blob-items.js';
import type { ItemKind, ValueContext } from './values/context.js';

const ONE_MB = 1 << 20;

export type { KeyStartRecord };

export interface KeyOutputOptions {
  captureRaw: boolean;
  rawLimit: number;
  batchSize: number;
  skipCorrupt: boolean;
}

export class KeyOutput implements ValueContext {
  /** Records of the current push(). */
  out: RdbRecord[] = [];
  version = 0;
  valkey = false;
  /** Keys with an empty collection value, dropped as Redis drops them on load. */
  emptyKeysSkipped = 0;
  /** Captures raw values and module payloads; the decoder feeds it bytes it drops. */
  readonly capture = new Capture();

  private inKey = false;
  private pendingStart: KeyStartRecord | null = null;
  private valueStart = 0;
  private items: unknown[] = [];
  private batchBytes = 0;
  private kind: ItemKind = 'listItems';
  private corruptErr: BlobError | null = null;

  constructor(
    readonly input: RdbInput,
    private readonly opts: KeyOutputOptions,
  ) {}

  get corrupt(): BlobError | null {
    return this.corruptErr;
  }

  /** A plain string key read in one unit: keyStart, string (input.range*) and keyEnd at once. */
  stringKey(start: KeyStartRecord, valueStart: number): void {
    const input = this.input;
    const valueBytes = input.base + input.p - valueStart;
    const captured = this.opts.captureRaw && 1 + valueBytes <= this.opts.rawLimit;
    const end = new StringKeyEndRecord(valueBytes, captured, input.buf, valueStart - input.base);
    this.out.push(start, new StringRecord(input.rangeBuf, input.rangeAt, input.rangeLen), end);
  }

  /** Start a key whose value the readers will parse; `valueStart` is its absolute offset. */
  begin(start: KeyStartRecord, valueStart: number): void {
    this.inKey = true;
    this.pendingStart = start;
    this.valueStart = valueStart;
    this.corruptErr = null;
    this.items = [];
    this.batchBytes = 0;
    this.input.keyHeader = start;
    const t = start.rdbType;
    // Module values always need their bytes (the payload); raw capture needs everyone's.
    if (this.opts.captureRaw || t === 7) this.capture.begin(valueStart, t === 7 ? Infinity : this.opts.rawLimit, t);
  }

  /** The value's last byte was read: emit keyEnd, keySkipped, or nothing for an empty key. */
  end(): void {
    const input = this.input;
    const endAbs = input.base + input.p;
    this.flushItems();
    if (this.corruptErr !== null) {
      if (this.pendingStart !== null) this.out.push(this.pendingStart);
      this.out.push({ kind: 'keySkipped', error: new RdbError(this.corruptErr.message, this.corruptErr.offset, input.key) });
      this.corruptErr = null;
    } else if (this.pendingStart !== null) {
      // Nothing was emitted for this key: an empty collection.
      this.emptyKeysSkipped++;
    } else {
      let raw: Buffer | null = null;
      if (this.capture.active) {
        raw = this.capture.take(input.buf, input.base, input.p);
        if (!this.opts.captureRaw || (raw !== null && raw.length > this.opts.rawLimit)) raw = null;
      }
      this.out.push({ kind: 'keyEnd', raw, valueBytes: endAbs - this.valueStart });
    }
    this.pendingStart = null;
    if (this.capture.active) this.capture.stop();
    this.inKey = false;
    input.keyHeader = undefined;
  }

  emit(rec: RdbRecord): void {
    // A key found corrupt (skip mode) ends with keySkipped; nothing else of it goes out.
    if (this.corruptErr !== null) return;
    if (this.pendingStart !== null) {
      this.out.push(this.pendingStart);
      this.pendingStart = null;
    }
    this.out.push(rec);
  }

  itemKind(kind: ItemKind): void {
    if (kind !== this.kind) {
      this.flushItems();
      this.kind = kind;
    }
  }

  addItem(item: unknown, bytes: number): void {
    if (this.corruptErr !== null) return;
    this.items.push(item);
    this.batchBytes += bytes;
    if (this.items.length >= this.opts.batchSize || this.batchBytes >= ONE_MB) this.flushItems();
  }

  get batchSize(): number {
    return this.opts.batchSize;
  }

  addBlobItems(rec: BlobItemsRecord): void {
    if (this.corruptErr !== null) return;
    this.flushItems();
    // Its kind is one of the items record kinds; its `items` are made when read.
    this.emit(rec as unknown as RdbRecord);
  }

  flushItems(): void {
    const items = this.items;
    if (items.length === 0 || this.corruptErr !== null) return;
    this.items = [];
    this.batchBytes = 0;
    this.emit(itemsRecord(this.kind, items));
  }

  blobError(err: BlobError): void {
    if (!this.opts.skipCorrupt || !this.inKey) throw new RdbError(err.message, err.offset, this.input.key);
    if (this.corruptErr === null) this.corruptErr = err;
    this.items = [];
    this.batchBytes = 0;
  }

  rawAtLeast(bytes: number): void {
    if (this.capture.active && this.pendingStart?.rdbType !== 7 && 1 + bytes > this.opts.rawLimit) this.capture.stop();
  }

  capturedValue(): Buffer {
    const input = this.input;
    return this.capture.take(input.buf, input.base, input.p) ?? Buffer.alloc(0);
  }
}

function itemsRecord(kind: ItemKind, items: unknown[]): RdbRecord {
  switch (kind) {
    case 'streamEntries':
      return { kind, entries: items as StreamEntry[] };
    case 'streamPel':
      return { kind, entries: items as StreamPelEntry[] };
    case 'listItems':
    case 'setItems':
      return { kind, items: items as Buffer[] };
    case 'zsetItems':
      return { kind, items: items as ZsetItem[] };
    case 'hashItems':
      return { kind, items: items as HashItem[] };
    case 'arrayItems':
      return { kind, items: items as ArrayItem[] };
  }
}
