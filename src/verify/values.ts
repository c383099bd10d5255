/**
 * Compare one key's value on both sides by reading it, in chunks so a big key never has to
 * fit in memory at once. Used when no fingerprint settles the question: DEBUG is not allowed
 * and the DUMP payloads differ or come from different RDB versions (a DUMP of the same data
 * can differ byte for byte: hash tables dump in their own iteration order, and encodings
 * depend on each server's history and config).
 *
 * Answers null when equal, else a short description of the first difference found.
 */
import { compareStreamMeta } from './stream-meta.js';
import { both, nextStreamId, targetName, type SidePair } from './pair.js';
import { quoted } from './report.js';
import { ServerReply } from './side.js';
import type { Arg } from '../resp/encode.js';

/** Elements per LRANGE / ZRANGE / XRANGE / SSCAN / HSCAN chunk. */
const CHUNK = 1000;
/** Bytes per range of a string compared at once (hashed on the servers when the string is longer). */
const STRING_CHUNK = 1024 * 1024;
/** Bytes per GETRANGE when a big string is read: a 256 MB one peaks near 130 MB of RSS (1 MiB reads: 170–240). */
const READ_CHUNK = 16 * 1024;
/** Sets and hashes up to this size are read whole (SMEMBERS / HGETALL) and sorted. */
const SMALL = 1000;

export async function compareValues(type: string, key: Buffer, pair: SidePair): Promise<string | null> {
  try {
    switch (type) {
      case 'string': return await compareStrings(key, pair);
      case 'list': return await compareLists(key, pair);
      case 'set': return await compareSets(key, pair);
      case 'zset': return await compareZsets(key, pair);
      case 'hash': return await compareHashes(key, pair);
      case 'stream': return (await compareStreamEntries(key, pair)) ?? (await compareStreamMeta(key, pair));
      default: return await compareDumps(type, key, pair);
    }
  } catch (e) {
    // WRONGTYPE and the like: the key changed under us (a live source); --settle rechecks it.
    if (e instanceof ServerReply) return `changed while being compared (${e.message})`;
    throw e;
  }
}

async function lengths(pair: SidePair, cmd: string, key: Buffer): Promise<[number, number]> {
  const [s, t] = await both(pair, [cmd, key]);
  return [Number(s), Number(t)];
}

const show = quoted;

/**
 * Strings in ranges of STRING_CHUNK bytes. A range of a big string is compared by its SHA1 computed
 * by each server (a short script): its bytes never cross the wire, and Node, which frees reply
 * Buffers late, never piles up hundreds of MB of them (a 256 MB string read in 1 MiB GETRANGEs
 * took 170–240 MB of RSS). Only a range whose hashes differ is read, to name the first byte that
 * differs; a side that refuses EVAL (ACL, scripting disabled) is read in GETRANGE ranges.
 */
async function compareStrings(key: Buffer, pair: SidePair): Promise<string | null> {
  const [ls, lt] = await lengths(pair, 'STRLEN', key);
  if (ls !== lt) return `string of ${ls} bytes on source, ${lt} on target`;
  let hashed = ls > STRING_CHUNK;
  for (let off = 0; off < ls; off += STRING_CHUNK) {
    const last = Math.min(ls, off + STRING_CHUNK) - 1;
    if (hashed) {
      const h = await tryBoth(pair, ['EVAL', RANGE_SHA1, 1, key, off, last]);
      if (h !== null && h[0].equals(h[1])) continue;
      if (h === null) hashed = false;
    }
    // Read, a big string in small ranges: fewer bytes wait for the collector at any time.
    const step = ls > STRING_CHUNK ? READ_CHUNK : STRING_CHUNK;
    for (let from = off; from <= last; from += step) {
      const [s, t] = (await both(pair, ['GETRANGE', key, from, Math.min(last, from + step - 1)])) as [Buffer, Buffer];
      if (!s.equals(t)) return `strings differ at byte ${from + firstDifference(s, t)}`;
    }
  }
  return null;
}

