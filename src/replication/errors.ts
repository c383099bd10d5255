/**
 * Replication-specific error flavours. `SourceError` (src/errors.ts) says the source is
 * unusable; `retryable` says whether trying again later can help (network failures, a
 * source that is loading or has no master link) or not (bad credentials, missing
 * permissions, a refused PSYNC).
 */
import { SourceError } from '../errors.js';
import { describeEarlyTlsClose, describeTlsError, socketErrorText } from '../net/tls-errors.js';
import type { NetEndpoint } from '../net/tls.js';
import { endpointLabel } from './url.js';

export class ReplicationSourceError extends SourceError {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.retryable = retryable;
  }
}

/** True for errors after which reconnecting later may succeed. */
export function isRetryable(e: unknown): boolean {
  return e instanceof ReplicationSourceError && e.retryable;
}

/**
 * A socket error (or, `e` null, a close) on a connection to the source. TLS failures (untrusted
 * certificate, refused client certificate...) are explained on their own and are not retryable:
 * the same handshake fails the same way. `earlyClose` (the connection ended before any reply):
 * over TLS this is read as a refused client certificate (see describeEarlyTlsClose), retryable
 * or not as the caller says. Anything else is `context: ECODE`, retryable.
 */
export function sourceSocketError(e: unknown, context: string, ep: NetEndpoint, earlyClose?: 'fatal' | 'retryable'): ReplicationSourceError {
  const who = `source ${endpointLabel(ep)}`;
  const cause = e === null ? undefined : { cause: e };
  const tls = describeTlsError(e, who, ep);
  if (tls !== null) return new ReplicationSourceError(tls, false, cause);
  const guess = earlyClose === undefined ? null : describeEarlyTlsClose(e, who, ep);
  if (guess !== null) return new ReplicationSourceError(guess, earlyClose === 'retryable', cause);
  // Once the server has answered (earlyClose undefined), a reset is no hint of a TLS-only port.
  const answered = earlyClose === undefined && (e as NodeJS.ErrnoException | null)?.code === 'ECONNRESET';
  const why = e === null ? 'closed the connection' : answered ? 'ECONNRESET (the source reset the connection)' : socketErrorText(e, endpointLabel(ep), ep);
  return new ReplicationSourceError(`${context}: ${why}`, true, cause);
}
