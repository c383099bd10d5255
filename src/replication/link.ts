/**
 * The replica side of the replication protocol (redis-internals §1): connect, handshake,
 * PSYNC, then pump every received byte into the spool at wire speed while sending
 * `REPLCONF ACK <applied offset>` every second.
 *
 * The link never interprets the RDB or the stream: the consumer reads the spool, finds
 * the RDB's end by decoding it (see RdbTrailer) and parses the stream after it.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { LocalIoError, ProtocolError, ReplicantError, SourceError, UsageError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { silentLogger } from '../observe/logger.js';
import { encodeCommand, encodeCommands, type Arg } from '../resp/encode.js';
import type { Spool } from '../spool/spool.js';
import { connectCopyingReads } from '../net/slab-reads.js';
import { handshakeTimeoutHint } from '../net/tls-errors.js';
import { ReplicationSourceError, sourceSocketError } from './errors.js';
import { LineReader, type HandshakeReply } from './line-reader.js';
import { parseServerIdentity, type ServerIdentity } from './identity.js';
import type { RdbFraming } from './rdb-trailer.js';
import { REPLID, checkAuthReply, checkPingReply, checkReplconfReply, parseFramingHeader, parsePsyncReply } from './replies.js';
import { endpointLabel, type SourceEndpoint } from './url.js';

export type { RdbFraming } from './rdb-trailer.js';

export interface LinkOptions {
  endpoint: SourceEndpoint;
  /**
   * Port announced with `REPLCONF listening-port` (shown as `port=` in the source's
   * INFO replication). Default 0: Replicant accepts no connections, and 0 makes the
   * entry recognisable as not being a real, promotable replica.
   */
  listeningPort?: number;
  /** Resume point: offset = last APPLIED byte; sends `PSYNC replid offset+1`. null/absent → `PSYNC ? -1`. */
  psync?: { replid: string; offset: number } | null;
  /** No byte from the source for this long → error. Default 60 s (the source pings every 10 s). */
  readTimeoutMs?: number;
  /** Default 10 s. */
  connectTimeoutMs?: number;
  /** Period of `REPLCONF ACK`. Default 1000 ms (what real replicas do). */
  ackIntervalMs?: number;
  logger?: Logger;
  /** Every byte after the framing header (RDB, then stream) is appended here. */
  spool: Spool;
  /**
   * Called after the handshake, before PSYNC, with the source's identity (null when INFO is
   * refused) and a way to run read-only commands on the connection. Throwing aborts the link
   * with that error: the source is never asked for a snapshot the caller would refuse.
   */
  beforePsync?: (ctx: BeforePsync) => Promise<void>;
  /** Every chunk as it arrives (before the spool), with the link bytes received so far: for what must be known at wire time. */
  onArrival?: (chunk: Buffer, bytesReceived: number) => void;
}

export interface BeforePsync {
  identity: ServerIdentity | null;
  call(args: Arg[]): Promise<HandshakeReply>;
}

export type PsyncOutcome =
  | { mode: 'full'; replid: string; offset: number; framing: RdbFraming }
  /** offset = the requested offset - 1 (the last byte we have). */
  | { mode: 'continue'; replid: string; offset: number };

export type LinkPhase = 'idle' | 'connecting' | 'handshake' | 'psync' | 'streaming' | 'closed';

export type LinkError = SourceError | ProtocolError | LocalIoError;

export interface LinkEvents {
  /** After start() resolved: the link failed (a LocalIoError when the spool failed). 'close' follows. */
  error: [LinkError];
  close: [];
  spoolFull: [];
  spoolResumed: [];
}

const DEFAULTS = { listeningPort: 0, readTimeoutMs: 60_000, connectTimeoutMs: 10_000, ackIntervalMs: 1000 } as const;
/** Extra ACKs after the first ackNow() of a diskless full sync (ms after it). */
const ACK_FOLLOW_UPS_MS = [10, 30, 60, 100, 200, 400] as const;

export class ReplicationLink extends EventEmitter<LinkEvents> {
  private readonly opts: LinkOptions;
  private readonly log: Logger;
  private readonly label: string;
  private socket: Socket | null = null;
  private readonly lines = new LineReader();
  private pumping = false;
  private paused = false;
  private closing = false;
  private failed = false;
  private started = false;
  private stage: LinkPhase = 'idle';
  private received = 0;
  /** Any byte from the source yet (an end before that, over TLS, is most likely a refused handshake). */
  private gotData = false;
  private lastReadAt = 0;
  private acked = -1;
  private ackTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private followUpsArmed = false;
  private followUps: NodeJS.Timeout[] = [];

