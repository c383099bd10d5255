/**
 * Standalone target writer: one pipelined connection. Units are written as they are submitted
 * (small ones gathered into larger socket writes), replies are counted against a FIFO of units,
 * and a unit's `offset` is reported ('applied', `appliedOffset`) once all its replies are in.
 *
 * Command errors are attributed to the command that produced them, and EXEC's reply is read, in
 * exec-reply.ts.
 *
 * Atomic units (MULTI ... EXEC): a command rejected while queuing makes EXEC reply -EXECABORT and
 * nothing of the unit is applied. Later units are already on the wire by then, so the writer cannot
 * re-send the unit without the offending command in order: an EXECABORT is fatal ('error') unless,
 * under 'skip', the caller takes the unit back through `WriterHooks.onExecAbort` (the connection
 * then stays up, so every later unit's outcome is still known).
 */
import { EventEmitter } from 'node:events';
import RedisParser from 'redis-parser';
import { encodeCommand, type Arg } from '../resp/encode.js';
import { silentLogger, type Logger } from '../observe/logger.js';
import { TargetAuthError, TargetCommandError, TargetError } from './errors.js';
import { describeUnitError, readExecReply } from './exec-reply.js';
import { TargetUnavailableError, targetState } from './target-state.js';
import { probeTarget } from './probe.js';
import { commandAt } from '../resp/request-decoder.js';
import type { ErrorPolicy, StreamedUnit, WriterHooks, TargetEndpoint, TargetInfo, TargetWriterEvents, TargetWriterOptions, UnitWriter, WriteUnit, WriterStats } from './types.js';
import { GatheredOutput } from './socket-output.js';
import { SimpleReplyScanner } from './simple-replies.js';
import { TargetSocket, WriterWaiters } from './target-socket.js';
import { PendingUnit, UnitKind, UnitQueue } from './unit-queue.js';
import { WriterStreamedUnit, type StreamedUnitHost } from './streamed-unit.js';

const MULTI = encodeCommand(['MULTI']);
const EXEC = encodeCommand(['EXEC']);
/** Individual skipped-error log lines before switching to debug level. */
const WARN_LOG_LIMIT = 100;

type State = 'connecting' | 'open' | 'closing' | 'failed' | 'closed';

export class TargetWriter extends EventEmitter<TargetWriterEvents> implements UnitWriter {
  /** Probed at connect. */
  info!: TargetInfo;
  readonly stats: WriterStats = { commands: 0, units: 0, errors: 0, bytes: 0 };
  /** "host:port", used in every message. */
  readonly address: string;

  private readonly conn: TargetSocket;
  /** Counts +OK/:n replies straight off the chunk; hands everything else to a RedisParser. */
  private readonly replies: SimpleReplyScanner;
  private readonly queue = new UnitQueue();
  private maxInflight: number;
  private readonly policy: ErrorPolicy;
  private readonly log: Logger;
  private readonly hooks: WriterHooks;
  private readonly clientName: string | undefined;
  private state: State = 'connecting';
  private failure: TargetError | undefined;
  private inflight = 0;
  private seq = 0;
  private applied: number | undefined;
  private readonly out: GatheredOutput;
  private readonly waiters = new WriterWaiters();

