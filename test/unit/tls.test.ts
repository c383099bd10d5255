import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { tlsConnectOptions } from '../../src/net/tls.js';
import { describeEarlyTlsClose, describeTlsError, isTlsError, socketErrorText } from '../../src/net/tls-errors.js';
import { parseSourceUrl } from '../../src/replication/source.js';
import { parseRedisUrl } from '../../src/replication/url.js';

const err = (code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(`raw ${code}`), { code, ...extra });

describe('TLS URLs', () => {
  it('rediss:// turns TLS on, with the given settings or the defaults (system CAs)', () => {
    expect(parseRedisUrl('rediss://u:p@h.example:6380/2')).toEqual({ host: 'h.example', port: 6380, username: 'u', password: 'p', db: 2, tls: {} });
    const ca = Buffer.from('ca');
    expect(parseRedisUrl('rediss://[::1]:7000', { ca }).tls).toEqual({ ca });
    expect(parseRedisUrl('redis://h:1').tls).toBeUndefined();
  });

  it('refuses TLS settings for a plain URL', () => {
    expect(() => parseRedisUrl('redis://h:1', {})).toThrow(UsageError);
    expect(() => parseSourceUrl('sentinel://h:26379/m', { insecure: true })).toThrow(/use sentinels:\/\//);
  });

  it('sentinels:// is the TLS form of sentinel://', () => {
    const spec = parseSourceUrl('sentinels://a:1,b:2/mymaster?sentinelPassword=x', { insecure: true });
    expect(spec).toEqual({ kind: 'sentinel', sentinel: { sentinels: [{ host: 'a', port: 1 }, { host: 'b', port: 2 }], masterName: 'mymaster', sentinelPassword: 'x', tls: { insecure: true } } });
    expect(parseSourceUrl('sentinel://a:1/m')).toMatchObject({ sentinel: { masterName: 'm' } });
    expect(parseSourceUrl('sentinel://a:1/m')).not.toHaveProperty('sentinel.tls');
  });
});

describe('tlsConnectOptions', () => {
  it('sends SNI for a host name, never for an IP literal, and verifies unless insecure', () => {
    expect(tlsConnectOptions('redis.example', {})).toEqual({ rejectUnauthorized: true, servername: 'redis.example' });
    expect(tlsConnectOptions('127.0.0.1', {})).toEqual({ rejectUnauthorized: true });
    expect(tlsConnectOptions('::1', { insecure: true })).toEqual({ rejectUnauthorized: false });
  });
});

describe('TLS error messages', () => {
  const ep = { host: 'db.example', port: 6380, tls: {} };
  it('explains certificate problems in one line, without the OpenSSL text', () => {
    expect(describeTlsError(err('DEPTH_ZERO_SELF_SIGNED_CERT'), 'target db.example:6380', ep)).toBe('TLS: certificate of target db.example:6380 not trusted (self-signed; give the CA that issued it with --tls-ca)');
    expect(describeTlsError(err('CERT_HAS_EXPIRED', { cert: { valid_from: 'Jan 1 2020', valid_to: 'Jan 2 2020' } }), 'source x', ep)).toBe('TLS: certificate of source x has expired (valid Jan 1 2020 to Jan 2 2020)');
    expect(describeTlsError(err('ERR_SSL_WRONG_VERSION_NUMBER', { reason: 'wrong version number' }), 'source x', ep)).toBe("TLS: source x does not answer in TLS (wrong version number): a plain port? use redis:// or the server's tls-port");
    expect(describeTlsError(err('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE'), 'source x', { ...ep, tls: { cert: Buffer.from('c') } })).toBe('TLS: handshake with source x failed (ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE)');
  });

  it('reads an early reset over TLS as a refused handshake, and leaves plain errors alone', () => {
    expect(describeEarlyTlsClose(err('ECONNRESET'), 'source x', ep)).toMatch(/closed the connection after the handshake.*requires a client certificate/);
    expect(describeEarlyTlsClose(null, 'source x', { ...ep, tls: { cert: Buffer.from('c') } })).toMatch(/probably refused the client certificate$/);
    expect(describeEarlyTlsClose(err('ECONNRESET'), 'source x', { host: 'h', port: 1 })).toBeNull();
    expect(describeEarlyTlsClose(err('ETIMEDOUT'), 'source x', ep)).toBeNull();
    expect(describeTlsError(err('ECONNRESET'), 'source x', ep)).toBeNull();
    expect(isTlsError(err('ECONNREFUSED'))).toBe(false);
    expect(socketErrorText(err('ECONNREFUSED'), 'x', ep)).toBe('ECONNREFUSED');
    expect(socketErrorText(err('ECONNRESET'), 'x', { host: 'h', port: 1 })).toBe('ECONNRESET (if the port takes TLS only, use rediss://)');
  });
});
