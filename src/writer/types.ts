/** Public types of the target writers (standalone and cluster). */
import type { TlsSettings } from '../net/tls.js';
import type { Logger } from '../observe/logger.js';
import type { Arg } from '../resp/encode.js';
import type { TargetCommandError, TargetError, TargetExecAbortError } from './errors.js';

export interface TargetEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** Present: TLS (`rediss://`); the cluster writer uses it for every node. */
  tls?: TlsSettings;
}

/**
 * One batch of commands that completes (is applied) as a whole.
 * The payload is written to the socket as is and must not be mutated after `submit`.
 */
export interface WriteUnit {
  /** RESP-encoded commands (one Buffer may hold one or several commands; `count` says how many replies to expect). */
  payload: Buffer | Buffer[];
  /** Number of commands in `payload` (= replies expected, not counting the MULTI/EXEC the writer adds). */
  count: number;
  /** Wrap in MULTI ... EXEC (the writer adds MULTI/EXEC; the payload must not contain them). */
  atomic?: boolean;
  /** Replication offset this unit completes; reported through 'applied' once its replies are all in. */
  offset?: number;
  /**
   * Atomic units: called with EXEC's array of replies before 'applied'. The session reads in it
   * the previous checkpoint that its GETSET replaced.
   */
  onExecReply?: (replies: unknown[]) => void;
}

export interface TargetInfo {
  /** run_id of the server (of the seed node for a cluster); '' when INFO hides it. */
  runId: string;
  /** master_replid: its replication history ('' when INFO replication is refused). */
  replid: string;
  /** Server version (valkey_version for Valkey, else redis_version). */
  version: string;
  major: number;
  minor: number;
  /** Highest RDB version the target can load (decides whether RESTORE of a source DUMP payload is possible). */
  rdbVersion: number;
  valkey: boolean;
  cluster: boolean;
  /** Total keys across all dbs (INFO keyspace). */
  dbsize: number;
  /** CONFIG GET databases; 16 when CONFIG is not allowed. */
  databases: number;
  /** False when `databases` is the assumed 16 (CONFIG refused): no db may then be taken as missing. */
  databasesKnown?: boolean;
  /** Loaded module names (INFO modules). */
  modules: string[];
}

export type ErrorPolicy = 'fail' | 'skip';

export interface TargetWriterOptions {
  /** Written-but-unanswered bytes above which `submit` returns false. Default 64 MiB. */
  maxInflightBytes?: number;
  /** What a command error reply does: 'fail' stops the writer, 'skip' counts, logs and goes on. Default 'fail'. */
  onError?: ErrorPolicy;
  logger?: Logger;
  /** TCP connect + AUTH + probe deadline. Default 10 s. */
  connectTimeoutMs?: number;
  /** CLIENT SETNAME for every connection (lets a new instance of the sync find and fence an old one). */
  clientName?: string;
}

export interface WriterStats {
  /** Commands whose reply arrived (errors included). */
  commands: number;
  /** Units fully answered. */
  units: number;
  /** Command error replies (skipped or fatal). */
  errors: number;
  /** Bytes written to the socket. */
  bytes: number;
}

export interface TargetWriterEvents {
  applied: [offset: number];
  commandError: [err: TargetCommandError];
  error: [err: TargetError];
}

/**
 * A unit whose one big command is written as its bytes arrive (a stream command with a big
 * argument), then ended with the commands after it (the checkpoint). Nothing else may be submitted
 * to the writer until it is ended. Its bytes are not kept: it cannot be sent again.
 */
export interface StreamedUnit {
  /** Writes the next bytes of the command; false: await drained() before writing more. */
  write(piece: Buffer): boolean;
  /** Resolves once the socket took most of what was written; rejects with TargetError if the writer failed. */
  drained(): Promise<void>;
  /**
   * The command is complete. `payload` is the unit as error reports and recovery read it: its
   * command as `described` at open (not written: its bytes went already), then the commands that
   * end the unit, written now (`count` commands in all). The unit completes `offset`. Returns false
   * like submit() over the in-flight budget.
   */
  end(e: { payload: Buffer[]; count: number; offset: number; onExecReply?: (replies: unknown[]) => void }): boolean;
}

/** One command on one server (the cluster writer has one per master). */
export type NodeCall = (args: readonly Arg[]) => Promise<unknown>;

/**
 * What the sync asks of a target writer, standalone or cluster: one interface, so that no
 * caller narrows a union by `instanceof`. Topology questions have a standalone answer too
 * (one master, every unit in one "slot").
 */
export interface UnitWriter {
  readonly info: TargetInfo;
  readonly stats: WriterStats;
  /** "host:port" of each master (the server itself for a standalone target). */
  readonly masters: string[];
  /** Units submitted and not fully answered yet. */
  readonly pendingUnits: number;
  /** Queues a unit; false: over the in-flight budget, await waitDrain() before the next one. */
  submit(unit: WriteUnit): boolean;
  waitDrain(): Promise<void>;
  /** Resolves once everything submitted is answered. */
  flush(): Promise<void>;
  /** One command outside the pipeline's units (its reply). */
  call(args: readonly Arg[]): Promise<unknown>;
  /** One caller per master. */
  nodeCalls(): NodeCall[];
  /** Each master with the first slot it serves (empty for a standalone target). */
  masterSlots(): { addr: string; slot: number; call: NodeCall }[];
  /**
   * Starts a unit whose command is written in pieces, `head` first (a standalone target only: a
   * cluster writer throws). `described` stands for the command in error reports (its name and key).
   */
  openStreamed(head: Buffer, atomic: boolean, described: Buffer): StreamedUnit;
  /** The slot an atomic unit runs in, or null when it spans several (never for a standalone target). */
  atomicSlot(unit: Pick<WriteUnit, 'payload' | 'count'>): number | null;
  setMaxInflight(bytes: number): void;
  close(): Promise<void>;
  destroy(): void;
  on<E extends keyof TargetWriterEvents>(event: E, listener: (...args: TargetWriterEvents[E]) => void): this;
}

/** Internal hooks for the cluster writer (redirect handling). */
export interface WriterHooks {
  /**
   * Called for every command error in a plain unit before the error policy. Returning true means
   * the error was handled (e.g. MOVED re-sent elsewhere): it is neither counted nor reported.
   */
  interceptError?: (err: TargetCommandError, args: Buffer[] | undefined) => boolean;
  /**
   * Under 'skip', called when an atomic unit came back -EXECABORT with the commands rejected while
   * queuing (`err.rejected`). The unit is no longer pending and was not applied (no 'applied' for
   * it); returning true means the caller deals with it and the writer goes on with the next
   * units, false makes the abort fatal as without the hook.
   */
  onExecAbort?: (err: TargetExecAbortError) => boolean;
}