  /** Connects, authenticates and probes the target. Rejects with TargetError. */
  static async connect(endpoint: TargetEndpoint, opts: TargetWriterOptions = {}, hooks: WriterHooks = {}): Promise<TargetWriter> {
    const w = new TargetWriter(endpoint, opts, hooks);
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TargetError(`target ${w.address}: no connection (connect, AUTH and probe) within ${waitText(timeoutMs)}${opts.connectTimeoutMs === undefined ? '' : ' (--connect-timeout)'}${w.conn.timeoutHint()}`)), timeoutMs);
    });
    try {
      await Promise.race([w.open(endpoint), deadline]);
      return w;
    } catch (e) {
      w.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private constructor(endpoint: TargetEndpoint, opts: TargetWriterOptions, hooks: WriterHooks) {
    super();
    this.address = `${endpoint.host}:${endpoint.port}`;
    this.maxInflight = opts.maxInflightBytes ?? 64 * 1024 * 1024;
    this.policy = opts.onError ?? 'fail';
    this.log = (opts.logger ?? silentLogger()).child({ target: this.address });
    this.hooks = hooks;
    this.clientName = opts.clientName;
    const parser = new RedisParser({
      returnBuffers: false,
      returnReply: (reply: unknown) => this.onReply(reply),
      returnError: (err: Error) => this.onErrorReply(err.message),
      returnFatalError: (err: Error) => this.fail(new TargetError(`target ${this.address}: unparsable reply (${err.message})`, { cause: err })),
    });
    this.replies = new SimpleReplyScanner(parser, {
      acceptsSimple: () => this.acceptsSimple(),
      simpleReply: () => this.simpleReply(),
    });
    this.conn = new TargetSocket(endpoint, this.address);
    this.out = new GatheredOutput(this.conn.socket);
  }

  private async open(endpoint: TargetEndpoint): Promise<void> {
    const s = this.conn.socket;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(this.conn.error(e, `cannot connect to target ${this.address}`));
      s.once('error', onError);
      void this.conn.ready.then(() => {
        s.off('error', onError);
        resolve();
      });
    });
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('error', (e) => this.fail(this.conn.error(e, `target ${this.address}: connection error`, this.pendingSummary())));
    s.on('close', () => this.onClose());
    this.state = 'open';
    if (endpoint.password !== undefined && endpoint.password !== '') {
      const auth = endpoint.username ? ['AUTH', endpoint.username, endpoint.password] : ['AUTH', endpoint.password];
      try {
        await this.call(auth);
      } catch (e) {
        const as = endpoint.username ? ` as "${endpoint.username}"` : '';
        // An error reply is a refusal of these credentials; anything else (a lost connection) may pass.
        if (e instanceof TargetCommandError) throw new TargetAuthError(`target ${this.address}: authentication${as} failed: ${e.reply}`);
        throw new TargetError(`target ${this.address}: authentication${as} failed: ${(e as Error).message}`);
      }
    }
    if (this.clientName !== undefined) await this.call(['CLIENT', 'SETNAME', this.clientName]).catch((e: Error) => this.log.debug({ err: e.message }, 'CLIENT SETNAME refused'));
    this.info = await probeTarget((args) => this.call(args), this.address, this.log).catch((e: unknown) => {
      if (e instanceof Error && /\bNOAUTH\b/.test(e.message)) throw new TargetAuthError(e.message, { cause: e });
      throw e;
    });
  }

  /** One caller per server behind this writer (one here; one per master for a cluster). */
  nodeCalls(): ((args: readonly Arg[]) => Promise<unknown>)[] {
    return [(args) => this.call(args)];
  }

  /** Highest offset of the units fully applied, in submission order. */
  get appliedOffset(): number | undefined {
    return this.applied;
  }

  /** Bytes written (or gathered for writing) whose replies have not all arrived. */
  get inflightBytes(): number {
    return this.inflight;
  }

  /** Units written and not yet fully answered. */
  get pendingUnits(): number {
    return this.queue.length;
  }

  get masters(): string[] {
    return [this.address];
  }

  masterSlots(): [] {
    return [];
  }

  /** A unit whose command is written as its bytes arrive (see StreamedUnit). */
  openStreamed(head: Buffer, atomic: boolean, described: Buffer): StreamedUnit {
    this.assertOpen();
    const u = new PendingUnit(atomic ? UnitKind.ATOMIC : UnitKind.PLAIN, [described], 1, Infinity, 0, undefined, ++this.seq);
    this.queue.push(u);
    const bytes = (atomic ? this.write(MULTI) : 0) + this.write(head);
    const host: StreamedUnitHost = {
      socket: this.conn.socket,
      write: (b) => this.write(b),
      flush: () => this.out.flush(),
      assertOpen: () => this.assertOpen(),
      failure: () => this.failure,
      endBytes: (a) => (a ? this.write(EXEC) : 0),
      completed: (unit, n) => {
        this.inflight += n;
        if (unit.replied >= unit.expected && this.queue.peek() === unit) this.completeHead(undefined);
        return this.inflight < this.maxInflight;
      },
    };
    return new WriterStreamedUnit(host, u, atomic, bytes);
  }

  /** A standalone server runs any transaction whole. */
  atomicSlot(): number {
    return 0;
  }

  /**
   * Queues a unit for writing. Returns false when the in-flight bytes exceed the budget: await
   * waitDrain() before submitting more. Throws TargetError only when the writer has failed or is
   * closed (reply errors are reported through events, never thrown here).
   */
  submit(unit: WriteUnit): boolean {
    this.assertOpen();
    const { payload, count } = unit;
    if (!Number.isInteger(count) || count < 0) throw new TargetError(`target ${this.address}: unit count must be a non-negative integer, got ${count}`);
    const atomic = unit.atomic === true;
    let bytes = 0;
    if (atomic) {
      bytes += this.write(MULTI);
    }
    if (Buffer.isBuffer(payload)) bytes += this.write(payload);
    else for (const p of payload) bytes += this.write(p);
    if (atomic) bytes += this.write(EXEC);
    const u = new PendingUnit(atomic ? UnitKind.ATOMIC : UnitKind.PLAIN, payload, count, atomic ? count + 2 : count, bytes, unit.offset, ++this.seq, undefined, atomic ? unit.onExecReply : undefined);
    this.inflight += bytes;
    this.queue.push(u);
    if (u.expected === 0 && this.queue.peek() === u) this.completeHead(undefined);
    return this.inflight < this.maxInflight;
  }

  /** The in-flight budget now: submit() returns false at or over it. */
  get maxInflightBytes(): number {
    return this.maxInflight;
  }

  /** Change the in-flight budget from now on (a lower one takes effect as replies come back). */
  setMaxInflight(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`target writer: in-flight budget must be a non-negative integer, got ${bytes}`);
    this.maxInflight = bytes;
  }

  /** Resolves when submitting is allowed again (in-flight bytes under the budget: at half of it after a stall). */
  waitDrain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inflight < this.maxInflight) return Promise.resolve();
    this.out.flush();
    return this.waiters.drain();
  }

  /** Resolves once every unit submitted so far got all its replies; rejects with TargetError if the writer failed. */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.queue.length === 0) return Promise.resolve();
    this.out.flush();
    return this.waiters.flush(this.seq);
  }

  /**
   * Runs one command and resolves with its reply (strings, numbers, arrays, null). Ordered with
   * the units. An error reply rejects with TargetCommandError and does not go through the error
   * policy. For control-plane use: SELECT, DBSIZE, FLUSHALL, the checkpoint key...
   */
  call(args: readonly Arg[]): Promise<unknown> {
    try {
      this.assertOpen(true);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const payload = encodeCommand(args);
    return new Promise((resolve, reject) => {
      const settle = (err: Error | undefined, reply: unknown) => (err ? reject(err) : resolve(reply));
      const bytes = this.write(payload);
      this.inflight += bytes;
      this.queue.push(new PendingUnit(UnitKind.CALL, payload, 1, 1, bytes, undefined, ++this.seq, settle));
    });
  }

  /** Graceful: waits for every reply, then QUIT. After a failure it only releases the socket. */
  async close(): Promise<void> {
    if (this.state === 'failed' || this.state === 'closed') {
      this.destroy();
      return;
    }
    try {
      await this.flush();
      const quit = this.call(['QUIT']).catch(() => undefined);
      this.state = 'closing';
      this.out.flush();
      await quit;
    } finally {
      this.destroy();
    }
  }

  /** Immediate: drops the connection; pending units are neither awaited nor reported. */
  destroy(): void {
    if (this.state === 'closed') return;
    const wasFailed = this.state === 'failed';
    this.state = 'closed';
    this.out.discard();
    this.conn.socket.destroy();
    if (!wasFailed) this.rejectAll(this.failure ?? new TargetError(`target ${this.address}: writer closed with ${this.queue.length} unit(s) awaiting replies`));
  }

  // ---- output -------------------------------------------------------------------------------

  private write(buf: Buffer): number {
    this.out.push(buf);
    this.stats.bytes += buf.length;
    return buf.length;
  }

  // ---- replies ------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.conn.gotData = true;
    try {
      this.replies.execute(chunk);
    } catch (e) {
      // A throwing 'applied'/'commandError' listener lands here: that is a caller bug, but the reply
      // stream is now out of step, so the writer cannot go on.
      this.fail(new TargetError(`target ${this.address}: reply handling failed: ${(e as Error).message}`, { cause: e }));
    }
  }

  /**
   * Whether the next reply can be counted without its value: it answers a plain command, or MULTI or
   * a command being queued in an atomic unit (EXEC's array, call() results and unexpected replies
   * need the value, so they go through the parser).
   */
  private acceptsSimple(): boolean {
    const u = this.queue.peek();
    return u !== undefined && (u.kind === UnitKind.PLAIN || (u.kind === UnitKind.ATOMIC && u.replied <= u.count));
  }

  /** A simple (non-error) reply for the head unit, which acceptsSimple() admitted: what onReply() does for it. */
  private simpleReply(): boolean {
    const u = this.queue.peek()!;
    if (++u.replied === u.expected) this.completeHead(undefined);
    return this.state === 'open' || this.state === 'closing';
  }

  private onReply(reply: unknown): void {
    const u = this.queue.peek();
    if (u === undefined) return this.unexpectedReply(reply);
    if (u.kind === UnitKind.PLAIN) {
      if (++u.replied === u.expected) this.completeHead(undefined);
      return;
    }
    if (u.kind === UnitKind.CALL) return this.completeHead(reply);
    this.atomicReply(u, reply, undefined);
  }

  private onErrorReply(message: string): void {
    const u = this.queue.peek();
    if (u === undefined) return this.unexpectedReply(`-${message}`);
    if (u.kind === UnitKind.PLAIN) {
      this.commandError(u, u.replied, message);
      if (this.state !== 'open' && this.state !== 'closing') return;
      if (++u.replied === u.expected) this.completeHead(undefined);
      return;
    }
    if (u.kind === UnitKind.CALL) {
      this.queue.shift();
      this.release(u);
      u.settle!(describeUnitError(this.address, u, 0, message), undefined);
      this.afterCompletion(u);
      return;
    }
    this.atomicReply(u, undefined, message);
  }

  /** Reply number `u.replied` of an atomic unit: MULTI's, a queued command's, or EXEC's. */
  private atomicReply(u: PendingUnit, reply: unknown, error: string | undefined): void {
    const i = u.replied++;
    if (i === 0) {
      if (error !== undefined) this.refused(new TargetCommandError({ target: this.address, command: 'MULTI', reply: error, offset: u.offset, index: -1 }));
      return;
    }
    if (i <= u.count) {
      if (error !== undefined) (u.queueErrors ??= []).push({ index: i - 1, reply: error });
      return;
    }
    const outcome = readExecReply(this.address, u, reply, error);
    if (outcome.kind === 'malformed') return this.fail(outcome.failure);
    if (outcome.kind === 'aborted') {
      const abort = outcome.abort;
      const passing = abort.rejected.find((r) => targetState(r.reply)?.transient === true);
      if (passing !== undefined) return this.refused(passing);
      if (this.policy === 'skip' && abort.rejected.length > 0 && this.hooks.onExecAbort !== undefined) {
        this.queue.shift();
        this.release(u);
        this.stats.errors += abort.rejected.length;
        if (this.hooks.onExecAbort(abort)) {
          this.afterCompletion(u);
          const next = this.queue.peek();
          if (next !== undefined && next.expected === 0) this.completeHead(undefined);
          return;
        }
      }
      return this.fail(abort);
    }
    for (const e of outcome.errors) {
      this.commandError(u, e.index, e.reply);
      if (this.state !== 'open' && this.state !== 'closing') return;
    }
    if (u.onExecReply !== undefined && u.queueErrors === undefined) u.onExecReply(outcome.replies);
    if (this.state !== 'open' && this.state !== 'closing') return;
    this.completeHead(undefined);
  }

  private unexpectedReply(reply: unknown): void {
    const shown = typeof reply === 'string' ? reply.slice(0, 100) : JSON.stringify(reply)?.slice(0, 100);
    this.fail(new TargetError(`target ${this.address}: reply ${shown} arrived with no command awaiting one`));
  }

  private commandError(u: PendingUnit, index: number, reply: string): void {
    const err = describeUnitError(this.address, u, index, reply);
    if (this.hooks.interceptError && u.kind === UnitKind.PLAIN && this.hooks.interceptError(err, commandAt(u.payload, index))) return;
    // A target that takes no writes now is never skipped (target-state.ts).
    if (targetState(reply) !== null) return this.refused(err);
    this.stats.errors++;
    if (this.policy === 'fail') return this.fail(err);
    const fields = { command: err.command, key: err.key, reply: err.reply, offset: err.offset };
    if (this.stats.errors <= WARN_LOG_LIMIT) {
      this.log.warn(fields, this.stats.errors === WARN_LOG_LIMIT ? 'target rejected a command; skipped (further ones logged at debug level)' : 'target rejected a command; skipped');
    } else {
      this.log.debug(fields, 'target rejected a command; skipped');
    }
    this.emit('commandError', err);
  }

  /** The target refused `err`'s command for its state or for the command: fatal for the writer; a passing state says so. */
  private refused(err: TargetCommandError): void {
    const state = targetState(err.reply);
    this.fail(state?.transient === true ? new TargetUnavailableError(err, state) : err);
  }

  // ---- completion ---------------------------------------------------------------------------

  private release(u: PendingUnit): void {
    this.inflight -= u.bytes;
  }

  /** The head unit got all its replies. */
  private completeHead(reply: unknown): void {
    for (;;) {
      const u = this.queue.shift()!;
      this.release(u);
      if (u.kind === UnitKind.CALL) {
        u.settle!(undefined, reply);
      } else {
        this.stats.units++;
        this.stats.commands += u.count;
        if (u.offset !== undefined) {
          this.applied = u.offset;
          this.emit('applied', u.offset);
        }
      }
      this.afterCompletion(u);
      // Zero-command units queued behind this one complete now, in order.
      const next = this.queue.peek();
      if (next === undefined || next.expected !== 0 || this.state === 'failed' || this.state === 'closed') return;
    }
  }

  private afterCompletion(u: PendingUnit): void {
    this.waiters.completed(u.seq, this.inflight, this.maxInflight);
  }

  // ---- failure ------------------------------------------------------------------------------

  private assertOpen(allowConnecting = false): void {
    if (this.state === 'open' || (allowConnecting && this.state === 'connecting')) return;
    throw this.failure ?? new TargetError(`target ${this.address}: writer is ${this.state}`);
  }

  private pendingSummary(): string {
    const n = this.queue.length;
    if (n === 0) return '';
    return ` (${n} unit(s) awaiting replies; last applied offset ${this.applied ?? 'none'})`;
  }

  private onClose(): void {
    if (this.state === 'open' || this.state === 'connecting') {
      this.fail(this.conn.error(null, `target ${this.address}: connection closed by the target`, this.pendingSummary()));
    } else if (this.state === 'closing') {
      this.destroy();
    }
  }

  /** Fatal: stop, reject every waiter, report once through 'error' (when someone listens) and the log. */
  private fail(err: TargetError): void {
    if (this.state === 'failed' || this.state === 'closed') return;
    this.state = 'failed';
    this.failure = err;
    this.out.discard();
    this.conn.socket.destroy();
    this.rejectAll(err);
    this.log.error({ err: err.message }, 'target writer failed');
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private rejectAll(err: TargetError): void {
    for (const u of this.queue.drain()) if (u.settle) u.settle(err, undefined);
    this.waiters.rejectAll(err);
    this.inflight = 0;
  }
}

/** A wait as said to a person: "300 ms", "2 s", "2.5 s". */
function waitText(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}
