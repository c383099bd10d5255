/**
 * Where the keys of a command are: the one key-position table (no I/O). Every consumer asks it
 * (cluster routing, the stream filters, the migration guard, lost-key reports, error messages,
 * verify) and builds its own view on top; the facts about Redis commands live only here.
 *
 * A command's keys are a few runs, modelled on Redis 7 key specs: where a run starts (a fixed
 * argument, or the argument after a keyword such as STORE), how far it goes (one key, to the
 * end, or a NUMKEYS count), its step (2 for MSET's key/value pairs), and whether its keys are
 * written or only read. A command not in the table has one key at argument 1 (SET, HSET...), or
 * what the target's COMMAND reply says when the caller passes that table (module commands).
 *
 * Hot path: commands are looked up by their name as the stream parser interns it (lower case) or
 * as `commandName` spells it (upper case), without building strings; arguments are read as
 * bytes (numbers and keywords are parsed in place), and only those the command needs.
 */
import type { Arg } from '../resp/encode.js';
import type { KeyPositions } from './table.js';

/** The arguments of a command: an array (0 = the name) or a lazy view such as a StreamCommand. */
export type CommandArgs = readonly Arg[] | ArgView;

export interface ArgView {
  /** Number of arguments, the name included. */
  readonly argCount: number;
  arg(i: number): Buffer | undefined;
}

/** One run of keys of a command. */
export interface KeyRun {
  /** The first key's argument index; with `keywords`, where the search for the keyword starts. */
  readonly at: number;
  /** Lower-case keywords: the run starts after the first argument from `at` that is one of them (SORT ... STORE dst). */
  readonly keywords: readonly string[] | null;
  /** Lower-case subcommand: the run exists only when argument 1 is it (DEBUG DIGEST-VALUE key...). */
  readonly sub: string | null;
  /** How many keys: a count (1 = one key), TO_END, or NUMKEYS (the count is the argument at the start, the keys follow it). */
  readonly count: number;
  /** Arguments from one key to the next (2: MSET's key/value pairs). */
  readonly step: number;
  /** The command writes (or deletes) these keys; false: it only reads them. */
  readonly write: boolean;
  /** An empty argument there is no key (MIGRATE's "" before KEYS). */
  readonly blankIsNone: boolean;
}

/** `KeyRun.count`: every `step`-th argument to the end of the command (or its last `-count - 1` left out). */
export const TO_END = -1;
/** `KeyRun.count`: the argument at the start is the number of keys, which follow it. */
export const NUMKEYS = 0;

/** Where a command's keys are. */
export interface CommandKeys {
  /** Where the answer comes from: this table, the target's COMMAND reply, or neither (one key at argument 1). */
  readonly origin: 'redis' | 'target' | 'default';
  /** Empty: the command has no key. */
  readonly runs: readonly KeyRun[];
  /** Exactly one key, at argument 1, read or written, and nothing else to know (SET, HSET, INCR...): the consumers' fast path. */
  readonly single: boolean;
  /** The keys do not depend on one another (DEL, MSET): the command on a subset of them is a valid command. */
  readonly independent: boolean;
  /** It runs code (EVAL, FCALL): the keys it declares are all that can be known, and it may declare none. */
  readonly script: boolean;
  /** Positions only the command itself knows (the target's COMMAND says movablekeys): `runs` may miss keys. */
  readonly movable: boolean;
  /** Keys read through patterns in its arguments besides `runs` (SORT BY / GET): see `readsKeysByPattern`. */
  readonly patterns: boolean;
  /** Argument index of a sharded pub/sub channel (SPUBLISH), else 0: hashed to a slot like a key, but holds no data. */
  readonly channel: number;
}

/** The target's key positions by lower-case command name (CommandTable.keyPositions). */
export type TargetKeyPositions = (name: string) => KeyPositions | undefined;

type RunOptions = Partial<Omit<KeyRun, 'at'>>;
const run = (at: number, o: RunOptions = {}): KeyRun => ({
  at,
  keywords: o.keywords ?? null,
  sub: o.sub ?? null,
  count: o.count ?? 1,
  step: o.step ?? 1,
  write: o.write ?? true,
  blankIsNone: o.blankIsNone ?? false,
});
const read = (at: number, o: RunOptions = {}): KeyRun => run(at, { ...o, write: false });

