/**
 * Where the (first) key of a command is: used to name the key in error messages and, on a
 * cluster target, to route the command by the key's slot. Most commands carry their key as the
 * first argument; this table lists the exceptions that can reach a writer.
 */
import type { Arg } from '../resp/encode.js';

/** Commands with no key at all (server, connection and transaction commands, pub/sub). */
export const KEYLESS = new Set([
  'SELECT', 'SWAPDB', 'FLUSHALL', 'FLUSHDB', 'PING', 'ECHO', 'MULTI', 'EXEC', 'DISCARD', 'SCRIPT',
  'FUNCTION', 'PUBLISH', 'CONFIG', 'INFO', 'DBSIZE', 'CLIENT', 'CLUSTER', 'AUTH', 'HELLO',
  'QUIT', 'DEBUG', 'REPLCONF', 'TIME', 'LASTSAVE', 'SAVE', 'BGSAVE', 'BGREWRITEAOF', 'SHUTDOWN',
  'WAIT', 'WAITAOF', 'ACL', 'MODULE', 'COMMAND', 'KEYS', 'SCAN', 'RANDOMKEY', 'ASKING', 'READONLY',
  'READWRITE', 'LATENCY', 'SLOWLOG', 'MONITOR', 'ROLE', 'FAILOVER', 'REPLICAOF', 'SLAVEOF', 'RESET',
]);

/** Commands whose first key follows a subcommand or operator: `BITOP AND dest ...`, `OBJECT ENCODING key`. */
export const KEY_AT_2 = new Set(['BITOP', 'OBJECT', 'MEMORY', 'XGROUP', 'XINFO']);

/** `CMD numkeys key ...`. */
const NUMKEYS_AT_1 = new Set(['ZUNION', 'ZINTER', 'ZDIFF', 'SINTERCARD', 'ZINTERCARD', 'LMPOP', 'ZMPOP']);

/** `CMD script numkeys key ...` (EVAL family) and `CMD timeout numkeys key ...` (blocking pops). */
const NUMKEYS_AT_2 = new Set(['EVAL', 'EVALSHA', 'EVAL_RO', 'EVALSHA_RO', 'FCALL', 'FCALL_RO', 'BLMPOP', 'BZMPOP']);


/** Upper-case command name of `args` (ASCII only; command names are ASCII). */
export function commandName(args: readonly Arg[]): string {
  const first = args[0];
  if (first === undefined) return '';
  const text = typeof first === 'string' ? first : typeof first === 'number' ? String(first) : first.toString('latin1');
  return text.toUpperCase();
}

function parseCount(arg: Arg | undefined): number {
  if (arg === undefined) return 0;
  const n = typeof arg === 'number' ? arg : Number(arg.toString('latin1'));
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** An argument as bytes (keys given as strings or numbers are encoded like the RESP encoder does). */
export function argBuffer(a: Arg): Buffer {
  return Buffer.isBuffer(a) ? a : Buffer.from(typeof a === 'number' ? String(a) : a);
}

/** Index in `args` of the first key, or -1 when the command has none (or none we know of). */
export function firstKeyIndex(name: string, args: readonly Arg[]): number {
  let idx: number;
  if (KEYLESS.has(name)) return -1;
  if (KEY_AT_2.has(name)) idx = 2;
  else if (NUMKEYS_AT_1.has(name)) idx = parseCount(args[1]) > 0 ? 2 : -1;
  else if (NUMKEYS_AT_2.has(name)) idx = parseCount(args[2]) > 0 ? 3 : -1;
  else idx = 1;
  return idx >= 0 && idx < args.length ? idx : -1;
}

/** The first key of the command, or undefined. */
export function firstKey(args: readonly Arg[]): Buffer | undefined {
  const i = firstKeyIndex(commandName(args), args);
  return i < 0 ? undefined : argBuffer(args[i]!);
}
