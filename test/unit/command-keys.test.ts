import { describe, expect, it } from 'vitest';
import { commandKeys, firstKey, firstKeyIndex, intAt, isWord, keyIndexes, readsKeysByPattern, slotKeyIndex, type CommandArgs, type KeyAccess } from '../../src/commands/keys.js';
import { CommandTable } from '../../src/commands/table.js';
import { encodeCommand, type Arg } from '../../src/resp/encode.js';
import { ReplicationStreamParser } from '../../src/resp/stream-parser.js';

/** Key indexes of `args` (strings), by the static table. */
const at = (args: Arg[], access: KeyAccess = 'all'): number[] => keyIndexes(commandKeys(String(args[0])), args, access);
/** The keys themselves. */
const named = (args: string[], access: KeyAccess = 'all'): string[] => at(args, access).map((i) => args[i]!);
const stream = (args: Arg[]) => new ReplicationStreamParser(0).push(encodeCommand(args))[0]!;

describe('command key table', () => {
  it('one key at argument 1 for a command it does not list (SET, HSET)', () => {
    expect(commandKeys('set')).toMatchObject({ origin: 'default', single: true });
    expect(named(['SET', 'k', 'v'])).toEqual(['k']);
    expect(named(['HSET', 'h', 'f', 'v'], 'write')).toEqual(['h']);
    expect(firstKeyIndex('SET', ['SET', 'k', 'v'])).toBe(1);
  });

  it('unknown commands: one key at argument 1, none when it is missing', () => {
    expect(commandKeys('mymodule.cmd').origin).toBe('default');
    expect(named(['MYMODULE.CMD', 'k', 'x'])).toEqual(['k']);
    expect(at(['MYMODULE.CMD'])).toEqual([]);
    expect(firstKeyIndex('MYMODULE.CMD', ['MYMODULE.CMD'])).toBe(-1);
  });

  it('looks names up in lower, upper and mixed case alike', () => {
    expect(commandKeys('mset')).toBe(commandKeys('MSET'));
    expect(commandKeys('MSet')).toBe(commandKeys('mset'));
    expect(commandKeys('zUnionStore')).toBe(commandKeys('ZUNIONSTORE'));
    expect(named(['eVaL', 's', '1', 'k'])).toEqual(['k']);
  });

  it('keyless commands', () => {
    for (const n of ['SELECT', 'FLUSHALL', 'ping', 'MULTI', 'PUBLISH', 'FUNCTION', 'SCRIPT']) {
      expect(commandKeys(n).runs).toEqual([]);
      expect(firstKeyIndex(n, [n, 'x', 'y'])).toBe(-1);
    }
  });

  it('MSET-style key/value steps; DEL-style key lists; which are independent', () => {
    expect(named(['MSET', 'a', '1', 'b', '2'])).toEqual(['a', 'b']);
    expect(named(['MSETNX', 'a', '1', 'b', '2'], 'write')).toEqual(['a', 'b']);
    expect(named(['DEL', 'a', 'b', 'c'], 'write')).toEqual(['a', 'b', 'c']);
    expect(named(['EXISTS', 'a', 'b'], 'read')).toEqual(['a', 'b']);
    expect(commandKeys('mset').independent).toBe(true);
    expect(commandKeys('unlink').independent).toBe(true);
    // All or nothing on a server: not independent.
    expect(commandKeys('msetnx').independent).toBe(false);
    expect(at(['DEL'])).toEqual([]);
  });

  it('destination forms: written destination, read sources', () => {
    expect(named(['SUNIONSTORE', 'd', 's1', 's2'], 'write')).toEqual(['d']);
    expect(named(['SUNIONSTORE', 'd', 's1', 's2'], 'read')).toEqual(['s1', 's2']);
    expect(named(['PFMERGE', 'd'], 'read')).toEqual([]);
    expect(named(['ZRANGESTORE', 'd', 'src', '0', '-1'])).toEqual(['d', 'src']);
    expect(named(['GEOSEARCHSTORE', 'd', 'src', 'FROMMEMBER', 'm', 'BYRADIUS', '1', 'km'], 'write')).toEqual(['d']);
    expect(named(['COPY', 'src', 'dst', 'DB', '2'], 'write')).toEqual(['dst']);
    expect(named(['COPY', 'src', 'dst'], 'read')).toEqual(['src']);
  });

  it('keys moved between two keys (RENAME, LMOVE, SMOVE): both written', () => {
    expect(named(['RENAME', 'a', 'b'], 'write')).toEqual(['a', 'b']);
    expect(named(['LMOVE', 'a', 'b', 'LEFT', 'RIGHT'], 'write')).toEqual(['a', 'b']);
    expect(named(['SMOVE', 'a', 'b', 'member'])).toEqual(['a', 'b']);
  });

  it('NUMKEYS forms: EVAL, FCALL, ZUNIONSTORE, LMPOP, BLMPOP', () => {
    expect(named(['EVAL', 'return 1', '2', 'k1', 'k2', 'arg'])).toEqual(['k1', 'k2']);
    expect(named(['FCALL', 'f', '1', 'k', 'arg'], 'write')).toEqual(['k']);
    expect(named(['FCALL_RO', 'f', '1', 'k'], 'write')).toEqual([]);
    expect(named(['ZUNIONSTORE', 'd', '2', 'z1', 'z2', 'WEIGHTS', '1', '2'])).toEqual(['d', 'z1', 'z2']);
    expect(named(['ZUNIONSTORE', 'd', '2', 'z1', 'z2'], 'read')).toEqual(['z1', 'z2']);
    expect(named(['LMPOP', '2', 'l1', 'l2', 'LEFT'])).toEqual(['l1', 'l2']);
    expect(named(['BLMPOP', '0', '1', 'l1', 'LEFT'])).toEqual(['l1']);
    expect(named(['ZINTERCARD', '2', 'a', 'b', 'LIMIT', '1'], 'read')).toEqual(['a', 'b']);
    expect(commandKeys('evalsha').script).toBe(true);
  });

  it('NUMKEYS edge cases: 0, missing, not a number, more than given', () => {
    expect(at(['EVAL', 'return 1', '0'])).toEqual([]);
    expect(firstKeyIndex('EVAL', ['EVAL', 'return 1', '0'])).toBe(-1);
    expect(at(['EVAL', 'return 1'])).toEqual([]);
    expect(at(['EVAL', 'return 1', 'x', 'k'])).toEqual([]);
    expect(at(['EVAL', 'return 1', '-1', 'k'])).toEqual([]);
    // Cut at the end of the command.
    expect(named(['ZUNIONSTORE', 'd', '5', 'z1'])).toEqual(['d', 'z1']);
    expect(firstKeyIndex('ZUNION', ['ZUNION', '2', 'z1', 'z2'])).toBe(2);
  });

  it('subcommand forms: BITOP, OBJECT, XGROUP, XINFO, MEMORY, DEBUG DIGEST-VALUE', () => {
    expect(named(['BITOP', 'AND', 'd', 's1', 's2'], 'write')).toEqual(['d']);
    expect(named(['BITOP', 'AND', 'd', 's1', 's2'], 'read')).toEqual(['s1', 's2']);
    expect(named(['OBJECT', 'ENCODING', 'k'])).toEqual(['k']);
    expect(at(['OBJECT', 'HELP'])).toEqual([]);
    expect(named(['XGROUP', 'CREATE', 's', 'g', '$'], 'write')).toEqual(['s']);
    expect(named(['XINFO', 'STREAM', 's'], 'read')).toEqual(['s']);
    expect(named(['MEMORY', 'USAGE', 'm', 'SAMPLES', '0'])).toEqual(['m']);
    expect(named(['DEBUG', 'DIGEST-VALUE', 'a', 'b'])).toEqual(['a', 'b']);
    expect(named(['debug', 'digest-value', 'a'])).toEqual(['a']);
    expect(at(['DEBUG', 'DIGEST'])).toEqual([]);
    expect(at(['DEBUG', 'SLEEP', '0'])).toEqual([]);
  });

  it('SORT ... STORE and GEORADIUS ... STORE / STOREDIST', () => {
    expect(named(['SORT', 'l', 'LIMIT', '0', '5', 'STORE', 'd'], 'write')).toEqual(['d']);
    expect(named(['sort', 'l', 'store', 'd'])).toEqual(['l', 'd']);
    expect(named(['SORT', 'l', 'ALPHA'], 'write')).toEqual([]);
    // STORE as the last argument names no key.
    expect(named(['SORT', 'l', 'STORE'])).toEqual(['l']);
    expect(named(['GEORADIUS', 'g', '0', '0', '1', 'km', 'STOREDIST', 'd'], 'write')).toEqual(['d']);
    expect(named(['GEORADIUSBYMEMBER', 'g', 'm', '1', 'km', 'STORE', 'd'])).toEqual(['g', 'd']);
    expect(named(['GEORADIUS', 'g', '0', '0', '1', 'km'], 'write')).toEqual([]);
  });

  it('SORT BY / GET patterns read other keys', () => {
    expect(commandKeys('sort').patterns).toBe(true);
    expect(readsKeysByPattern(['SORT', 'l', 'BY', 'w_*'])).toBe(true);
    expect(readsKeysByPattern(['SORT', 'l', 'GET', '#'])).toBe(false);
    expect(readsKeysByPattern(['SORT', 'l', 'by', 'NOSORT', 'STORE', 'd'])).toBe(false);
    expect(readsKeysByPattern(['SORT', 'l', 'GET', '#', 'GET', 'h_*->f'])).toBe(true);
  });

  it("MIGRATE's key, or its KEYS", () => {
    expect(named(['MIGRATE', 'h', '6379', 'k', '0', '5000'])).toEqual(['k']);
    expect(named(['MIGRATE', 'h', '6379', '', '0', '5000', 'COPY', 'KEYS', 'a', 'b'])).toEqual(['a', 'b']);
    expect(firstKeyIndex('MIGRATE', ['MIGRATE', 'h', '6379', '', '0', '5000', 'KEYS', 'a'])).toBe(7);
    expect(named(['MIGRATE', 'h', '6379', '', '0', '5000', 'AUTH', 'pw', 'KEYS', 'a'])).toEqual(['a']);
  });

  it('SPUBLISH: its channel picks the slot but is not a key', () => {
    expect(at(['SPUBLISH', 'ch', 'msg'])).toEqual([]);
    expect(firstKeyIndex('SPUBLISH', ['SPUBLISH', 'ch', 'msg'])).toBe(-1);
    expect(slotKeyIndex('SPUBLISH', ['SPUBLISH', 'ch', 'msg'])).toBe(1);
    expect(slotKeyIndex('SPUBLISH', ['SPUBLISH'])).toBe(-1);
    expect(slotKeyIndex('SET', ['SET', 'k', 'v'])).toBe(1);
  });

  it('reads StreamCommands (lazy arguments) like arrays, and reuses an output array', () => {
    const c = stream(['ZUNIONSTORE', 'd', '2', 'z1', 'z2']);
    const out = [99];
    expect(keyIndexes(commandKeys(c.name), c, 'all', out)).toBe(out);
    expect(out).toEqual([99, 1, 3, 4]);
    expect(firstKeyIndex(c.name, c)).toBe(1);
    expect(firstKeyIndex('bitop', stream(['BITOP', 'NOT', 'd', 's']))).toBe(2);
  });

  it('firstKey: the key as bytes, from strings, numbers or Buffers', () => {
    expect(firstKey(['SET', 'k', 'v'])?.toString()).toBe('k');
    expect(firstKey(['SET', 7, 'v'])?.toString()).toBe('7');
    expect(firstKey([Buffer.from('bitop'), 'OR', Buffer.from('d'), 's'])?.toString()).toBe('d');
    expect(firstKey(['EVAL', 'return 1', 0])).toBeUndefined();
    expect(firstKey([])).toBeUndefined();
  });

  it('falls back to the target COMMAND key positions for commands it does not know', () => {
    const table = CommandTable.parse([
      ['mod.multi', -3, ['write'], 1, -1, 1],
      ['mod.pairs', -3, ['write'], 1, -1, 2],
      ['mod.two', 3, ['write'], 1, 2, 1],
      ['mod.none', -1, ['write'], 0, 0, 0],
      ['mod.movable', -2, ['write', 'movablekeys'], 0, 0, 0],
      ['mod.at2', 3, ['write'], 2, 2, 1],
      ['mod.one', 2, ['write'], 1, 1, 1],
      ['mset', -3, ['write'], 1, -1, 1],
    ])!;
    const target = (n: string) => table.keyPositions(n);
    const keysOf = (args: string[]) => keyIndexes(commandKeys(args[0]!, target), args).map((i) => args[i]);
    expect(keysOf(['mod.multi', 'a', 'b', 'c'])).toEqual(['a', 'b', 'c']);
    expect(keysOf(['mod.pairs', 'a', '1', 'b', '2'])).toEqual(['a', 'b']);
    expect(keysOf(['mod.two', 'a', 'b', 'c'])).toEqual(['a', 'b']);
    expect(keysOf(['mod.none', 'x'])).toEqual([]);
    expect(keysOf(['mod.at2', 'x', 'k'])).toEqual(['k']);
    expect(keysOf(['MOD.MULTI', 'a', 'b'])).toEqual(['a', 'b']);
    expect(commandKeys('mod.movable', target).movable).toBe(true);
    expect(commandKeys('mod.one', target)).toMatchObject({ origin: 'target', single: true });
    // The same long-lived answer for each command (no object per call).
    expect(commandKeys('mod.multi', target)).toBe(commandKeys('mod.multi', target));
    // The static table wins over the target's (which would call MSET's values keys).
    expect(commandKeys('mset', target).origin).toBe('redis');
    expect(commandKeys('not.there', target).origin).toBe('default');
  });

  it('argument helpers: integers and keywords read in place', () => {
    const args: CommandArgs = ['X', '12', 'StOrE', Buffer.from('007'), 5, '', '1e3', '+1'];
    expect(intAt(args, 1, -1)).toBe(12);
    expect(intAt(args, 3, -1)).toBe(7);
    expect(intAt(args, 4, -1)).toBe(5);
    expect([intAt(args, 5, -1), intAt(args, 6, -1), intAt(args, 7, -1), intAt(args, 9, -1)]).toEqual([-1, -1, -1, -1]);
    expect(isWord(args, 2, 'store')).toBe(true);
    expect(isWord(args, 2, 'storedist')).toBe(false);
    expect(isWord(args, 4, '5')).toBe(false);
  });
});
