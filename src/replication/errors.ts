/**
 * Replication-specific error flavours. `SourceError` (src/errors.ts) says the source is
 * unusable; `retryable` says whether trying again later can help (network failures, a
 * source that is loading or has no master link) or not (bad credentials, missing
 * permissions, a refused PSYNC).
 */
import { SourceError } from '../errors.js';

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
