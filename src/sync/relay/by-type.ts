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

/** What one command becomes: relayed as is, replaced, dropped, or a conflict (with the reason). */
export type TypeVerdict = { kind: 'pass' } | { kind: 'replace'; commands: Buffer[] } | { kind: 'drop' } | { kind: 'conflict'; reason: string };

interface TypedCommand {
  type: ValueType;
  /** Positions of the keys it writes: first and step to the end (step 0: only `first`). */
  first: number;
  step: number;
  /** It replaces a key of any type (SET over a hash): a dropped-type write must delete on the target. */
  overwrites: boolean;
}

const one = (type: ValueType, overwrites = false, first = 1): TypedCommand => ({ type, first, step: 0, overwrites });

/** Commands as the stream carries them (blocking and read-modify forms arrive rewritten: BLPOP as LPOP, SPOP as SREM...). */
const TYPED = new Map<string, TypedCommand>([
  ...['setnx', 'getset', 'append', 'incr', 'decr', 'incrby', 'decrby', 'incrbyfloat', 'setrange', 'setbit', 'bitfield', 'pfadd', 'pfcount', 'pfdebug'].map((n) => [n, one('string')] as const),
  ...['set', 'setex', 'psetex'].map((n) => [n, one('string', true)] as const),
  ['mset', { type: 'string', first: 1, step: 2, overwrites: true }],
  ['msetnx', { type: 'string', first: 1, step: 2, overwrites: false }],
  ...['lpush', 'rpush', 'lpushx', 'rpushx', 'linsert', 'lset', 'lrem', 'ltrim', 'lpop', 'rpop'].map((n) => [n, one('list')] as const),
  ...['rpoplpush', 'lmove'].map((n) => [n, { type: 'list', first: 1, step: 1, overwrites: false }] as const),
  ...['sadd', 'srem'].map((n) => [n, one('set')] as const),
  ['smove', { type: 'set', first: 1, step: 1, overwrites: false }],
  ...['zadd', 'zincrby', 'zrem', 'zremrangebyscore', 'zremrangebyrank', 'zremrangebylex', 'zpopmin', 'zpopmax', 'geoadd'].map((n) => [n, one('zset')] as const),
  ...['hset', 'hsetnx', 'hmset', 'hdel', 'hincrby', 'hincrbyfloat', 'hexpire', 'hpexpire', 'hexpireat', 'hpexpireat', 'hpersist', 'hgetdel', 'hgetex', 'hsetex'].map((n) => [n, one('hash')] as const),
  ...['xadd', 'xdel', 'xtrim', 'xsetid', 'xack', 'xclaim', 'xautoclaim', 'xackdel', 'xdelex'].map((n) => [n, one('stream')] as const),
  ['xgroup', one('stream', false, 2)],
]);

/** `CMD dest ...` writing `dest` (overwritten whatever its type) from sources of the given types. */
const STORES = new Map<string, { dest: number; result: ValueType; reads: readonly ValueType[] }>([
  ...['sunionstore', 'sinterstore', 'sdiffstore'].map((n) => [n, { dest: 1, result: 'set' as ValueType, reads: ['set'] as ValueType[] }] as const),
  ...['zunionstore', 'zinterstore', 'zdiffstore'].map((n) => [n, { dest: 1, result: 'zset' as ValueType, reads: ['set', 'zset'] as ValueType[] }] as const),
  ...['zrangestore', 'geosearchstore'].map((n) => [n, { dest: 1, result: 'zset' as ValueType, reads: ['zset'] as ValueType[] }] as const),
  ['bitop', { dest: 2, result: 'string', reads: ['string'] }],
  ['pfmerge', { dest: 1, result: 'string', reads: ['string'] }],
]);

/** Commands on keys of any type (or on none): what they do to a key the target lacks is nothing. */
const ANY_TYPE = new Set([
  'del', 'unlink', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist', 'touch', 'move',
  'select', 'multi', 'exec', 'ping', 'publish', 'spublish', 'swapdb', 'flushdb', 'flushall', 'function', 'script',
]);

const SCRIPTS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/** RENAME / RENAMENX on the target: it holds the source key only when its type is kept. */
const RENAME_SCRIPT = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('RENAME', KEYS[1], KEYS[2]) end return redis.call('DEL', KEYS[2])";
/** COPY src dst [REPLACE]: a dropped-type source replaced the destination (gone from the image) only with REPLACE. */
const COPY_SCRIPT = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('COPY', KEYS[1], KEYS[2], unpack(ARGV)) end if #ARGV > 0 then return redis.call('DEL', KEYS[2]) end return 0";

