/**
 * One-line explanations of TLS failures: which side refused what, and the option that fixes it.
 * The raw OpenSSL text ("error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:...")
 * never reaches the user.
 */
import type { Socket } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import type { NetEndpoint } from './tls.js';

type TlsErrno = NodeJS.ErrnoException & { reason?: string; cert?: PeerCertificate };

/** Certificate checks that failed because no trusted CA issued the chain. */
const UNTRUSTED: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'issued by a self-signed CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its issuer is not a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'its issuer is not a trusted CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its issuer is not a trusted CA',
  CERT_UNTRUSTED: 'not trusted for this purpose',
  CERT_SIGNATURE_FAILURE: 'bad signature',
};

/** Other certificate-check codes Node reports (OpenSSL X509_V_ERR names). */
const CERT_CHECKS = new Set([
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_REJECTED', 'CERT_CHAIN_TOO_LONG', 'INVALID_CA',
  'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD',
]);

/** Alerts a server sends when it refuses the client certificate. */
const CLIENT_CERT_REFUSED = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
]);

/** What a TLS client reads when the port speaks plain RESP (or something else). */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNKNOWN_PROTOCOL', 'ERR_SSL_RECORD_LAYER_FAILURE', 'ERR_SSL_HTTP_REQUEST']);

/** True for failures of the TLS layer: retrying the same connection will not help. */
export function isTlsError(e: unknown): boolean {
  const code = (e as TlsErrno | null)?.code;
  if (typeof code !== 'string') return false;
  return code in UNTRUSTED || CERT_CHECKS.has(code) || code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code.startsWith('ERR_SSL_');
}

/**
 * The message for a TLS failure (null when `e` is not one). `who` names the server, e.g.
 * "source 127.0.0.1:6380"; `ep` says what was asked (host checked, CA given, client cert given).
 */
export function describeTlsError(e: unknown, who: string, ep: NetEndpoint): string | null {
  if (!isTlsError(e)) return null;
  const err = e as TlsErrno;
  const code = err.code!;
  const tls = ep.tls ?? {};
  const untrusted = UNTRUSTED[code];
  if (untrusted !== undefined) {
    const fix = tls.caFile !== undefined ? `the CA in ${tls.caFile} did not issue it` : 'give the CA that issued it with --tls-ca';
    return `TLS: certificate of ${who} not trusted (${untrusted}; ${fix})`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = err.cert?.subjectaltname ?? 'no subjectAltName';
    return `TLS: certificate of ${who} is not valid for "${ep.host}" (it names ${names}); connect by one of those names`;
  }
  if (code === 'CERT_HAS_EXPIRED') return `TLS: certificate of ${who} has expired${validity(err.cert)}`;
  if (code === 'CERT_NOT_YET_VALID') return `TLS: certificate of ${who} is not valid yet${validity(err.cert)}`;
  if (CERT_CHECKS.has(code)) return `TLS: certificate of ${who} refused (${err.message})`;
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || (code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' && tls.cert === undefined)) {
    return `TLS: ${who} requires a client certificate (give --tls-cert and --tls-key)`;
  }
  if (CLIENT_CERT_REFUSED.has(code)) return `TLS: ${who} refused the client certificate (${reason(err)})`;
  if (NOT_TLS.has(code)) return `TLS: ${who} does not answer in TLS (${reason(err)}): a plain port? use redis:// or the server's tls-port`;
  return `TLS: handshake with ${who} failed (${reason(err)})`;
}

/** Errors that only say the peer went away. */
const DROPPED = new Set(['ECONNRESET', 'EPIPE']);

/**
 * For a TLS connection that ended (`e` a reset, or null for a plain close) before the server
 * answered anything: over TLS 1.3 the server checks the client certificate only after the
 * client's side of the handshake is done, and its refusal (an alert, then a close) can reach
 * the client as a bare reset. That is what such an early end almost always means, but it is a
 * guess (a server going down does the same): callers decide whether to retry. Null otherwise.
 */
export function describeEarlyTlsClose(e: unknown, who: string, ep: NetEndpoint): string | null {
  if (ep.tls === undefined || (e !== null && !DROPPED.has((e as NodeJS.ErrnoException)?.code ?? ''))) return null;
  const guess = ep.tls.cert === undefined ? 'it probably requires a client certificate (give --tls-cert and --tls-key)' : 'it probably refused the client certificate';
  return `TLS: ${who} closed the connection after the handshake, before any reply: ${guess}`;
}

/** The text for a socket error: the TLS explanation, else the errno code (ECONNREFUSED...) or message. */
export function socketErrorText(e: unknown, who: string, ep: NetEndpoint): string {
  const tls = describeTlsError(e, who, ep);
  if (tls !== null) return tls;
  const err = e as NodeJS.ErrnoException;
  return `${err?.code ?? err?.message ?? String(e)}${plainResetHint(e, ep)}`;
}

/** A TLS port resets a client that speaks plain RESP to it: say so when a plain connection is reset. */
export function plainResetHint(e: unknown, ep: NetEndpoint): string {
  return ep.tls === undefined && (e as NodeJS.ErrnoException | null)?.code === 'ECONNRESET' ? ' (if the port takes TLS only, use rediss://)' : '';
}

function reason(e: TlsErrno): string {
  return e.reason ?? e.code ?? e.message;
}

function validity(cert: PeerCertificate | undefined): string {
  return cert?.valid_from ? ` (valid ${cert.valid_from} to ${cert.valid_to})` : '';
}

/**
 * For a connect timeout: a TLS client that reached the port but got no handshake answer is
 * most likely talking to a plain RESP port (which waits for a command line that never comes).
 */
export function handshakeTimeoutHint(socket: Socket, ep: NetEndpoint): string {
  if (ep.tls === undefined || socket.connecting) return '';
  return ' (TCP connected, but no TLS handshake answer: a plain port? use redis://)';
}
