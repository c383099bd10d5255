/**
 * Replication-specific error flavours. `SourceError` (src/errors.ts) says the source is
 * unusable; `retryable` says whether trying again later can help (network failures, a
 * source that is loading or has no master link) or not (bad credentials, missing
 * permissions, a refused PSYNC).
 */
import { SourceError } from '../errors.js';
import { describeTlsError, socketErrorText } from '../net/tls-errors.js';
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
 * A socket error on a connection to the source. TLS failures (untrusted certificate, refused
 * client certificate...) are explained on their own and are not retryable: the same handshake
 * fails the same way. Anything else is `context: ECODE`, retryable. `e` null: closed without error.
 */
export function sourceSocketError(e: unknown, context: string, ep: NetEndpoint, beforeFirstReply = false): ReplicationSourceError {
  const tls = describeTlsError(e, `source ${endpointLabel(ep)}`, ep, beforeFirstReply);
  if (tls !== null) return new ReplicationSourceError(tls, false, { cause: e });
  const why = e === null ? 'closed the connection' : socketErrorText(e, endpointLabel(ep), ep);
  return new ReplicationSourceError(`${context}: ${why}`, true, e === null ? undefined : { cause: e });
}
