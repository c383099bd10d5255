/**
 * What the streaming RDB decoder emits.
 *
 * A key comes out as `keyStart`, then zero or more value records (element batches,
 * so a 10-million-element list never sits in memory whole), then `keyEnd`.
 * `assembleKeys` (./assemble.ts) turns that into one `RdbKey` per key for callers
 * that want whole values and know the keys are small.
 */

/** The data type as Redis's TYPE command names it, plus `module` for module values. */
export type ValueType = 'string' | 'list' | 'set' | 'zset' | 'hash' | 'stream' | 'module' | 'array';

/** A stream ID as text, `"<ms>-<seq>"`, each part a full unsigned 64-bit decimal. */
export type StreamId = string;

export interface KeyHeader {
  db: number;
  key: Buffer;
  /** The object-type byte in the file (0..33). */
  rdbType: number;
  type: ValueType;
  /** Absolute expiry in Unix ms, or null. */
  expireMs: number | null;
  /** LRU idle seconds from the IDLE opcode, or null when absent. */
  lruIdle: number | null;
  /** LFU counter from the FREQ opcode, or null when absent. */
  lfuFreq: number | null;
  /** Absolute byte offset of the first byte of the key record (its first opcode). */
  offset: number;
}

export interface ZsetItem {
  member: Buffer;
  /** IEEE double; keeps -0, Infinity, -Infinity. */
  score: number;
}

export interface HashItem {
  field: Buffer;
  value: Buffer;
  /** Absolute field expiry in Unix ms (hash field TTLs, RDB 12+ / Valkey 9), or null. */
  expireMs: number | null;
}

/** One element of a Redis 8.8 ARRAY value (RDB type 28). */
export interface ArrayItem {
  index: number;
  /** The element as bytes: strings as stored, integers as decimal text, floats as shortest round-trip text. */
  value: Buffer;
  /** How the file stored it. */
  encoding: 'string' | 'int' | 'float';
}

export interface StreamEntry {
  id: StreamId;
  /** Flat field/value list: f1, v1, f2, v2, ... */
  fields: Buffer[];
}

export interface StreamMeta {
  /** Number of live entries. */
  length: number;
  lastId: StreamId;
  /** RDB 10+ (type >= 19); null for older files. */
  firstId: StreamId | null;
  maxDeletedId: StreamId | null;
  entriesAdded: number | null;
}

export interface StreamPelEntry {
  id: StreamId;
  deliveryTimeMs: number;
  deliveryCount: number;
}

export interface StreamGroupHeader {
  name: Buffer;
  lastId: StreamId;
  /** Type >= 19 only; null when absent or when the file stores the "unknown" value 2^64-1. */
  entriesRead: number | null;
}

export interface StreamConsumer {
  name: Buffer;
  seenTimeMs: number;
  /** Type >= 21 only; null before. -1 for a consumer that never read. */
  activeTimeMs: number | null;
  /** IDs of this consumer's pending entries (each also in the group PEL). */
  pel: StreamId[];
}

export type RdbRecord =
  | { kind: 'header'; magic: 'REDIS' | 'VALKEY'; version: number }
  | { kind: 'aux'; key: Buffer; value: Buffer }
  | { kind: 'selectDb'; db: number }
  | { kind: 'resizeDb'; dbSize: number; expiresSize: number }
  | { kind: 'slotInfo'; slot: number; keys: number; expires: number }
  /** A function library (FUNCTION2), as the `#!lua name=...` source code. */
  | { kind: 'function'; code: Buffer }
  /** MODULE_AUX: kept opaque; `payload` is the raw bytes after the opcode byte. */
  | { kind: 'moduleAux'; moduleId: bigint; moduleName: string; encVersion: number; when: number; payload: Buffer }
  | ({ kind: 'keyStart' } & KeyHeader)
  /** The whole value of a string key. */
  | { kind: 'string'; value: Buffer }
  /**
   * A piece of a string value of STREAM_STRING_MIN (1 MiB) or more, which comes as pieces
   * instead of one `string` record so that it is never held whole: in order, `offset` is the
   * piece's position in the value and `total` the value's length (the last piece ends there).
   */
  | { kind: 'stringPart'; value: Buffer; offset: number; total: number }
  | { kind: 'listItems'; items: Buffer[] }
  | { kind: 'setItems'; items: Buffer[] }
  | { kind: 'zsetItems'; items: ZsetItem[] }
  | { kind: 'hashItems'; items: HashItem[] }
  | { kind: 'streamEntries'; entries: StreamEntry[] }
  /** ARRAY (type 28): the stored insert index, once per key before its items. */
  | { kind: 'arrayMeta'; insertIndex: number | null }
  | { kind: 'arrayItems'; items: ArrayItem[] }
  /** After all entries. */
  | { kind: 'streamMeta'; meta: StreamMeta }
  /** One per consumer group, after streamMeta; followed by its PEL batches and consumers. */
  | { kind: 'streamGroup'; group: StreamGroupHeader }
  | { kind: 'streamPel'; entries: StreamPelEntry[] }
  | { kind: 'streamConsumer'; consumer: StreamConsumer }
  /** A module value (type 7): `payload` is the raw value bytes after the type byte. */
  | { kind: 'module'; moduleId: bigint; moduleName: string; encVersion: number; payload: Buffer }
  /**
   * End of a key. `raw` is the exact serialized value, type byte first, as in the file:
   * with the RDB version and a CRC64 appended it is a DUMP payload (see dump.ts).
   * Null when raw capture is off or the value exceeded `rawLimit`.
   */
  | { kind: 'keyEnd'; raw: Buffer | null; valueBytes: number }
  /**
   * A key whose value was corrupt inside a length-delimited blob and was skipped
   * under `onCorruptValue: 'skip'`. Preceded by its keyStart (and maybe some items).
   */
  | { kind: 'keySkipped'; error: Error }
  | { kind: 'end'; checksum: bigint; checksumVerified: boolean };

export interface RdbDecoderOptions {
  /** Verify the CRC64 trailer (when non-zero). Default true. */
  verifyChecksum?: boolean;
  /** Capture the raw bytes of each value for DUMP payloads. Default false. */
  captureRaw?: boolean;
  /** Stop capturing a value's raw bytes above this size (keyEnd.raw is then null). Default 16 MiB. */
  rawLimit?: number;
  /** Max elements per items record. Default 1024. */
  batchSize?: number;
  /** What to do with a key whose value is corrupt inside a length-delimited blob. Default 'fail'. */
  onCorruptValue?: 'fail' | 'skip';
}

/** A whole key, as assembled from the records of one key. */
export type RdbValue =
  | { type: 'string'; value: Buffer }
  | { type: 'list'; value: Buffer[] }
  | { type: 'set'; value: Buffer[] }
  | { type: 'zset'; value: ZsetItem[] }
  | { type: 'hash'; value: HashItem[] }
  | { type: 'stream'; value: StreamValue }
  | { type: 'array'; value: ArrayItem[]; insertIndex: number | null }
  | { type: 'module'; value: { moduleId: bigint; moduleName: string; encVersion: number; payload: Buffer } };

export interface StreamGroup extends StreamGroupHeader {
  pel: StreamPelEntry[];
  consumers: StreamConsumer[];
}

export interface StreamValue {
  entries: StreamEntry[];
  meta: StreamMeta;
  groups: StreamGroup[];
}

export type RdbKey = Omit<KeyHeader, 'type'> & RdbValue & { raw: Buffer | null };