  constructor(opts: LinkOptions) {
    super();
    const resume = opts.psync ?? null;
    if (resume !== null && (!Number.isSafeInteger(resume.offset) || resume.offset < 0 || !REPLID.test(resume.replid))) {
      throw new RangeError(`psync resume point must be a 40-character replid and a non-negative offset, got ${JSON.stringify(resume)}`);
    }
    this.opts = opts;
    this.label = endpointLabel(opts.endpoint);
    this.log = (opts.logger ?? silentLogger()).child({ component: 'replication', source: this.label });
  }

  /** Bytes received after the framing header (RDB + stream, or stream after +CONTINUE). */
  get bytesReceived(): number {
    return this.received;
  }

  /** The offset the next ACK reports (-1 before PSYNC was answered). */
  get ackedOffset(): number {
    return this.acked;
  }

  get phase(): LinkPhase {
    return this.stage;
  }

  /**
   * Connect, handshake, PSYNC. Resolves once +FULLRESYNC (and the RDB framing header)
   * or +CONTINUE arrived; from then on every byte goes to the spool.
   * Rejects with ReplicationSourceError (a SourceError with `retryable`) or ProtocolError.
   */
  async start(): Promise<PsyncOutcome> {
    if (this.started) throw new Error('ReplicationLink.start() called twice');
    this.started = true;
    try {
      await this.connect();
      await this.handshake();
      if (this.opts.beforePsync) await this.opts.beforePsync(await this.identify());
      return await this.psync();
    } catch (e) {
      const err = e instanceof ReplicantError ? e : new ReplicationSourceError(`replication link to ${this.label} failed: ${(e as Error).message}`, true, { cause: e });
      this.shutdown();
      throw err;
    }
  }

  /** Record the offset applied on the target: what the next ACK reports. Never goes back. */
  setAppliedOffset(offset: number): void {
    if (!Number.isSafeInteger(offset)) throw new RangeError(`applied offset must be an integer, got ${offset}`);
    if (offset > this.acked) this.acked = offset;
  }

  /**
   * Send `REPLCONF ACK <applied>` now (after a GETACK in the stream, after the RDB).
   * The first call after a diskless full sync also schedules a few quick follow-ups: the
   * source starts the stream only on an ACK that arrives after it noticed the transfer
   * ended, and the periodic ACK alone would add up to a second of lag.
   */
  ackNow(): void {
    this.sendAck();
    if (this.followUpsArmed) {
      this.followUpsArmed = false;
      for (const ms of ACK_FOLLOW_UPS_MS) {
        const t = setTimeout(() => this.sendAck(), ms);
        t.unref();
        this.followUps.push(t);
      }
    }
  }

  private sendAck(): void {
    const s = this.socket;
    if (s === null || this.acked < 0 || s.destroyed || !s.writable) return;
    s.write(encodeCommand(['REPLCONF', 'ACK', this.acked]));
  }

