/**
 * The contract between the decoder (opcodes, key headers, buffering) and the per-type value
 * readers. A reader's `step()` is one parsing unit: it reads from `ctx.input` and, only after
 * all its reads succeeded, updates its own state and emits. It returns true when the value is
 * complete. NEED_MORE thrown from a read leaves everything as it was, so the unit is retried.
 */
import type { RdbInput } from '../input.js';
import type { BlobError } from '../structure/blob-error.js';
import type { RdbRecord } from '../types.js';
import type { BlobItemsRecord } from './blob-items.js';

/** Record kinds that carry a batch of elements. */
export type ItemKind = 'listItems' | 'setItems' | 'zsetItems' | 'hashItems' | 'streamEntries' | 'streamPel' | 'arrayItems';

export interface ValueContext {
  readonly input: RdbInput;
  /** RDB version of the file. */
  readonly version: number;
  /** True for a VALKEY-magic file (type 22 means HASH_2). */
  readonly valkey: boolean;
  /** Non-null once this key was found corrupt under onCorruptValue 'skip': keep reading, emit nothing. */
  readonly corrupt: BlobError | null;
  /** Emit a record for the current key (its keyStart goes out first). */
  emit(rec: RdbRecord): void;
  /** Start batching items of `kind` (flushes any batch of another kind). */
  itemKind(kind: ItemKind): void;
  /** Add one element to the current batch; `bytes` is its payload size, to cap batches near 1 MB. */
  addItem(item: unknown, bytes: number): void;
  /**
   * The elements of one blob as one record whose items are made when read (./blob-items.ts):
   * the batch being gathered goes out first.
   */
  addBlobItems(rec: BlobItemsRecord): void;
  /** Most elements per items record. */
  readonly batchSize: number;
  /** Emit the current batch now (e.g. before a stream's metadata). */
  flushItems(): void;
  /** Report corruption inside a blob: throws (fail mode) or records it (skip mode). */
  blobError(err: BlobError): void;
  /** The exact bytes of the value so far (type byte first), up to the read cursor. */
  capturedValue(): Buffer;
  /**
   * The value will take at least `bytes` bytes in the file: when that is past the raw limit, stop
   * capturing now rather than copying up to the limit only to drop it at the key's end.
   */
  rawAtLeast(bytes: number): void;
}

export interface ValueReader {
  /** Reset for a new value of RDB type `rdbType`. */
  begin(rdbType: number): void;
  /** Parse one unit; true when the whole value has been read. */
  step(): boolean;
  /** What the reader is waiting for, for "truncated" messages. */
  describe(): string;
}
