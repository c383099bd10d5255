/**
 * The sync's connections to the target: the data writer (pipelined units), and a control
 * connection for the lease and the registry that never waits behind the data pipeline. Both
 * carry the sync's client name, so that a new holder of the lease can fence an old one.
 * A standalone server that turns out to be a cluster is reopened with the cluster writer.
 */
import { ReplicantError, TargetError } from '../../errors.js';
import type { Logger } from '../../observe/logger.js';
import type { Arg } from '../../resp/encode.js';
import { endpointLabel, type SourceEndpoint } from '../../replication/url.js';
import { fetchCommandTable, type CommandTable } from '../../commands/table.js';
import { ClusterTargetWriter, TargetCommandError, TargetWriter, targetState, type TargetExecAbortError, type TargetState, type UnitWriter } from '../../writer/index.js';
import type { OnErrorPolicy } from '../options.js';
import { Reconnect } from '../run-control.js';

export interface OpenWriterOptions {
  maxInflightBytes?: number;
  onError: OnErrorPolicy;
  logger: Logger;
  clientName?: string;
  /** Under skip, an aborted atomic unit is handed here (standalone writer only). */
  onExecAbort?: (e: TargetExecAbortError) => boolean;
  /** Already known to be a cluster: no standalone probe first. */
  cluster?: boolean;
  /** Connect + AUTH + probe deadline of each connection (--connect-timeout). */
  connectTimeoutMs?: number;
}

/** Connects to the target, standalone or cluster (found by its probe); TargetError when it cannot. */
export async function openTargetWriter(ep: SourceEndpoint, o: OpenWriterOptions): Promise<UnitWriter> {
  const at = { host: ep.host, port: ep.port, username: ep.username, password: ep.password, tls: ep.tls };
  const opts = { maxInflightBytes: o.maxInflightBytes, onError: o.onError, logger: o.logger, clientName: o.clientName, connectTimeoutMs: o.connectTimeoutMs };
  try {
    if (o.cluster === true) return await ClusterTargetWriter.connect(at, opts);
    const w = await TargetWriter.connect(at, opts, o.onExecAbort === undefined ? {} : { onExecAbort: o.onExecAbort });
    if (!w.info.cluster) return w;
    w.destroy();
    return await ClusterTargetWriter.connect(at, opts);
  } catch (e) {
    if (e instanceof ReplicantError) throw e;
    throw new TargetError(`target ${endpointLabel(ep)}: ${(e as Error).message}`, { cause: e });
  }
}

export interface WriterEvents {
  applied(offset: number): void;
  commandError(e: TargetCommandError): void;
  /** The data writer failed (`failure` is set first). */
  failed(e: Error): void;
  onExecAbort?(e: TargetExecAbortError): boolean;
}

export class TargetConnections {
  /** The data writer (null between a lost connection and its replacement). */
  writer: UnitWriter | null = null;
  /** The target is a Redis Cluster: db 0 only, no cross-slot transactions, checkpoint in a file. */
  cluster = false;
  /** The target's commands: stream commands it would refuse are caught before MULTI. */
  commandTable: CommandTable | null = null;
  /** Why the current data writer failed. */
  failure: Error | null = null;
  /** A failure that no reconnect can cure (set by the unit-abort recovery): thrown as is. */
  fatal: TargetError | null = null;
  private control: UnitWriter | null = null;
  private wake: (() => void) | null = null;
  /** The last wait after the target refused writes for a passing state; 0 once a unit is applied. */
  private unavailableDelayMs = 0;

  constructor(
    readonly ep: SourceEndpoint,
    private readonly opts: { maxInflightBytes: number; onError: OnErrorPolicy; logger: Logger; clientName: string; connectTimeoutMs: number },
    private readonly events: WriterEvents,
  ) {}

  get label(): string {
    return endpointLabel(this.ep);
  }