  /** Destroy the socket; emits 'close'. No 'error' is emitted for a close we asked for. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.lines.fail(new ReplicationSourceError(`replication link to ${this.label} closed`, true));
    this.shutdown();
  }

  // --- steps -------------------------------------------------------------------

  private connect(): Promise<void> {
    const ep = this.opts.endpoint;
    const timeoutMs = this.opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.stage = 'connecting';
    this.log.debug({ tls: ep.tls !== undefined }, 'connecting');
    return new Promise<void>((resolve, reject) => {
      // Ready after the TCP connect, or for TLS once the handshake and certificate checks passed.
      const socket = connectCopyingReads(ep, () => {
        clearTimeout(timer);
        socket.off('error', onError);
        if (this.closing) return reject(new ReplicationSourceError(`replication link to ${this.label} closed`, true));
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 10_000);
        // An early close is retried here: it may be a server going down (INFO at start-up, on its
        // own connection, already stopped a refused client certificate).
        socket.on('error', (e: NodeJS.ErrnoException) => this.onFailure(sourceSocketError(e, `replication link to ${this.label} failed`, ep, this.gotData ? undefined : 'retryable')));
        socket.on('close', () => this.onClose());
        this.startWatchdog();
        resolve();
      }, (chunk) => this.onData(chunk));
      this.socket = socket;
      const timer = setTimeout(() => {
        const hint = handshakeTimeoutHint(socket, ep);
        socket.destroy();
        reject(new ReplicationSourceError(`cannot connect to source ${this.label}: timed out after ${timeoutMs} ms${hint}`, true));
      }, timeoutMs);
      const onError = (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(sourceSocketError(e, `cannot connect to source ${this.label}`, ep));
      };
      socket.once('error', onError);
    });
  }

  private async handshake(): Promise<void> {
    this.stage = 'handshake';
    this.send(['PING']);
    checkPingReply(await this.lines.line(), this.label);
    const { username, password } = this.opts.endpoint;
    const port = this.opts.listeningPort ?? DEFAULTS.listeningPort;
    const commands: Arg[][] = [];
    if (password !== undefined) commands.push(username !== undefined ? ['AUTH', username, password] : ['AUTH', password]);
    commands.push(['REPLCONF', 'listening-port', port], ['REPLCONF', 'capa', 'eof', 'capa', 'psync2']);
    // Pipelined like a real replica; every reply is read before PSYNC goes out.
    this.send(commands);
    if (password !== undefined) checkAuthReply(await this.lines.line(), username, this.label);
    for (const option of ['listening-port', 'capa']) {
      const reply = await this.lines.line();
      if (!checkReplconfReply(reply, this.label)) this.log.warn({ option, reply }, 'source rejected a REPLCONF option; continuing');
    }
  }

  private async identify(): Promise<BeforePsync> {
    const call = async (args: Arg[]): Promise<HandshakeReply> => {
      this.send(args);
      return this.lines.reply();
    };
    const server = await call(['INFO', 'server']);
    const replication = await call(['INFO', 'replication']);
    let identity: ServerIdentity | null = null;
    if (typeof server === 'string' && typeof replication === 'string') identity = parseServerIdentity(server, replication);
    else this.log.warn({ reply: server instanceof Error ? server.message : replication instanceof Error ? replication.message : undefined }, 'source refused INFO: cannot check that it is not the target itself');
    await this.checkReadTimeout(call);
    return { identity, call };
  }

  /**
   * A quiet source sends its replicas nothing but a PING every repl-ping-replica-period: a read
   * timeout not above it would drop the link at every quiet moment (a resync each time). Checked
   * when the timeout was lowered from its default; a source that refuses CONFIG is not checked.
   */
  private async checkReadTimeout(call: (args: Arg[]) => Promise<HandshakeReply>): Promise<void> {
    const timeoutMs = this.opts.readTimeoutMs ?? DEFAULTS.readTimeoutMs;
    if (timeoutMs >= DEFAULTS.readTimeoutMs) return;
    const reply = await call(['CONFIG', 'GET', 'repl-ping-replica-period']);
    const seconds = Array.isArray(reply) && reply.length === 2 ? Number(reply[1]) : NaN;
    if (!Number.isFinite(seconds) || timeoutMs > seconds * 1000) return;
    throw new UsageError(
      `--read-timeout ${timeoutMs} ms is not above the source's repl-ping-replica-period (${seconds} s): a quiet source sends nothing for that long, so the link would be dropped and resumed at every pause. Use a read timeout above ${seconds} s (the default is ${DEFAULTS.readTimeoutMs / 1000} s), or lower repl-ping-replica-period on ${this.label}`,
    );
  }

  private async psync(): Promise<PsyncOutcome> {
    this.stage = 'psync';
    const resume = this.opts.psync ?? null;
    this.send(resume !== null ? ['PSYNC', resume.replid, resume.offset + 1] : ['PSYNC', '?', -1]);
    this.log.info({ replid: resume?.replid ?? '?', offset: resume ? resume.offset + 1 : -1 }, 'PSYNC sent');
    const reply = parsePsyncReply(await this.nextNonEmptyLine(), resume?.replid ?? null, this.label);
    if (reply.mode === 'full') {
      const { replid, offset } = reply;
      this.log.info({ replid, offset, resumeRequested: resume !== null }, 'full resync');
      // ACK from now on: harmless before the RDB, and diskless transfers wait for it.
      this.acked = Math.max(this.acked, offset);
      this.startAcks();
      const framing = parseFramingHeader(await this.nextNonEmptyLine(), this.label);
      this.followUpsArmed = framing.kind === 'eof';
      this.log.info({ framing: framing.kind === 'length' ? { length: framing.length } : 'eof' }, 'receiving RDB');
      this.startPumping();
      return { mode: 'full', replid, offset, framing };
    }
    const offset = resume!.offset;
    if (reply.replid !== resume!.replid) this.log.info({ old: resume!.replid, new: reply.replid }, 'source history id changed (failover): adopting the new replid');
    this.log.info({ replid: reply.replid, offset }, 'partial resync accepted');
    this.acked = Math.max(this.acked, offset);
    this.startAcks();
    this.startPumping();
    return { mode: 'continue', replid: reply.replid, offset };
  }

  private async nextNonEmptyLine(): Promise<string> {
    for (let n = 0; ; n++) {
      const line = await this.lines.line();
      if (line !== '') return line;
      if (n % 10 === 9) this.log.debug({ keepalives: n + 1 }, 'source is preparing the sync');
    }
  }

