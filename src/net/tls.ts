/**
 * TLS for every connection Replicant opens (replication link, INFO, target writers, and the
 * ioredis clients of sentinel and verify). One place decides how a `rediss://` endpoint is
 * reached, so every path verifies the same way:
 *
 * - the server certificate is checked against the given CA (`ca`, replacing the system CAs)
 *   or the system CAs, unless `insecure`;
 * - the name checked is the host of the URL: a DNS name against the certificate's DNS names,
 *   an IP literal against its IP addresses (Node does this when no servername is given);
 * - SNI carries the host name; never an IP literal (RFC 6066 forbids it, Node warns about it).
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

export interface TlsSettings {
  /** PEM CA certificate(s) trusted instead of the system CAs. */
  ca?: Buffer;
  /** PEM client certificate (chain) and its key, for servers that require one (tls-auth-clients). */
  cert?: Buffer;
  key?: Buffer;
  /** Skip the certificate and name checks (`--tls-insecure`): encrypts, but proves nothing. */
  insecure?: boolean;
  /** Where `ca` came from, for messages. */
  caFile?: string;
}

export interface NetEndpoint {
  host: string;
  port: number;
  /** Present: connect with TLS (`rediss://`). */
  tls?: TlsSettings;
}

/** Node TLS options for `host` (also handed to ioredis as its `tls` option). */
export function tlsConnectOptions(host: string, s: TlsSettings): ConnectionOptions {
  const o: ConnectionOptions = { rejectUnauthorized: s.insecure !== true };
  // Without a servername Node sends no SNI and checks the certificate against `host`.
  if (isIP(host) === 0) o.servername = host;
  if (s.ca !== undefined) o.ca = s.ca;
  if (s.cert !== undefined) o.cert = s.cert;
  if (s.key !== undefined) o.key = s.key;
  return o;
}

/**
 * A socket to `ep`, plain or TLS. `onReady` runs once the connection can carry commands: after
 * the TCP connect, or for TLS after the handshake and the certificate checks passed.
 */
export function connectSocket(ep: NetEndpoint, onReady: () => void): Socket {
  if (ep.tls === undefined) return netConnect({ host: ep.host, port: ep.port }, onReady);
  return tlsConnect({ host: ep.host, port: ep.port, ...tlsConnectOptions(ep.host, ep.tls) }, onReady);
}
