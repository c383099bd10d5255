/**
 * One side of a verify (the source or the target): ioredis connections, one per database so
 * no SELECT state is shared between concurrent checks, and error mapping. A reply error is
 * the server's answer and is returned to the caller; anything else (refused connection,
 * closed socket, timeout) means the side is unusable and becomes SourceError / TargetError,
 * so the CLI exits 4 or 5.
 */
import { Redis } from 'ioredis';
import { SourceError, TargetError, type ReplicantError } from '../errors.js';
import { tlsConnectOptions } from '../net/tls.js';
import { describeEarlyTlsClose, describeTlsError, plainResetHint } from '../net/tls-errors.js';
import type { Logger } from '../observe/logger.js';
import { endpointLabel, type SourceEndpoint } from '../replication/url.js';

export type SideKind = 'source' | 'target';
export type Arg = string | Buffer | number;

/** A server's error reply (ioredis's ReplyError), kept as a value in pipeline results. */
export class ServerReply extends Error {
  override readonly name = 'ServerReply';
}

/**
 * Long enough for DEBUG DIGEST on a big dataset; a side silent for longer is given up. One
 * timer per call or pipeline, not ioredis's commandTimeout (a timer per command costs a lot
 * of CPU when checking millions of keys).
 */
const REPLY_TIMEOUT_MS = 120_000;
const CONNECT_TIMEOUT_MS = 5_000;

export function isReplyError(e: unknown): e is Error {
  return e instanceof Error && e.name === 'ReplyError';
}

export class VerifySide {
  readonly label: string;
  private readonly clients = new Map<number, Redis>();

  constructor(
    readonly kind: SideKind,
    private readonly endpoint: SourceEndpoint,
    private readonly logger: Logger,
  ) {
    this.label = endpointLabel(endpoint);
  }

  /** The connection for `db`, opened on first use. */
  async client(db: number): Promise<Redis> {
    const known = this.clients.get(db);
    if (known) return known;
    const c = new Redis({
      host: this.endpoint.host,
      port: this.endpoint.port,
      username: this.endpoint.username,
      password: this.endpoint.password,
      db,
      ...(this.endpoint.tls === undefined ? {} : { tls: tlsConnectOptions(this.endpoint.host, this.endpoint.tls) }),
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Closing a connection still being made waits this long before destroying the socket.
      disconnectTimeout: 100,
      maxRetriesPerRequest: 1,
      // A short blip after the connection worked is retried; a side that cannot be reached
      // at all, or stays away, ends the verify with exit 4/5.
      retryStrategy: (times: number) => (!ready || times > 3 ? null : 200 * times),
    });
    let ready = false;
    let lastError: Error | undefined;
    c.once('ready', () => (ready = true));
    c.on('error', (e: Error) => {
      lastError = e;
      this.logger.debug({ side: this.kind, db, err: e.message }, 'connection error');
    });
    this.clients.set(db, c);
    try {
      await c.connect();
    } catch (e) {
      this.clients.delete(db);
      c.disconnect();
      // "Connection is closed." hides the reason (ECONNREFUSED, WRONGPASS...) given by the error event.
      throw this.fail(lastError ?? e, `connect (db ${db})`, true);
    }
    return c;
  }

  /** One command; Buffers for bulk replies. Reply errors throw a ServerReply. */
  async call(db: number, args: Arg[]): Promise<unknown> {
    const c = await this.client(db);
    try {
      return await this.deadline(c.callBuffer(String(args[0]), args.slice(1)), String(args[0]));
    } catch (e) {
      if (isReplyError(e)) throw new ServerReply(e.message);
      throw this.fail(e, String(args[0]));
    }
  }

  /** Like `call`, but a reply error comes back as a ServerReply value. */
  async tryCall(db: number, args: Arg[]): Promise<unknown> {
    try {
      return await this.call(db, args);
    } catch (e) {
      if (e instanceof ServerReply) return e;
      throw e;
    }
  }

  /** Many commands in one round trip; each result is the reply or a ServerReply. */
  async pipeline(db: number, commands: Arg[][]): Promise<unknown[]> {
    if (commands.length === 0) return [];
    const c = await this.client(db);
    const p = c.pipeline();
    for (const cmd of commands) p.callBuffer(String(cmd[0]), cmd.slice(1));
    let results: [Error | null, unknown][] | null;
    try {
      results = await this.deadline(p.exec(), `a pipeline of ${commands.length} commands`);
    } catch (e) {
      throw this.fail(e, `a pipeline of ${commands.length} commands`);
    }
    if (results === null) throw this.fail(new Error('the pipeline was discarded'), `a pipeline of ${commands.length} commands`);
    return results.map(([err, value], i) => {
      if (err === null) return value;
      if (isReplyError(err)) return new ServerReply(err.message);
      throw this.fail(err, String(commands[i]![0]));
    });
  }

  private deadline<T>(p: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply to ${what} within ${REPLY_TIMEOUT_MS / 1000} s`)), REPLY_TIMEOUT_MS);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  /** `beforeReady`: the connection never answered (see describeTlsError). */
  fail(e: unknown, what: string, beforeReady = false): ReplicantError {
    if (e instanceof SourceError || e instanceof TargetError) return e;
    const who = `${this.kind} ${this.label}`;
    // ioredis reports a close without an error event as "Connection is closed.".
    const early = beforeReady ? describeEarlyTlsClose((e as Error)?.message === 'Connection is closed.' ? null : e, who, this.endpoint) : null;
    const msg = describeTlsError(e, who, this.endpoint) ?? early ?? `${this.kind} ${this.label}: ${what} failed: ${(e as Error)?.message ?? String(e)}${plainResetHint(e, this.endpoint)}`;
    return this.kind === 'source' ? new SourceError(msg, { cause: e }) : new TargetError(msg, { cause: e });
  }

  close(): void {
    for (const c of this.clients.values()) c.disconnect();
    this.clients.clear();
  }
}