  // --- pumping -----------------------------------------------------------------

  /** Switch to pump mode: the bytes already buffered after the header go first. */
  private startPumping(): void {
    this.stage = 'streaming';
    this.pumping = true;
    const rest = this.lines.rest();
    if (rest.length > 0) this.toSpool(rest);
  }

  private onData(chunk: Buffer): void {
    this.lastReadAt = Date.now();
    this.gotData = true;
    if (this.pumping) this.toSpool(chunk);
    else this.lines.push(chunk);
  }

  private toSpool(chunk: Buffer): void {
    this.received += chunk.length;
    this.opts.onArrival?.(chunk, this.received);
    let ok: boolean;
    try {
      ok = this.opts.spool.append(chunk);
    } catch (e) {
      this.onFailure(e instanceof LocalIoError ? e : new LocalIoError(`cannot spool data from ${this.label}: ${(e as Error).message}`, { cause: e }));
      return;
    }
    if (!ok && !this.paused) {
      this.paused = true;
      this.socket?.pause();
      const spool = this.opts.spool;
      this.log.warn({ bufferedBytes: spool.bufferedBytes, diskBytes: spool.diskBytes }, 'spool full: pausing reads from the source (the source now buffers the stream)');
      this.emit('spoolFull');
      void spool.waitForSpace().then(() => {
        if (this.closing || this.failed) return;
        this.paused = false;
        this.lastReadAt = Date.now();
        this.socket?.resume();
        this.log.info({ bufferedBytes: spool.bufferedBytes }, 'spool has room: reading from the source again');
        this.emit('spoolResumed');
      });
    }
  }

  // --- timers, failures ------------------------------------------------------------

  private startAcks(): void {
    if (this.ackTimer) return;
    this.ackTimer = setInterval(() => this.ackNow(), this.opts.ackIntervalMs ?? DEFAULTS.ackIntervalMs);
    this.ackTimer.unref();
  }

  /** Read timeout by hand: socket.setTimeout also counts our ACK writes as activity. */
  private startWatchdog(): void {
    const timeoutMs = this.opts.readTimeoutMs ?? DEFAULTS.readTimeoutMs;
    this.lastReadAt = Date.now();
    this.watchdog = setInterval(() => {
      if (this.paused) return;
      const idle = Date.now() - this.lastReadAt;
      if (idle > timeoutMs) this.onFailure(new ReplicationSourceError(`no data from source ${this.label} for ${idle} ms (read timeout ${timeoutMs} ms, phase ${this.stage})`, true));
    }, Math.min(1000, Math.max(10, Math.floor(timeoutMs / 4))));
    this.watchdog.unref();
  }

  private send(cmd: Arg[] | Arg[][]): void {
    const s = this.socket;
    if (s === null || s.destroyed) return;
    s.write(Array.isArray(cmd[0]) ? encodeCommands(cmd as Arg[][]) : encodeCommand(cmd as Arg[]));
  }

  private onFailure(err: LinkError): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    if (!this.pumping) {
      // Still in start(): the pending step rejects with this error.
      this.lines.fail(err);
      this.shutdown();
      return;
    }
    // An expected event (the sync reconnects, or says why it stops): the message, never a stack.
    this.log.warn({ err: err.message }, 'replication link failed');
    this.teardown();
    this.emit('error', err);
    this.shutdown();
  }

  private onClose(): void {
    if (!this.closing && !this.failed && !this.gotData && this.opts.endpoint.tls !== undefined) {
      this.onFailure(sourceSocketError(null, `source ${this.label} closed the connection`, this.opts.endpoint, 'retryable'));
    }
    if (!this.closing && !this.failed) {
      this.onFailure(new ReplicationSourceError(`source ${this.label} closed the replication link (phase ${this.stage}, ${this.received} bytes received)`, true));
    }
    this.shutdown();
  }

  /** Stop timers and destroy the socket. */
  private teardown(): void {
    if (this.ackTimer) clearInterval(this.ackTimer);
    if (this.watchdog) clearInterval(this.watchdog);
    for (const t of this.followUps.splice(0)) clearTimeout(t);
    this.ackTimer = null;
    this.watchdog = null;
    const s = this.socket;
    if (s !== null && !s.destroyed) s.destroy();
  }

  /** Teardown, then 'close' once, if start() had succeeded or close() was called. */
  private shutdown(): void {
    this.teardown();
    if (this.stage !== 'closed') {
      const announce = this.pumping || this.closing;
      this.stage = 'closed';
      if (announce) this.emit('close');
    }
  }
}

