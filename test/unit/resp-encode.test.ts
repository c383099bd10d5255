import { describe, expect, it } from 'vitest';
import { encodeCommand, encodeCommands, encodedLength } from '../../src/resp/encode.js';

describe('RESP encoder', () => {
  it('encodes strings, numbers and binary buffers', () => {
    expect(encodeCommand(['SET', 'k', 12]).toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n');
    const bin = Buffer.from([0, 0xff, 0x0d, 0x0a]);
    expect(encodeCommand(['SET', bin, 'é'])).toEqual(
      Buffer.concat([Buffer.from('*3\r\n$3\r\nSET\r\n$4\r\n'), bin, Buffer.from('\r\n$2\r\n'), Buffer.from('é'), Buffer.from('\r\n')]),
    );
  });
  it('predicts its length and concatenates several commands', () => {
    const cmds = [['PING'], ['SELECT', 10], ['SET', 'x'.repeat(1000), Buffer.alloc(12345)]];
    const all = encodeCommands(cmds);
    expect(all.length).toBe(cmds.reduce((n, c) => n + encodedLength(c), 0));
    expect(all.subarray(0, 14).toString()).toBe('*1\r\n$4\r\nPING\r\n');
  });
});
