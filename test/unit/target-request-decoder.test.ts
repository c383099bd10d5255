import { describe, expect, it } from 'vitest';
import { encodeCommand, encodeCommands } from '../../src/resp/encode.js';
import { commandAt, readCommand, splitCommands } from '../../src/resp/request-decoder.js';
import { commandName, firstKey, firstKeyIndex } from '../../src/commands/keys.js';

const str = (args: Buffer[] | undefined) => args?.map((a) => a.toString('latin1'));

describe('request decoder', () => {
  const cmds = [['SET', 'a', '1'], ['INCR', 'counter'], ['HSET', Buffer.from([0, 0x0d, 0x0a, 0xff]), 'f', ''], ['PING']];
  const payload = encodeCommands(cmds);

  it('reads back the command at any index of a payload', () => {
    expect(str(commandAt(payload, 0))).toEqual(['SET', 'a', '1']);
    expect(str(commandAt(payload, 1))).toEqual(['INCR', 'counter']);
    expect(commandAt(payload, 2)![1]).toEqual(Buffer.from([0, 0x0d, 0x0a, 0xff]));
    expect(commandAt(payload, 2)![3]!.length).toBe(0);
    expect(str(commandAt(payload, 3))).toEqual(['PING']);
    expect(commandAt(payload, 4)).toBeUndefined();
  });

  it('reads commands split over several payload buffers, even mid-command', () => {
    const pieces = [payload.subarray(0, 7), payload.subarray(7, 30), payload.subarray(30)];
    for (let i = 0; i < cmds.length; i++) expect(commandAt(pieces, i)).toEqual(commandAt(payload, i));
  });

  it('refuses malformed or truncated input instead of guessing', () => {
    expect(readCommand(Buffer.from('PING\r\n'), 0)).toBe(-1);
    expect(readCommand(Buffer.from('*1\r\n$4\r\nPIN'), 0)).toBe(-1);
    expect(readCommand(Buffer.from('*1\r\n$4\r\nPINGxx'), 0)).toBe(-1);
    expect(readCommand(Buffer.from('*1\r\n$x\r\nPING\r\n'), 0)).toBe(-1);
    expect(splitCommands(Buffer.concat([payload, Buffer.from('*2\r\n$1\r\na\r\n')]))).toBeUndefined();
  });

  it('splits a payload into commands with exact byte ranges', () => {
    const parts = splitCommands(payload)!;
    expect(parts.map((p) => str(p.args)![0])).toEqual(['SET', 'INCR', 'HSET', 'PING']);
    for (let i = 0; i < cmds.length; i++) {
      expect(payload.subarray(parts[i]!.start, parts[i]!.end)).toEqual(encodeCommand(cmds[i]!));
    }
    expect(parts[3]!.end).toBe(payload.length);
  });
});

describe('command keys', () => {
  const b = (...a: string[]) => a.map((s) => Buffer.from(s));
  it('finds the first key of common and irregular commands', () => {
    expect(commandName(b('set', 'k'))).toBe('SET');
    expect(firstKey(b('SET', 'k', 'v'))?.toString()).toBe('k');
    expect(firstKey(b('BITOP', 'AND', 'dest', 'a'))?.toString()).toBe('dest');
    expect(firstKey(b('EVALSHA', 'abc', '2', 'k1', 'k2'))?.toString()).toBe('k1');
    expect(firstKey(b('EVAL', 'return 1', '0'))).toBeUndefined();
    expect(firstKey(b('ZUNION', '2', 'z1', 'z2'))?.toString()).toBe('z1');
    expect(firstKey(b('SELECT', '3'))).toBeUndefined();
    expect(firstKey(b('FLUSHALL'))).toBeUndefined();
    expect(firstKeyIndex('DEL', b('DEL'))).toBe(-1);
  });
});