export class StreamTypeFilter {
  private readonly kept: ReadonlySet<ValueType>;

  constructor(types: readonly ValueType[]) {
    this.kept = new Set(types);
  }

  /**
   * The verdict for a command in target names: its lower-case `name`, argument `i` by `arg(i)`
   * (0 = the name; read only where the command needs it), `argCount` with the name.
   */
  apply(name: string, arg: (i: number) => Buffer | undefined, argCount: number): TypeVerdict {
    const typed = TYPED.get(name);
    if (typed !== undefined) {
      if (this.kept.has(typed.type)) return PASS;
      return typed.overwrites ? deleteKeys(keysAt(arg, argCount, typed.first, typed.step)) : DROP;
    }
    if (ANY_TYPE.has(name)) return PASS;
    const args = (): Buffer[] => Array.from({ length: argCount }, (_, i) => arg(i)!);
    const store = STORES.get(name) ?? (name === 'sort' || name === 'georadius' || name === 'georadiusbymember' ? storeOption(name, args()) : undefined);
    if (store !== undefined) {
      const dest = arg(store.dest);
      if (dest === undefined) return PASS;
      if (!this.kept.has(store.result)) return deleteKeys([dest]);
      const dropped = store.reads.find((t) => !this.kept.has(t));
      if (dropped === undefined) return PASS;
      return conflict(`${name.toUpperCase()} writes a kept ${store.result} from keys that may be ${dropped}s, which are not kept`);
    }
    if (name === 'sort' || name === 'georadius' || name === 'georadiusbymember') return PASS; // without STORE: nothing written
    switch (name) {
      case 'rename':
      case 'renamenx':
        return argCount < 3 ? PASS : replace(['EVAL', RENAME_SCRIPT, 2, arg(1)!, arg(2)!]);
      case 'copy':
        return this.copy(args());
      case 'restore':
      case 'restore-asking':
        return this.restore(args());
      default:
        break;
    }
    if (SCRIPTS.has(name)) return conflict(`${name.toUpperCase()}: the types of the keys a script writes are unknown`);
    return conflict(`${name.toUpperCase()}: the type of the keys it writes is unknown to the --type filter`);
  }

  private copy(args: readonly Buffer[]): TypeVerdict {
    let replaceDest = false;
    for (let i = 3; i < args.length; i++) {
      const w = args[i]!.toString('latin1').toLowerCase();
      if (w === 'db') return conflict('COPY ... DB: whether the source key has a kept type can only be told in its own db');
      if (w === 'replace') replaceDest = true;
    }
    if (args.length < 3) return PASS;
    return replace(['EVAL', COPY_SCRIPT, 2, args[1]!, args[2]!, ...(replaceDest ? ['REPLACE'] : [])]);
  }

  /** RESTORE key ttl payload [REPLACE] ...: the payload's first byte is the RDB object type. */
  private restore(args: readonly Buffer[]): TypeVerdict {
    const payload = args[3];
    const type = payload === undefined || payload.length === 0 ? null : payload[0] === 0 ? 'string' : valueTypeOf(payload[0]!);
    if (type === null) return conflict('RESTORE of a payload whose type is unknown');
    if (this.kept.has(type)) return PASS;
    const replacing = args.slice(4).some((a) => a.toString('latin1').toLowerCase() === 'replace');
    return replacing ? deleteKeys([args[1]!]) : DROP;
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

function keysAt(arg: (i: number) => Buffer | undefined, argCount: number, first: number, step: number): Buffer[] {
  if (step === 0) return first < argCount ? [arg(first)!] : [];
  const out: Buffer[] = [];
  for (let i = first; i < argCount; i += step) out.push(arg(i)!);
  return out;
}

/** SORT / GEORADIUS[BYMEMBER] with STORE or STOREDIST: the key after it is written. */
function storeOption(name: string, args: readonly Buffer[]): { dest: number; result: ValueType; reads: readonly ValueType[] } | undefined {
  for (let i = 2; i + 1 < args.length; i++) {
    const w = args[i]!.toString('latin1').toLowerCase();
    if (w === 'store' || w === 'storedist') {
      return name === 'sort' ? { dest: i + 1, result: 'list', reads: ['list', 'set', 'zset'] } : { dest: i + 1, result: 'zset', reads: ['zset'] };
    }
  }
  return undefined;
}