  /** Opens the data writer (and learns whether the target is a cluster). */
  async open(): Promise<UnitWriter> {
    const o = this.opts;
    const writer = await openTargetWriter(this.ep, { ...o, cluster: this.cluster, ...(o.onError === 'skip' && this.events.onExecAbort ? { onExecAbort: this.events.onExecAbort } : {}) });
    if (writer.info.cluster) this.cluster = true;
    writer.on('applied', (offset) => {
      this.unavailableDelayMs = 0;
      this.events.applied(offset);
    });
    writer.on('commandError', (e) => this.events.commandError(e));
    writer.on('error', (e) => {
      this.failure = e;
      this.wake?.();
      this.events.failed(e);
    });
    this.commandTable = await fetchCommandTable((args) => writer.call(args));
    if (this.commandTable === null) o.logger.info('COMMAND is not available on the target: stream commands are not checked against its command table');
    this.writer = writer;
    this.failure = null;
    return writer;
  }

  /** How long to wait before trying a target that refused writes for a passing state: doubles until a unit is applied. */
  unavailableBackoff(minMs: number, maxMs: number): number {
    this.unavailableDelayMs = this.unavailableDelayMs === 0 ? minMs : Math.min(this.unavailableDelayMs * 2, maxMs);
    return this.unavailableDelayMs;
  }

  /** The data writer, which must be open. */
  get data(): UnitWriter {
    if (this.writer === null) throw new Reconnect('target', `target ${this.label}: not connected`);
    return this.writer;
  }

  dropWriter(): void {
    this.writer?.destroy();
    this.writer = null;
  }

  /** The lease and registry connection (opened on first use, and again after it failed). */
  async controlWriter(): Promise<UnitWriter> {
    if (this.control !== null) return this.control;
    const w = await openTargetWriter(this.ep, { onError: 'fail', logger: this.opts.logger, clientName: this.opts.clientName, cluster: this.cluster, connectTimeoutMs: this.opts.connectTimeoutMs });
    w.on('error', () => {
      if (this.control === w) this.control = null;
      w.destroy();
    });
    this.control = w;
    return w;
  }

  async controlCall(args: readonly Arg[]): Promise<unknown> {
    const w = await this.controlWriter();
    try {
      return await w.call(args);
    } catch (e) {
      // A lost connection is opened again by the next call.
      if (!(e instanceof TargetCommandError) && this.control === w) {
        this.control = null;
        w.destroy();
      }
      throw e;
    }
  }

  /** `read`'s chunk, or undefined as soon as the data writer has failed (`read` is then still pending). */
  async untilDown<T>(read: Promise<T>): Promise<T | undefined> {
    if (this.failure !== null) return undefined;
    try {
      return await Promise.race([read, new Promise<undefined>((resolve) => (this.wake = () => resolve(undefined)))]);
    } finally {
      this.wake = null;
    }
  }

  /**
   * What a writer failure means: a command the target rejected under --on-error fail, or for a
   * state that needs an operator (target-state.ts), is fatal (retrying would fail again); a lost
   * connection, or a state that passes (TargetUnavailableError), is a Reconnect of the target.
   */
  classify(e: unknown): Error {
    if (this.fatal !== null) return this.fatal;
    const err = this.failure ?? (e as Error);
    const state = err instanceof TargetCommandError ? targetState(err.reply) : null;
    if (state !== null && !state.transient) return new TargetError(stuckMessage(err, state), { cause: err });
    if (err instanceof TargetCommandError && this.opts.onError === 'fail') {
      return new TargetError(`${err.message}; stopping (--on-error fail): fix the target (memory, ACL, renamed commands) and run again, or use --on-error skip to leave rejected commands out`, { cause: err });
    }
    if (err instanceof TargetCommandError) return err;
    return new Reconnect('target', `target ${this.ep.host}:${this.ep.port} failed: ${err.message}`, { cause: err });
  }

  /** Closes both connections. */
  destroy(): void {
    this.dropWriter();
    this.control?.destroy();
    this.control = null;
  }
}

/** A command refused for a target state that needs an operator: what it is and what to do. */
export function stuckMessage(err: Error, state: TargetState): string {
  return `${err.message}; the target takes no writes now (${state.code}: ${state.why}): nothing is skipped, whatever --on-error; fix it and run again (the sync resumes from its checkpoint)`;
}