/** The SHA1 (hex) of GETRANGE KEYS[1] ARGV[1] ARGV[2], computed by the server. */
const RANGE_SHA1 = "return redis.sha1hex(redis.call('GETRANGE', KEYS[1], ARGV[1], ARGV[2]))";

/** Both sides' bulk replies to `args`, or null when either side refuses the command. */
async function tryBoth(pair: SidePair, args: Arg[]): Promise<[Buffer, Buffer] | null> {
  try {
    const [s, t] = await both(pair, args);
    return Buffer.isBuffer(s) && Buffer.isBuffer(t) ? [s, t] : null;
  } catch (e) {
    if (e instanceof ServerReply) return null;
    throw e;
  }
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

async function compareLists(key: Buffer, pair: SidePair): Promise<string | null> {
  const [ls, lt] = await lengths(pair, 'LLEN', key);
  if (ls !== lt) return `list of ${ls} elements on source, ${lt} on target`;
  for (let i = 0; i < ls; i += CHUNK) {
    const [s, t] = (await both(pair, ['LRANGE', key, i, i + CHUNK - 1])) as [Buffer[], Buffer[]];
    for (let j = 0; j < Math.max(s.length, t.length); j++) {
      if (!s[j] || !t[j] || !s[j]!.equals(t[j]!)) return `list element ${i + j} differs`;
    }
  }
  return null;
}

async function compareSets(key: Buffer, pair: SidePair): Promise<string | null> {
  const [ls, lt] = await lengths(pair, 'SCARD', key);
  if (ls !== lt) return `set of ${ls} members on source, ${lt} on target`;
  if (ls <= SMALL) {
    const [s, t] = (await both(pair, ['SMEMBERS', key])) as [Buffer[], Buffer[]];
    s.sort(Buffer.compare);
    t.sort(Buffer.compare);
    for (let i = 0; i < Math.max(s.length, t.length); i++) {
      if (!s[i] || !t[i] || !s[i]!.equals(t[i]!)) {
        const onlySource = s.find((m) => !t.some((x) => x.equals(m)));
        return onlySource ? `member ${show(onlySource)} missing on target` : 'set members differ';
      }
    }
    return null;
  }
  // Same size and every source member on the target means equal sets; SSCAN may repeat a
  // member, which only costs a second SISMEMBER.
  let cursor = '0';
  do {
    const [next, members] = (await pair.source.call(pair.db, ['SSCAN', key, cursor, 'COUNT', CHUNK])) as [Buffer, Buffer[]];
    cursor = next.toString();
    const found = await pair.target.pipeline(pair.targetDb, members.map((m) => ['SISMEMBER', targetName(pair, key), m]));
    for (let i = 0; i < members.length; i++) {
      if (found[i] instanceof ServerReply) throw found[i];
      if (found[i] !== 1) return `member ${show(members[i]!)} missing on target`;
    }
  } while (cursor !== '0');
  return null;
}

/** Scores as Redis prints them ("inf", "-inf", %.17g) -> numbers, so formatting cannot differ. */
function score(b: Buffer): number {
  const s = b.toString('latin1').toLowerCase();
  if (s === 'inf' || s === '+inf') return Infinity;
  if (s === '-inf') return -Infinity;
  return Number(s);
}

async function compareZsets(key: Buffer, pair: SidePair): Promise<string | null> {
  const [ls, lt] = await lengths(pair, 'ZCARD', key);
  if (ls !== lt) return `sorted set of ${ls} members on source, ${lt} on target`;
  // Equal sorted sets list the same (member, score) pairs rank by rank.
  for (let i = 0; i < ls; i += CHUNK) {
    const [s, t] = (await both(pair, ['ZRANGE', key, i, i + CHUNK - 1, 'WITHSCORES'])) as [Buffer[], Buffer[]];
    for (let j = 0; j < Math.max(s.length, t.length); j += 2) {
      const sm = s[j];
      const tm = t[j];
      if (!sm || !tm || !sm.equals(tm)) return `sorted set member at rank ${i + j / 2} differs (${sm ? show(sm) : 'none'} vs ${tm ? show(tm) : 'none'})`;
      if (score(s[j + 1]!) !== score(t[j + 1]!)) return `member ${show(sm)} has score ${s[j + 1]!.toString()} on source, ${t[j + 1]!.toString()} on target`;
    }
  }
  return null;
}

async function compareHashes(key: Buffer, pair: SidePair): Promise<string | null> {
  const [ls, lt] = await lengths(pair, 'HLEN', key);
  if (ls !== lt) return `hash of ${ls} fields on source, ${lt} on target`;
  if (ls <= SMALL) {
    const [s, t] = (await both(pair, ['HGETALL', key])) as [Buffer[], Buffer[]];
    const tMap = new Map<string, Buffer>();
    for (let i = 0; i < t.length; i += 2) tMap.set(t[i]!.toString('latin1'), t[i + 1]!);
    for (let i = 0; i < s.length; i += 2) {
      const other = tMap.get(s[i]!.toString('latin1'));
      if (other === undefined) return `field ${show(s[i]!)} missing on target`;
      if (!other.equals(s[i + 1]!)) return `field ${show(s[i]!)} has a different value`;
    }
    return null;
  }
  // Same size and every source field on the target with the same value means equal hashes.
  let cursor = '0';
  do {
    const [next, flat] = (await pair.source.call(pair.db, ['HSCAN', key, cursor, 'COUNT', CHUNK])) as [Buffer, Buffer[]];
    cursor = next.toString();
    const fields = flat.filter((_, i) => i % 2 === 0);
    if (fields.length === 0) continue;
    const values = (await pair.target.call(pair.targetDb, ['HMGET', targetName(pair, key), ...fields])) as (Buffer | null)[];
    for (let i = 0; i < fields.length; i++) {
      if (values[i] === null) return `field ${show(fields[i]!)} missing on target`;
      if (!values[i]!.equals(flat[2 * i + 1]!)) return `field ${show(fields[i]!)} has a different value`;
    }
  } while (cursor !== '0');
  return null;
}

type StreamEntry = [Buffer, Buffer[]];

async function compareStreamEntries(key: Buffer, pair: SidePair): Promise<string | null> {
  const [ls, lt] = await lengths(pair, 'XLEN', key);
  if (ls !== lt) return `stream of ${ls} entries on source, ${lt} on target`;
  let start = '-';
  for (;;) {
    const [s, t] = (await both(pair, ['XRANGE', key, start, '+', 'COUNT', CHUNK])) as [StreamEntry[], StreamEntry[]];
    for (let i = 0; i < Math.max(s.length, t.length); i++) {
      const se = s[i];
      const te = t[i];
      if (!se || !te || !se[0].equals(te[0])) return `stream entry ids differ (${se ? se[0].toString() : 'none'} vs ${te ? te[0].toString() : 'none'})`;
      const sf = se[1];
      const tf = te[1];
      if (sf.length !== tf.length || sf.some((b, j) => !b.equals(tf[j]!))) return `stream entry ${se[0].toString()} has different fields`;
    }
    if (s.length < CHUNK) return null;
    start = nextStreamId(s[s.length - 1]![0].toString());
  }
}

/** Types with no element-wise reader (modules): only identical DUMP payloads prove equality. */
async function compareDumps(type: string, key: Buffer, pair: SidePair): Promise<string | null> {
  const [s, t] = (await both(pair, ['DUMP', key])) as [Buffer | null, Buffer | null];
  if (s !== null && t !== null && s.equals(t)) return null;
  return `type ${type}: DUMP payloads differ (no element-wise comparison for this type)`;
}