type Flags = Partial<Pick<CommandKeys, 'independent' | 'script' | 'patterns' | 'channel'>>;
function keys(runs: readonly KeyRun[], flags: Flags = {}, origin: CommandKeys['origin'] = 'redis', movable = false): CommandKeys {
  const r = runs[0];
  const single = runs.length === 1 && r!.at === 1 && r!.count === 1 && r!.keywords === null && r!.sub === null && !r!.blankIsNone && flags.patterns !== true;
  return { origin, runs, single, independent: flags.independent ?? false, script: flags.script ?? false, movable, patterns: flags.patterns ?? false, channel: flags.channel ?? 0 };
}

const KEYLESS = keys([]);
/** A command the table does not know: one key at argument 1, written (the stream carries writes). */
const DEFAULT = keys([run(1)], {}, 'default');
const TARGET_SINGLE = keys([run(1)], {}, 'target');
const TARGET_KEYLESS = keys([], {}, 'target');

/** `CMD dest src...`: writes `dest` from the keys after it. */
const storeToEnd = (dest: number) => keys([run(dest), read(dest + 1, { count: TO_END })]);
/** `CMD dest src`. */
const storeFromOne = keys([run(1), read(2)]);
/** `CMD src dst ...`: data moves from one key to the other, both change. */
const moveBetween = keys([run(1), run(2)]);

/** Lower-case name -> keys, for the commands that differ from "one key at argument 1". */
const TABLE = new Map<string, CommandKeys>([
  // No key: server, connection, transaction, script and pub/sub commands.
  ...[
    'select', 'swapdb', 'flushall', 'flushdb', 'ping', 'echo', 'multi', 'exec', 'discard', 'script', 'function',
    'publish', 'config', 'info', 'dbsize', 'client', 'cluster', 'auth', 'hello', 'quit', 'replconf', 'time',
    'lastsave', 'save', 'bgsave', 'bgrewriteaof', 'shutdown', 'wait', 'waitaof', 'acl', 'module', 'command',
    'keys', 'scan', 'randomkey', 'asking', 'readonly', 'readwrite', 'latency', 'slowlog', 'monitor', 'role',
    'failover', 'replicaof', 'slaveof', 'reset',
  ].map((n) => [n, KEYLESS] as const),
  // A sharded channel decides the slot like a key but holds no data: see slotKeyIndex.
  ['spublish', keys([], { channel: 1 })],
  // Independent keys.
  ...['del', 'unlink'].map((n) => [n, keys([run(1, { count: TO_END })], { independent: true })] as const),
  ...['exists', 'touch', 'mget', 'watch'].map((n) => [n, keys([read(1, { count: TO_END })], { independent: true })] as const),
  ['mset', keys([run(1, { count: TO_END, step: 2 })], { independent: true })],
  // All or nothing: sets every key only when none exists.
  ['msetnx', keys([run(1, { count: TO_END, step: 2 })])],
  // Written destination, read sources.
  ...['sunionstore', 'sinterstore', 'sdiffstore', 'pfmerge'].map((n) => [n, storeToEnd(1)] as const),
  ['bitop', storeToEnd(2)],
  ...['zunionstore', 'zinterstore', 'zdiffstore'].map((n) => [n, keys([run(1), read(2, { count: NUMKEYS })])] as const),
  ...['zrangestore', 'geosearchstore'].map((n) => [n, storeFromOne] as const),
  ['copy', keys([read(1), run(2)])],
  ['sort', keys([read(1), run(2, { keywords: ['store'] })], { patterns: true })],
  ['sort_ro', keys([read(1)], { patterns: true })],
  ...['georadius', 'georadiusbymember'].map((n) => [n, keys([read(1), run(2, { keywords: ['store', 'storedist'] })])] as const),
  // Data moving between two keys.
  ...['rename', 'renamenx', 'smove', 'rpoplpush', 'brpoplpush', 'lmove', 'blmove'].map((n) => [n, moveBetween] as const),
  // Read-only multi-key commands.
  ...['sunion', 'sinter', 'sdiff', 'pfcount'].map((n) => [n, keys([read(1, { count: TO_END })])] as const),
  ...['zunion', 'zinter', 'zdiff', 'sintercard', 'zintercard'].map((n) => [n, keys([read(1, { count: NUMKEYS })])] as const),
  ['lcs', keys([read(1, { count: 2 })])],
  // NUMKEYS forms that write.
  ...['lmpop', 'zmpop'].map((n) => [n, keys([run(1, { count: NUMKEYS })])] as const),
  ...['blmpop', 'bzmpop'].map((n) => [n, keys([run(2, { count: NUMKEYS })])] as const),
  ...['eval', 'evalsha', 'fcall'].map((n) => [n, keys([run(2, { count: NUMKEYS })], { script: true })] as const),
  ...['eval_ro', 'evalsha_ro', 'fcall_ro'].map((n) => [n, keys([read(2, { count: NUMKEYS })], { script: true })] as const),
  // The key follows a subcommand (or BITOP's operator, above).
  ['xgroup', keys([run(2)])],
  ...['object', 'memory', 'xinfo'].map((n) => [n, keys([read(2)])] as const),
  ['debug', keys([read(2, { sub: 'digest-value', count: TO_END })])],
  // MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS key...]
  ['migrate', keys([run(3, { blankIsNone: true }), run(6, { keywords: ['keys'], count: TO_END })])],
]);
// The upper-case spelling too (commandName's): both lookups cost one Map.get, no string built.
for (const [n, k] of [...TABLE]) TABLE.set(n.toUpperCase(), k);

