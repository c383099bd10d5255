/** CommandTable: what a target would refuse at queue time, from its COMMAND / COMMAND INFO replies. */
import { describe, expect, it } from 'vitest';
import { CommandTable, arityText, fetchCommandTable } from '../../src/commands/table.js';

// The shape of COMMAND entries: name, arity, flags, first key, last key, step, ..., subcommands (Redis 7).
const REPLY = [
  ['get', 2, ['readonly'], 1, 1, 1],
  ['set', -3, ['write'], 1, 1, 1],
  ['xgroup', -2, [], 0, 0, 0, [], [], [], [['xgroup|create', -5, [], 2, 2, 1], ['xgroup|destroy', 4, [], 2, 2, 1]]],
];

describe('CommandTable', () => {
  const t = CommandTable.parse(REPLY)!;
  const noSub = { arg: () => undefined };
  const sub = (name: string) => ({ arg: (i: number) => (i === 1 ? Buffer.from(name.toUpperCase()) : undefined) });

  it('accepts known commands with a valid argument count (exact or minimum arity)', () => {
    expect(t.check('get', 2, noSub)).toBeNull();
    expect(t.check('set', 3, noSub)).toBeNull();
    expect(t.check('set', 6, noSub)).toBeNull();
  });

  it('refuses unknown commands and wrong argument counts', () => {
    expect(t.check('hset', 4, noSub)).toEqual({ kind: 'unknown' });
    expect(t.check('get', 3, noSub)).toEqual({ kind: 'arity', arity: 2, name: 'get' });
    expect(t.check('set', 2, noSub)).toEqual({ kind: 'arity', arity: -3, name: 'set' });
  });

  it('checks the arity of subcommands, and lets unknown subcommands through', () => {
    expect(t.check('xgroup', 5, sub('create'))).toBeNull();
    expect(t.check('xgroup', 4, sub('create'))).toEqual({ kind: 'arity', arity: -5, name: 'xgroup create' });
    expect(t.check('xgroup', 5, sub('destroy'))).toEqual({ kind: 'arity', arity: 4, name: 'xgroup destroy' });
    expect(t.check('xgroup', 3, sub('nosuch'))).toBeNull();
  });

  it('is null for a reply that is not a command table', () => {
    expect(CommandTable.parse(null)).toBeNull();
    expect(CommandTable.parse([])).toBeNull();
    expect(CommandTable.parse('ERR')).toBeNull();
  });

  it('fetch: names COMMAND INFO answers with nil (renamed, disabled) leave the table; a refused COMMAND gives none', async () => {
    const calls: string[][] = [];
    const table = await fetchCommandTable(async (args) => {
      calls.push(args);
      if (args.length === 1) return REPLY;
      return args.slice(2).map((n) => (n === 'set' ? null : [n]));
    });
    expect(calls[1]).toEqual(['COMMAND', 'INFO', 'get', 'set', 'xgroup']);
    expect(table!.check('set', 3, noSub)).toEqual({ kind: 'unknown' });
    expect(table!.check('get', 2, noSub)).toBeNull();
    expect(await fetchCommandTable(() => Promise.reject(new Error('NOPERM')))).toBeNull();
  });

  it('arityText', () => {
    expect(arityText(2)).toBe('exactly 2');
    expect(arityText(-3)).toBe('at least 3');
  });
});
