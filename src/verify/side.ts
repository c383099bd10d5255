/**
 * One side of a verify (the source or the target): ioredis connections, one per database so
 * no SELECT state is shared between concurrent checks, and error mapping. A reply error is
 * the server's answer and is returned to the caller; anything else (refused connection,
 * closed socket, timeout) means the side is unusable and becomes SourceError / TargetError,
 * so the CLI exits 4 or 5. A Redis Cluster side (found by `open`) routes each command to the
 * master of its key's slot (ClusterRouter); a standalone one goes straight to its connection.
 */
import { Redis } from 'ioredis';
import { SourceError, TargetError, type ReplicantError } from '../errors.js';
import { tlsConnectOptions } from '../net/tls.js';
import { describeEarlyTlsClose, describeTlsError, plainResetHint } from '../net/tls-errors.js';
import type { Logger } from '../observe/logger.js';
import { endpointLabel, type SourceEndpoint } from '../replication/url.js';
import { splitAddress } from '../writer/cluster/topology.js';
import { ClusterRouter } from './cluster-router.js';
import type { Arg } from '../resp/encode.js';

export type SideKind = 'source' | 'target';

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
  /** A cluster's masters by "host:port" (db 0 only), opened on first use. */
  private readonly nodes = new Map<string, Promise<Redis>>();
  private router: ClusterRouter | null = null;

  constructor(
    readonly kind: SideKind,
    private readonly endpoint: SourceEndpoint,
    private readonly logger: Logger,
  ) {
    this.label = endpointLabel(endpoint);
  }

  /**
   * Connects, and finds out whether the side is a Redis Cluster (`cluster_enabled:1`): then its
   * masters are discovered and every later command is routed to the master of its key's slot.
   */
  async open(): Promise<void> {
    const c = await this.client(0);
    if (this.router !== null) return;
    let info: unknown;
    try {
      info = await this.deadline(c.call('INFO', 'cluster'), 'INFO cluster');
    } catch (e) {
      // A server refusing INFO is taken for what it most likely is: a standalone one.
      if (isReplyError(e)) return;
      throw this.fail(e, 'INFO cluster');
    }
    if (!/^cluster_enabled:1\b/m.test(String(info))) return;
    const router = new ClusterRouter({ exec: (addr, cmds) => this.execOn(addr, cmds) }, `${this.endpoint.host}:${this.endpoint.port}`, (e, what) => this.fail(e, what));
    await router.refresh();
    this.router = router;
    this.logger.info({ side: this.kind, masters: router.masters }, `the ${this.kind} is a cluster of ${router.masters.length} masters`);
  }

  /** The cluster's masters ("host:port"), or null for a standalone server. */
  get clusterMasters(): readonly string[] | null {
    return this.router?.masters ?? null;
  }

  /** The lowest slot each master of a cluster serves (null when standalone). */
  clusterFirstSlots(): number[] | null {
    return this.router?.firstSlots() ?? null;
  }

  /** The connection for `db`, opened on first use. */
  client(db: number): Promise<Redis> {
    return this.connection(this.endpoint.host, this.endpoint.port, db);
  }

  private async connection(host: string, port: number, db: number): Promise<Redis> {
    const seed = host === this.endpoint.host && port === this.endpoint.port;
    const known = seed ? this.clients.get(db) : undefined;
    if (known) return known;
    const c = new Redis({
      host,
      port,
      username: this.endpoint.username,
      password: this.endpoint.password,
      db,
      ...(this.endpoint.tls === undefined ? {} : { tls: tlsConnectOptions(host, this.endpoint.tls) }),
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
      this.logger.debug({ side: this.kind, node: `${host}:${port}`, db, err: e.message }, 'connection error');
    });
    if (seed) this.clients.set(db, c);
    try {
      await c.connect();
    } catch (e) {
      if (seed) this.clients.delete(db);
      c.disconnect();
      // "Connection is closed." hides the reason (ECONNREFUSED, WRONGPASS...) given by the error event.
      throw this.fail(lastError ?? e, seed ? `connect (db ${db})` : `connect to cluster node ${host}:${port}`, true);
    }
    return c;
  }

  /** A cluster master's connection (one per node, shared). */
  private node(addr: string): Promise<Redis> {
    let c = this.nodes.get(addr);
    if (c === undefined) {
      const { host, port } = splitAddress(addr);
      c = this.connection(host, port, 0);
      c.catch(() => this.nodes.delete(addr));
      this.nodes.set(addr, c);
    }
    return c;
  }

  private async execOn(addr: string, commands: Arg[][]): Promise<unknown[]> {
    return this.exec(await this.node(addr), commands);
  }

  /** A cluster holds db 0 only: a command for another db is a bug of the caller. */
  private clusterDb(db: number, what: string): ClusterRouter | null {
    if (this.router !== null && db !== 0) throw this.fail(new Error(`a cluster has only db 0, not db ${db}`), what);
    return this.router;
  }

  /** One command; Buffers for bulk replies. Reply errors throw a ServerReply. */
  async call(db: number, args: Arg[]): Promise<unknown> {
    if (this.clusterDb(db, String(args[0])) !== null) {
      const [r] = await this.pipeline(0, [args]);
      if (r instanceof ServerReply) throw r;
      return r;
    }
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

  /** Many commands in one round trip (on a cluster, one per node); each result is the reply or a ServerReply. */
  async pipeline(db: number, commands: Arg[][]): Promise<unknown[]> {
    if (commands.length === 0) return [];
    const router = this.clusterDb(db, `a pipeline of ${commands.length} commands`);
    if (router !== null) return router.pipeline(commands);
    return this.exec(await this.client(db), commands);
  }

  private async exec(c: Redis, commands: Arg[][]): Promise<unknown[]> {
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

  /**
   * One SCAN page of `db`; `extra`: MATCH / COUNT / TYPE. On a cluster the cursor walks every
   * master in turn (and there are no keys outside db 0).
   */
  async scanPage(db: number, cursor: string, extra: Arg[]): Promise<[string, Buffer[]]> {
    if (this.router !== null) {
      if (db !== 0) return ['0', []];
      try {
        return await this.router.scanPage(cursor, extra);
      } catch (e) {
        throw this.fail(e, 'SCAN');
      }
    }
    const r = await this.call(db, ['SCAN', cursor, ...extra]).catch((e: unknown) => {
      throw this.fail(e, 'SCAN');
    });
    const [next, keys] = r as [Buffer, Buffer[]];
    return [next.toString(), keys];
  }

  /** How many of `keys` exist in `db` (EXISTS; on a cluster one per key, as they span slots). */
  async existsCount(db: number, keys: Buffer[]): Promise<number> {
    if (keys.length === 0) return 0;
    if (this.router === null) {
      return Number(await this.call(db, ['EXISTS', ...keys]).catch((e: unknown) => {
        throw this.fail(e, 'EXISTS');
      }));
    }
    if (db !== 0) return 0;
    let n = 0;
    for (const r of await this.pipeline(0, keys.map((k) => ['EXISTS', k]))) {
      if (r instanceof ServerReply) throw this.fail(r, 'EXISTS');
      n += Number(r);
    }
    return n;
  }

  /** Indices of `keys` by the cluster master that holds them (a standalone side: null, all on one). */
  groupByNode(keys: readonly Buffer[]): number[][] | null {
    return this.router === null ? null : this.router.groupByNode(keys);
  }

  /** A keyless command on every master of a cluster, or on the server: one reply (or ServerReply) each. */
  async everyNode(db: number, args: Arg[]): Promise<unknown[]> {
    const router = this.clusterDb(db, String(args[0]));
    if (router === null) return [await this.tryCall(db, args)];
    return Promise.all(router.masters.map(async (m) => (await this.execOn(m, [args]))[0]));
  }

  /**
   * Up to `n` RANDOMKEY replies (keys, null for an empty db, or a ServerReply), spread over a
   * cluster's masters in proportion to their sizes (DBSIZE).
   */
  async randomKeys(db: number, n: number): Promise<unknown[]> {
    const router = this.clusterDb(db, 'RANDOMKEY');
    if (router === null) return this.pipeline(db, Array.from({ length: n }, () => ['RANDOMKEY']));
    const masters = [...router.masters];
    const sizes = (await Promise.all(masters.map(async (m) => (await this.execOn(m, [['DBSIZE']]))[0]))).map((s) => (typeof s === 'number' ? s : 0));
    const total = sizes.reduce((a, b) => a + b, 0);
    const parts = await Promise.all(
      masters.map((m, i) => {
        const share = total === 0 ? 0 : Math.min(sizes[i]!, Math.ceil((n * sizes[i]!) / total));
        return share === 0 ? [] : this.execOn(m, Array.from({ length: share }, () => ['RANDOMKEY']));
      }),
    );
    return parts.flat().slice(0, n);
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
    for (const c of this.nodes.values()) c.then((r) => r.disconnect(), () => {});
    this.nodes.clear();
  }
}
