import { describe, expect, it } from 'vitest';
import { ProtocolError, UsageError } from '../../src/errors.js';
import { isRetryable } from '../../src/replication/errors.js';
import { RdbTrailer } from '../../src/replication/rdb-trailer.js';
import { checkAuthReply, checkPingReply, checkReplconfReply, parseFramingHeader, parsePsyncReply } from '../../src/replication/replies.js';
import { parseRedisUrl } from '../../src/replication/url.js';

const MARK = Buffer.from('x'.repeat(20) + 'y'.repeat(20), 'latin1');

describe('RdbTrailer', () => {
  it('passes everything through for $len framing when the RDB had exactly that length', () => {
    const t = new RdbTrailer({ kind: 'length', length: 100 });
    expect(t.push(Buffer.from('*1\r\n'), 100)?.toString()).toBe('*1\r\n');
    expect(t.push(Buffer.from('more'))?.toString()).toBe('more');
    expect(t.consumedBytes).toBe(100);
    expect(t.done).toBe(true);
  });

  it('rejects an RDB shorter or longer than announced', () => {
    expect(() => new RdbTrailer({ kind: 'length', length: 100 }, 99)).toThrow(ProtocolError);
    expect(() => new RdbTrailer({ kind: 'length', length: 100 }).push(Buffer.alloc(0), 101)).toThrow(/runs past/);
    expect(() => new RdbTrailer({ kind: 'length', length: 100 }).push(Buffer.alloc(0))).toThrow(/RDB length is needed/);
  });

  it('checks the 40-byte mark split across any number of pushes', () => {
    const after = Buffer.concat([MARK, Buffer.from('*1\r\n$4\r\nping\r\n')]);
    for (let cut1 = 0; cut1 <= after.length; cut1 += 7) {
      for (let cut2 = cut1; cut2 <= after.length; cut2 += 11) {
        const t = new RdbTrailer({ kind: 'eof', mark: MARK }, 500);
        const parts = [after.subarray(0, cut1), after.subarray(cut1, cut2), after.subarray(cut2)];
        const stream: Buffer[] = [];
        for (const p of parts) {
          const r = t.push(p);
          if (r !== null) stream.push(r);
          else expect(t.done).toBe(false);
        }
        expect(t.done).toBe(true);
        expect(Buffer.concat(stream).toString()).toBe('*1\r\n$4\r\nping\r\n');
        expect(t.consumedBytes).toBe(540);
      }
    }
  });

  it('names the position of a wrong mark byte', () => {
    const t = new RdbTrailer({ kind: 'eof', mark: MARK }, 1000);
    expect(t.push(MARK.subarray(0, 30))).toBeNull();
    const bad = Buffer.from(MARK.subarray(30));
    bad[2] = 0x21;
    expect(() => t.push(bad)).toThrow(/transfer byte 1032 \(byte 32 of the 40-byte mark.*expected 0x79, got 0x21/);
  });
});

describe('parseRedisUrl', () => {
  it('parses host, port, credentials and db', () => {
    expect(parseRedisUrl('redis://127.0.0.1:7000')).toEqual({ host: '127.0.0.1', port: 7000 });
    expect(parseRedisUrl('redis://localhost')).toEqual({ host: 'localhost', port: 6379 });
    expect(parseRedisUrl('redis://:p%40ss@h:1/3')).toEqual({ host: 'h', port: 1, password: 'p@ss', db: 3 });
    expect(parseRedisUrl('redis://repl:pw@[::1]:6380/0')).toEqual({ host: '::1', port: 6380, username: 'repl', password: 'pw', db: 0 });
  });

  it('rejects bad input without echoing the password', () => {
    for (const bad of ['nope', 'http://h:1', 'redis://h:1/x', 'redis://u:secret@h:99999', 'redis://h:1?x=1', 'rediss://u:secret@h:1?x=1', 'ftp://u:secret@h:1']) {
      let err: unknown;
      try {
        parseRedisUrl(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(UsageError);
      expect((err as Error).message).not.toContain('secret');
    }
  });
});

describe('handshake replies', () => {
  const ID = 'ab'.repeat(20);
  const thrown = (fn: () => unknown): Error => {
    try {
      fn();
    } catch (e) {
      return e as Error;
    }
    throw new Error('expected a throw');
  };

  it('accepts PONG and the auth errors of a source that wants AUTH, rejects others', () => {
    expect(() => checkPingReply('+PONG', 's')).not.toThrow();
    expect(() => checkPingReply('-NOAUTH Authentication required.', 's')).not.toThrow();
    expect(isRetryable(thrown(() => checkPingReply('-LOADING loading', 's')))).toBe(true);
    expect(isRetryable(thrown(() => checkPingReply('-ERR weird', 's')))).toBe(false);
    expect(thrown(() => checkPingReply('HTTP/1.1 400', 's'))).toBeInstanceOf(ProtocolError);
  });

  it('fails on AUTH and REPLCONF auth errors, ignores other REPLCONF errors', () => {
    expect(thrown(() => checkAuthReply('-WRONGPASS invalid', 'u1', 'h:1')).message).toBe('authentication to source h:1 as user "u1" failed: WRONGPASS invalid');
    expect(checkReplconfReply('+OK', 's')).toBe(true);
    expect(checkReplconfReply('-ERR Unrecognized REPLCONF option: capa', 's')).toBe(false);
    expect(thrown(() => checkReplconfReply('-NOAUTH Authentication required.', 's')).message).toMatch(/requires authentication/);
  });

  it('parses PSYNC replies', () => {
    expect(parsePsyncReply(`+FULLRESYNC ${ID} 123`, null, 's')).toEqual({ mode: 'full', replid: ID, offset: 123 });
    expect(parsePsyncReply('+CONTINUE', ID, 's')).toEqual({ mode: 'continue', replid: ID });
    expect(parsePsyncReply(`+CONTINUE ${'c'.repeat(40)}`, ID, 's')).toEqual({ mode: 'continue', replid: 'c'.repeat(40) });
    expect(thrown(() => parsePsyncReply('+CONTINUE', null, 's'))).toBeInstanceOf(ProtocolError);
    expect(thrown(() => parsePsyncReply(`+FULLRESYNC ${ID} -1`, null, 's'))).toBeInstanceOf(ProtocolError);
    expect(isRetryable(thrown(() => parsePsyncReply("-NOMASTERLINK Can't SYNC while not connected with my master", ID, 's')))).toBe(true);
    expect(isRetryable(thrown(() => parsePsyncReply('-NOPERM no', ID, 's')))).toBe(false);
  });

  it('parses the RDB framing header', () => {
    expect(parseFramingHeader('$1234', 's')).toEqual({ kind: 'length', length: 1234 });
    expect(parseFramingHeader(`$EOF:${'m'.repeat(40)}`, 's')).toEqual({ kind: 'eof', mark: Buffer.from('m'.repeat(40)) });
    expect(thrown(() => parseFramingHeader('$EOF:short', 's'))).toBeInstanceOf(ProtocolError);
    expect(thrown(() => parseFramingHeader('$12a', 's'))).toBeInstanceOf(ProtocolError);
    expect(isRetryable(thrown(() => parseFramingHeader('-ERR BGSAVE failed', 's')))).toBe(true);
  });
});
