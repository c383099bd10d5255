/**
 * The `--type` part of a partial sync on the replication stream: the target holds only the
 * source keys of the kept types, and each command is reduced to its effect on that image.
 *
 * The stream does not carry a key's type, but every command that succeeded on the source says
 * something about it, and the target itself knows which keys it holds (only kept-type ones):
 * - a typed command (HSET, LPUSH, ZADD...) ran on a key of that type, or created one: kept type,
 *   relayed; dropped type, nothing to do on the target — unless the command *overwrites* a key
 *   of any type (SET, MSET, SETEX, the *STORE commands, RESTORE ... REPLACE), which then becomes
 *   a DEL there (the key may have had a kept type before);
 * - a command that works on any type (DEL, EXPIRE, PERSIST, MOVE...) is relayed: on a key the
 *   target does not hold it does nothing, as it should;
 * - RENAME / COPY of a key the target may or may not hold become a small script deciding on the
 *   target (rename or copy when it holds the source key; else delete the overwritten destination);
 * - RESTORE names its type in the payload's first byte.
 * What cannot be decided is a conflict: a script (its keys' types are unknown), a store reading
 * keys of several possible types when one of them is dropped (ZUNIONSTORE of sets into a kept
 * zset while sets are dropped, SORT ... STORE), COPY ... DB, a command this table does not know.
 *
 * It runs after the name filter, on commands already in target names and dbs.
 */
import { encodeCommand, type Arg } from '../../resp/encode.js';
import { valueTypeOf } from '../../rdb/format.js';
import type { ValueType } from '../../rdb/types.js';
import { commandKeys, isWord, keyIndexes, type ArgView } from '../../commands/keys.js';

/** What one command becomes: relayed as is, replaced, dropped, or a conflict (with the reason). */
export type TypeVerdict = { kind: 'pass' } | { kind: 'replace'; commands: Buffer[] } | { kind: 'drop' } | { kind: 'conflict'; reason: string };

interface TypedCommand {
  type: ValueType;
  /** It replaces the keys it writes whatever their type (SET over a hash): a dropped-type write must delete them on the target. */
  overwrites: boolean;
}

const one = (type: ValueType, overwrites = false): TypedCommand => ({ type, overwrites });

/** Commands as the stream carries them (blocking and read-modify forms arrive rewritten: BLPOP as LPOP, SPOP as SREM...). */
const TYPED = new Map<string, TypedCommand>([
  ...['setnx', 'getset', 'append', 'incr', 'decr', 'incrby', 'decrby', 'incrbyfloat', 'setrange', 'setbit', 'bitfield', 'pfadd', 'pfcount', 'pfdebug', 'msetnx'].map((n) => [n, one('string')] as const),
  ...['set', 'setex', 'psetex', 'mset'].map((n) => [n, one('string', true)] as const),
  ...['lpush', 'rpush', 'lpushx', 'rpushx', 'linsert', 'lset', 'lrem', 'ltrim', 'lpop', 'rpop', 'rpoplpush', 'lmove'].map((n) => [n, one('list')] as const),
  ...['sadd', 'srem', 'smove'].map((n) => [n, one('set')] as const),
  ...['zadd', 'zincrby', 'zrem', 'zremrangebyscore', 'zremrangebyrank', 'zremrangebylex', 'zpopmin', 'zpopmax', 'geoadd'].map((n) => [n, one('zset')] as const),
  ...['hset', 'hsetnx', 'hmset', 'hdel', 'hincrby', 'hincrbyfloat', 'hexpire', 'hpexpire', 'hexpireat', 'hpexpireat', 'hpersist', 'hgetdel', 'hgetex', 'hsetex'].map((n) => [n, one('hash')] as const),
  ...['xadd', 'xdel', 'xtrim', 'xsetid', 'xack', 'xclaim', 'xautoclaim', 'xackdel', 'xdelex', 'xgroup'].map((n) => [n, one('stream')] as const),
]);

/**
 * Commands writing one key (overwritten whatever its type; where it is: the key table) of type
 * `result` from sources of the `reads` types. SORT / GEORADIUS write only with STORE.
 */
const STORES = new Map<string, { result: ValueType; reads: readonly ValueType[] }>([
  ...['sunionstore', 'sinterstore', 'sdiffstore'].map((n) => [n, { result: 'set' as ValueType, reads: ['set'] as ValueType[] }] as const),
  ...['zunionstore', 'zinterstore', 'zdiffstore'].map((n) => [n, { result: 'zset' as ValueType, reads: ['set', 'zset'] as ValueType[] }] as const),
  ...['zrangestore', 'geosearchstore', 'georadius', 'georadiusbymember'].map((n) => [n, { result: 'zset' as ValueType, reads: ['zset'] as ValueType[] }] as const),
  ['sort', { result: 'list', reads: ['list', 'set', 'zset'] }],
  ['bitop', { result: 'string', reads: ['string'] }],
  ['pfmerge', { result: 'string', reads: ['string'] }],
]);

