/** The standalone writer's socket (and how its failures are explained) and the callers waiting on its progress. */
import type { Socket } from 'node:net';
import { connectSocket } from '../net/tls.js';
import { describeEarlyTlsClose, describeTlsError, handshakeTimeoutHint, socketErrorText } from '../net/tls-errors.js';
import { TargetError } from './errors.js';
import type { TargetEndpoint } from './types.js';

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * The socket to the target, and what explaining its failures needs: the endpoint (TLS hints)
 * and whether any reply came yet (an end before that, over TLS, is most likely a refused client
 * certificate). Kept apart from the writer's bookkeeping of units and replies.
 */
export class TargetSocket {
  readonly socket: Socket;
  /** Set once the connection can carry commands (for TLS: handshake and certificate checks passed). */
  readonly ready: Promise<void>;
  /** Any reply yet. */
  gotData = false;
  private readonly endpoint: TargetEndpoint;
  /** "host:port", as in every message of the writer. */
  private readonly address: string;

  constructor(endpoint: TargetEndpoint, address: string) {
    this.endpoint = endpoint;
    this.address = address;
    let onReady!: () => void;
    this.ready = new Promise((resolve) => (onReady = resolve));
    this.socket = connectSocket(endpoint, () => onReady());
  }

  /** Why a connect attempt may have timed out (TLS handshake details), or ''. */
  timeoutHint(): string {
    return handshakeTimeoutHint(this.socket, this.endpoint);
  }

  /** A TLS failure explained on its own line; other socket errors as `context: ECODE`. */
  error(e: Error | null, context: string, suffix = ''): TargetError {
    const who = `target ${this.address}`;
    const tls = describeTlsError(e, who, this.endpoint) ?? (this.gotData ? null : describeEarlyTlsClose(e, who, this.endpoint));
    if (tls !== null || e === null) return new TargetError(tls ?? `${context}${suffix}`, e === null ? undefined : { cause: e });
    return new TargetError(`${context}: ${socketErrorText(e, this.address, this.endpoint)}${suffix}`, { cause: e });
  }
}

/**
 * Callers waiting on the writer's progress: flush() until every unit submitted before it is
 * answered, waitDrain() until the in-flight bytes fall to half the budget. Settled as units
 * complete, all rejected when the writer fails or closes.
 */
export class WriterWaiters {
  private flushWaiters: Waiter[] = [];
  private drainWaiters: Waiter[] = [];

  /** Resolves once the unit numbered `seq` (and every one before it) completed. */
  flush(seq: number): Promise<void> {
    return new Promise((resolve, reject) => this.flushWaiters.push({ seq, resolve, reject }));
  }

  /** Resolves at the first completion that leaves the in-flight bytes at or under half the budget. */
  drain(): Promise<void> {
    return new Promise((resolve, reject) => this.drainWaiters.push({ seq: 0, resolve, reject }));
  }

  /** Unit `seq` completed, leaving `inflight` bytes in flight. */
  completed(seq: number, inflight: number, maxInflight: number): void {
    while (this.flushWaiters.length > 0 && this.flushWaiters[0]!.seq <= seq) this.flushWaiters.shift()!.resolve();
    if (this.drainWaiters.length > 0 && inflight <= maxInflight / 2) {
      for (const w of this.drainWaiters.splice(0)) w.resolve();
    }
  }

  rejectAll(err: Error): void {
    for (const w of this.flushWaiters.splice(0)) w.reject(err);
    for (const w of this.drainWaiters.splice(0)) w.reject(err);
  }
}
