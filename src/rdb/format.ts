/**
 * RDB format constants (redis src/rdb.h names in comments) and the mapping from object-type
 * bytes to value types (redis-internals §2.2, §2.6, §2.9).
 */
import type { RdbRecord, ValueType } from './types.js';

export const OP_KEY_NOEVICT = 240; // RDB_OPCODE_KEY_NOEVICT (Redis development)
export const OP_KEY_META = 243; // RDB_OPCODE_KEY_META (Redis 8.6) / RDB_OPCODE_SLOT_IMPORT (Valkey 9)
export const OP_SLOT_INFO = 244; // RDB_OPCODE_SLOT_INFO
export const OP_FUNCTION2 = 245; // RDB_OPCODE_FUNCTION2
export const OP_FUNCTION_PRE_GA = 246; // RDB_OPCODE_FUNCTION_PRE_GA
export const OP_MODULE_AUX = 247; // RDB_OPCODE_MODULE_AUX
export const OP_IDLE = 248; // RDB_OPCODE_IDLE
export const OP_FREQ = 249; // RDB_OPCODE_FREQ
export const OP_AUX = 250; // RDB_OPCODE_AUX
export const OP_RESIZEDB = 251; // RDB_OPCODE_RESIZEDB
export const OP_EXPIRETIME_MS = 252; // RDB_OPCODE_EXPIRETIME_MS
export const OP_EXPIRETIME = 253; // RDB_OPCODE_EXPIRETIME
export const OP_SELECTDB = 254; // RDB_OPCODE_SELECTDB
export const OP_EOF = 255; // RDB_OPCODE_EOF
/** Redis Enterprise RAM_LRU / SLOT_NUM: one length each (librdb skips them too). */
export const OP_RE_RAM_LRU = 107;
export const OP_RE_SLOT_NUM = 121;

/** Highest object-type byte (RDB_TYPE_*) any server has defined. */
export const MAX_OBJECT_TYPE = 33;
export const MAX_REDIS_VERSION = 15;
export const MIN_VALKEY_VERSION = 80;
export const MAX_VALKEY_VERSION = 81;

/** The records that belong to one key (everything from keyStart to keyEnd). */
export type KeyRecord = Extract<
  RdbRecord,
  {
    kind:
      | 'keyStart'
      | 'string'
      | 'stringPart'
      | 'listItems'
      | 'setItems'
      | 'zsetItems'
      | 'hashItems'
      | 'streamEntries'
      | 'streamMeta'
      | 'streamGroup'
      | 'streamPel'
      | 'streamConsumer'
      | 'arrayMeta'
      | 'arrayItems'
      | 'module'
      | 'keyEnd';
  }
>;

/**
 * The value type of object-type byte `t`, or null when no release defines it as a value
 * (6 MODULE_PRE_GA cannot be decoded, 8 was never used, 29-33 are unreleased).
 */
export function valueTypeOf(t: number): ValueType | null {
  switch (t) {
    case 0: // RDB_TYPE_STRING
      return 'string';
    case 1: // RDB_TYPE_LIST
    case 10: // RDB_TYPE_LIST_ZIPLIST
    case 14: // RDB_TYPE_LIST_QUICKLIST
    case 18: // RDB_TYPE_LIST_QUICKLIST_2
      return 'list';
    case 2: // RDB_TYPE_SET
    case 11: // RDB_TYPE_SET_INTSET
    case 20: // RDB_TYPE_SET_LISTPACK
      return 'set';
    case 3: // RDB_TYPE_ZSET
    case 5: // RDB_TYPE_ZSET_2
    case 12: // RDB_TYPE_ZSET_ZIPLIST
    case 17: // RDB_TYPE_ZSET_LISTPACK
      return 'zset';
    case 4: // RDB_TYPE_HASH
    case 9: // RDB_TYPE_HASH_ZIPMAP
    case 13: // RDB_TYPE_HASH_ZIPLIST
    case 16: // RDB_TYPE_HASH_LISTPACK
    case 22: // RDB_TYPE_HASH_METADATA_PRE_GA, or Valkey RDB_TYPE_HASH_2
    case 23: // RDB_TYPE_HASH_LISTPACK_EX_PRE_GA
    case 24: // RDB_TYPE_HASH_METADATA
    case 25: // RDB_TYPE_HASH_LISTPACK_EX
      return 'hash';
    case 7: // RDB_TYPE_MODULE_2
      return 'module';
    case 15: // RDB_TYPE_STREAM_LISTPACKS
    case 19: // RDB_TYPE_STREAM_LISTPACKS_2
    case 21: // RDB_TYPE_STREAM_LISTPACKS_3
    case 26: // RDB_TYPE_STREAM_LISTPACKS_4
    case 27: // RDB_TYPE_STREAM_LISTPACKS_5
      return 'stream';
    case 28: // RDB_TYPE_ARRAY
      return 'array';
    default:
      return null;
  }
}

/** Why object-type byte `t` cannot be decoded (valueTypeOf(t) is null, or Valkey-only limits). */
export function unsupportedTypeMessage(t: number, valkey: boolean): string {
  if (t === 6) return 'module value of type 6 (MODULE_PRE_GA, Redis 4.0 RC) cannot be decoded without its module';
  if (t === 8) return 'unknown value type 0x08';
  if (t >= 29) return `unsupported value type ${t} (Redis development hash templates / GCRA)`;
  if (valkey) return `unsupported value type ${t} in a VALKEY file`;
  return `unknown value type ${t}`;
}