/** Commands on keys of any type (or on none): what they do to a key the target lacks is nothing. */
const ANY_TYPE = new Set([
  'del', 'unlink', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist', 'touch', 'move',
  'select', 'multi', 'exec', 'ping', 'publish', 'spublish', 'swapdb', 'flushdb', 'flushall', 'function', 'script',
]);

/** RENAME / RENAMENX on the target: it holds the source key only when its type is kept. */
const RENAME_SCRIPT = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('RENAME', KEYS[1], KEYS[2]) end return redis.call('DEL', KEYS[2])";
/** COPY src dst [REPLACE]: a dropped-type source replaced the destination (gone from the image) only with REPLACE. */
const COPY_SCRIPT = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('COPY', KEYS[1], KEYS[2], unpack(ARGV)) end if #ARGV > 0 then return redis.call('DEL', KEYS[2]) end return 0";

export class StreamTypeFilter {
  private readonly kept: ReadonlySet<ValueType>;

  constructor(types: readonly ValueType[]) {
    this.kept = new Set(types);
  }

  /** The verdict for a command in target names: its lower-case `name` and its arguments (read only where needed). */
  apply(name: string, args: ArgView): TypeVerdict {
    const typed = TYPED.get(name);
    if (typed !== undefined) {
      if (this.kept.has(typed.type)) return PASS;
      return typed.overwrites ? deleteKeys(writtenKeys(name, args)) : DROP;
    }
    if (ANY_TYPE.has(name)) return PASS;
    const store = STORES.get(name);
    if (store !== undefined) {
      const dest = writtenKeys(name, args);
      // Nothing written (SORT without STORE).
      if (dest.length === 0) return PASS;
      if (!this.kept.has(store.result)) return deleteKeys(dest);
      const dropped = store.reads.find((t) => !this.kept.has(t));
      if (dropped === undefined) return PASS;
      return conflict(`${name.toUpperCase()} writes a kept ${store.result} from keys that may be ${dropped}s, which are not kept`);
    }
    switch (name) {
      case 'rename':
      case 'renamenx':
        return args.argCount < 3 ? PASS : replace(['EVAL', RENAME_SCRIPT, 2, args.arg(1)!, args.arg(2)!]);
      case 'copy':
        return this.copy(args);
      case 'restore':
      case 'restore-asking':
        return this.restore(args);
      default:
        break;
    }
    if (commandKeys(name).script) return conflict(`${name.toUpperCase()}: the types of the keys a script writes are unknown`);
    return conflict(`${name.toUpperCase()}: the type of the keys it writes is unknown to the --type filter`);
  }

  private copy(args: ArgView): TypeVerdict {
    let replaceDest = false;
    for (let i = 3; i < args.argCount; i++) {
      if (isWord(args, i, 'db')) return conflict('COPY ... DB: whether the source key has a kept type can only be told in its own db');
      if (isWord(args, i, 'replace')) replaceDest = true;
    }
    if (args.argCount < 3) return PASS;
    return replace(['EVAL', COPY_SCRIPT, 2, args.arg(1)!, args.arg(2)!, ...(replaceDest ? ['REPLACE'] : [])]);
  }

  /** RESTORE key ttl payload [REPLACE] ...: the payload's first byte is the RDB object type. */
  private restore(args: ArgView): TypeVerdict {
    const payload = args.arg(3);
    const type = payload === undefined || payload.length === 0 ? null : payload[0] === 0 ? 'string' : valueTypeOf(payload[0]!);
    if (type === null) return conflict('RESTORE of a payload whose type is unknown');
    if (this.kept.has(type)) return PASS;
    let replacing = false;
    for (let i = 4; i < args.argCount; i++) if (isWord(args, i, 'replace')) replacing = true;
    return replacing ? deleteKeys([args.arg(1)!]) : DROP;
  }
}

const PASS: TypeVerdict = { kind: 'pass' };
const DROP: TypeVerdict = { kind: 'drop' };

function conflict(reason: string): TypeVerdict {
  return { kind: 'conflict', reason };
}

function replace(args: Arg[]): TypeVerdict {
  return { kind: 'replace', commands: [encodeCommand(args)] };
}

function deleteKeys(keys: Buffer[]): TypeVerdict {
  return keys.length === 0 ? DROP : replace(['DEL', ...keys]);
}

/** The keys the command writes, by the key table. */
function writtenKeys(name: string, args: ArgView): Buffer[] {
  return keyIndexes(commandKeys(name), args, 'write').map((i) => args.arg(i)!);
}
