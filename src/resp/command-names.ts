/** Lower-cased command names of the replication stream, interned: a known name costs no string. */

/**
 * Names the replication stream carries most: what masters propagate (writes, with
 * expirations and blocking/random commands rewritten to their effects) and the link's
 * own PING / REPLCONF / SELECT / MULTI / EXEC. Names outside this list are added to the
 * table as they are met, up to a bound.
 */
const COMMON_NAMES = [
  'ping', 'replconf', 'select', 'multi', 'exec', 'discard',
  'set', 'setex', 'psetex', 'setnx', 'setrange', 'append', 'getset', 'getdel', 'getex', 'mset', 'msetnx',
  'incr', 'decr', 'incrby', 'decrby', 'incrbyfloat', 'setbit', 'bitop', 'bitfield',
  'del', 'unlink', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist', 'rename', 'renamenx', 'move', 'copy', 'restore',
  'lpush', 'rpush', 'lpushx', 'rpushx', 'lpop', 'rpop', 'linsert', 'lset', 'lrem', 'ltrim', 'lmove', 'rpoplpush',
  'sadd', 'srem', 'spop', 'smove', 'sinterstore', 'sunionstore', 'sdiffstore',
  'zadd', 'zincrby', 'zrem', 'zpopmin', 'zpopmax', 'zremrangebyscore', 'zremrangebyrank', 'zremrangebylex',
  'zunionstore', 'zinterstore', 'zdiffstore', 'zrangestore',
  'hset', 'hsetnx', 'hmset', 'hdel', 'hincrby', 'hincrbyfloat', 'hpexpireat', 'hpersist',
  'xadd', 'xdel', 'xtrim', 'xgroup', 'xack', 'xclaim', 'xautoclaim', 'xsetid',
  'pfadd', 'pfmerge', 'geoadd', 'flushdb', 'flushall', 'swapdb',
  'eval', 'evalsha', 'script', 'function', 'fcall', 'publish', 'spublish',
];

/** Open-addressing table of lower-case ASCII names; a power of two, kept at most half full. */
const NAME_SLOTS = 512;
const NAME_MASK = NAME_SLOTS - 1;
const MAX_NAMES = NAME_SLOTS / 2;
/** Longer names are not interned (no real command is this long). */
const MAX_INTERNED_LENGTH = 32;

// Array.from keeps the arrays packed (no hole checks on lookup).
const nameKeys: Array<Buffer | undefined> = Array.from({ length: NAME_SLOTS }, () => undefined);
const nameValues: string[] = Array.from({ length: NAME_SLOTS }, () => '');
let nameCount = 0;

/** ASCII lower case of byte `b` (only A-Z change: `toLowerCase` agrees on bytes < 0x80). */
function lowerAscii(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
}

function addName(name: string, hash: number): void {
  let slot = hash & NAME_MASK;
  while (nameKeys[slot] !== undefined) slot = (slot + 1) & NAME_MASK;
  nameKeys[slot] = Buffer.from(name, 'latin1');
  nameValues[slot] = name;
  nameCount++;
}

/** FNV-1a over the lower-cased bytes; -1 when a byte is not ASCII (its lower case is not ours to define). */
function nameHash(buf: Uint8Array, start: number, len: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < start + len; i++) {
    const b = buf[i]!;
    if (b >= 0x80) return -1;
    h = Math.imul(h ^ lowerAscii(b), 0x01000193);
  }
  return h >>> 0;
}

for (const n of COMMON_NAMES) addName(n, nameHash(Buffer.from(n, 'latin1'), 0, n.length));

/**
 * Lower-cased command name of `buf[start, start+len)` (sources keep the client's case: `set`,
 * `SET`, `Set`). Known names come from the table without building a string.
 */
export function commandName(buf: Buffer, start: number, len: number): string {
  if (len > MAX_INTERNED_LENGTH) return buf.toString('latin1', start, start + len).toLowerCase();
  const hash = nameHash(buf, start, len);
  if (hash < 0) return buf.toString('latin1', start, start + len).toLowerCase();
  let slot = hash & NAME_MASK;
  for (let key = nameKeys[slot]; key !== undefined; key = nameKeys[slot]) {
    if (key.length === len && sameLowered(buf, start, key)) return nameValues[slot]!;
    slot = (slot + 1) & NAME_MASK;
  }
  const name = buf.toString('latin1', start, start + len).toLowerCase();
  if (nameCount < MAX_NAMES) addName(name, hash);
  return name;
}

function sameLowered(buf: Buffer, start: number, lower: Buffer): boolean {
  for (let j = 0; j < lower.length; j++) if (lowerAscii(buf[start + j]!) !== lower[j]) return false;
  return true;
}