/** Target key positions already turned into CommandKeys (the COMMAND table's entries are long-lived objects). */
const fromTarget = new WeakMap<KeyPositions, CommandKeys>();

/**
 * Where the keys of command `name` are (any ASCII case; lower or upper case costs no string).
 * `target`: the target's COMMAND key positions, asked for a command this table does not know.
 */
export function commandKeys(name: string, target?: TargetKeyPositions): CommandKeys {
  const known = TABLE.get(name);
  if (known !== undefined) return known;
  const c = letterCase(name);
  if (c === MIXED) return commandKeys(name.toLowerCase(), target);
  const pos = target?.(c === UPPER ? name.toLowerCase() : name);
  return pos === undefined ? DEFAULT : targetKeys(pos);
}

function targetKeys(pos: KeyPositions): CommandKeys {
  if (!pos.movable) {
    if (pos.first <= 0) return TARGET_KEYLESS;
    if (pos.first === 1 && pos.last === 1) return TARGET_SINGLE;
  }
  let k = fromTarget.get(pos);
  if (k === undefined) {
    // COMMAND's last key: absolute, or counted from the end (-1: the last argument).
    const step = Math.max(1, pos.step);
    const count = pos.last < 0 ? pos.last : Math.max(1, Math.floor((pos.last - pos.first) / step) + 1);
    const runs = pos.first > 0 ? [run(pos.first, { count, step })] : [];
    k = keys(runs, {}, 'target', pos.movable);
    fromTarget.set(pos, k);
  }
  return k;
}

/** Which keys `keyIndexes` lists. */
export type KeyAccess = 'all' | 'write' | 'read';

/**
 * Argument indexes of the keys of a command (`keys` from commandKeys), in run order, appended to
 * `out` (pass a reused array to allocate nothing). Keys past the last argument are left out.
 */
export function keyIndexes(keys: CommandKeys, args: CommandArgs, access: KeyAccess = 'all', out: number[] = []): number[] {
  const n = argCount(args);
  for (const r of keys.runs) {
    if (access !== 'all' && r.write !== (access === 'write')) continue;
    let i = runStart(r, args, n);
    if (i < 0) continue;
    let end: number;
    if (r.count === NUMKEYS) {
      end = Math.min(n, i + 1 + intAt(args, i, 0));
      i++;
    } else if (r.count > 0) end = Math.min(n, i + (r.count - 1) * r.step + 1);
    else end = n + r.count + 1;
    for (; i < end; i += r.step) if (!(r.blankIsNone && argLength(args, i) === 0)) out.push(i);
  }
  return out;
}

/** Index of the command's first key (the one error messages name), or -1 when it has none. */
export function firstKeyIndex(name: string, args: CommandArgs, target?: TargetKeyPositions): number {
  return firstIndex(commandKeys(name, target), args);
}

/** The argument that decides a command's cluster slot: its first key, or its sharded channel; -1 for none. */
export function slotKeyIndex(name: string, args: CommandArgs): number {
  const k = commandKeys(name);
  if (k.channel === 0) return firstIndex(k, args);
  return k.channel < argCount(args) ? k.channel : -1;
}

function firstIndex(k: CommandKeys, args: CommandArgs): number {
  const n = argCount(args);
  if (k.single) return n > 1 ? 1 : -1;
  for (const r of k.runs) {
    let i = runStart(r, args, n);
    if (i < 0) continue;
    if (r.count === NUMKEYS) i = intAt(args, i, 0) > 0 ? i + 1 : -1;
    if (i >= 0 && i < n && !(r.blankIsNone && argLength(args, i) === 0)) return i;
  }
  return -1;
}

/** The first key of the command, or undefined. */
export function firstKey(args: readonly Arg[]): Buffer | undefined {
  const i = firstKeyIndex(commandName(args), args);
  return i < 0 ? undefined : argBuffer(args[i]!);
}

/**
 * Whether a command with `patterns` (SORT) reads other keys through a BY or GET pattern: `#` is
 * the element itself and `BY nosort` a constant, any other pattern names keys.
 */
export function readsKeysByPattern(args: CommandArgs): boolean {
  const n = argCount(args);
  for (let i = 2; i + 1 < n; i++) {
    const by = isWord(args, i, 'by');
    if (!by && !isWord(args, i, 'get')) continue;
    if (isWord(args, i + 1, '#') || (by && isWord(args, i + 1, 'nosort'))) continue;
    return true;
  }
  return false;
}

/** Upper-case command name of `args` (ASCII only; command names are ASCII). */
export function commandName(args: readonly Arg[]): string {
  const first = args[0];
  if (first === undefined) return '';
  const text = typeof first === 'string' ? first : typeof first === 'number' ? String(first) : first.toString('latin1');
  return text.toUpperCase();
}

/** An argument as bytes (keys given as strings or numbers are encoded like the RESP encoder does). */
export function argBuffer(a: Arg): Buffer {
  return Buffer.isBuffer(a) ? a : Buffer.from(typeof a === 'number' ? String(a) : a);
}

/** Where run `r` starts in these arguments, or -1 when it has no key here (subcommand or keyword absent). */
function runStart(r: KeyRun, args: CommandArgs, n: number): number {
  if (r.sub !== null && !isWord(args, 1, r.sub)) return -1;
  if (r.keywords === null) return r.at;
  for (let i = r.at; i + 1 < n; i++) for (const w of r.keywords) if (isWord(args, i, w)) return i + 1;
  return -1;
}

function argCount(args: CommandArgs): number {
  return isArray(args) ? args.length : args.argCount;
}

function isArray(args: CommandArgs): args is readonly Arg[] {
  return Array.isArray(args);
}

function argLength(args: CommandArgs, i: number): number {
  const a = isArray(args) ? args[i] : args.arg(i);
  return a === undefined ? 0 : typeof a === 'number' ? String(a).length : a.length;
}

/** Argument `i` as a non-negative decimal integer, else `fallback` (a count, a db number). */
export function intAt(args: CommandArgs, i: number, fallback: number): number {
  const a = isArray(args) ? args[i] : args.arg(i);
  if (a === undefined) return fallback;
  if (typeof a === 'number') return Number.isInteger(a) && a >= 0 ? a : fallback;
  const len = a.length;
  if (len === 0 || len > 15) return fallback;
  let v = 0;
  for (let j = 0; j < len; j++) {
    const c = typeof a === 'string' ? a.charCodeAt(j) : a[j]!;
    if (c < 0x30 || c > 0x39) return fallback;
    v = v * 10 + (c - 0x30);
  }
  return v;
}

/** Whether argument `i` is `word` (lower-case ASCII), in any case. */
export function isWord(args: CommandArgs, i: number, word: string): boolean {
  const a = isArray(args) ? args[i] : args.arg(i);
  if (a === undefined || typeof a === 'number' || a.length !== word.length) return false;
  for (let j = 0; j < word.length; j++) {
    const c = typeof a === 'string' ? a.charCodeAt(j) : a[j]!;
    // ASCII letters fold to lower case with 0x20; `word` is lower case already.
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== word.charCodeAt(j)) return false;
  }
  return true;
}

const LOWER = 0;
const UPPER = 1;
const MIXED = 2;

/** Whether the letters of `s` are all lower case (the parser's spelling), all upper case (commandName's), or mixed. */
function letterCase(s: string): number {
  let upper = false;
  let lower = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) upper = true;
    else if (c >= 0x61 && c <= 0x7a) lower = true;
  }
  return upper ? (lower ? MIXED : UPPER) : LOWER;
}
