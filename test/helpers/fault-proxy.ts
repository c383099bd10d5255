/**
 * A TCP fault proxy for tests: listens on 127.0.0.1 (port 0) and forwards every connection to
 * `target`, both ways, byte for byte. Faults are switched on and off while connections live:
 *
 * - `cut()`            destroy every current connection, both sides, with a TCP RST;
 * - `stall(dir, ms?)`  stop forwarding (bytes are kept, never dropped) until `resume()` or `ms`;
 * - `slow(dir, bps)`   throttle to `bps` bytes per second per connection (`null` lifts it);
 * - `refuse(on)`       close the listening socket (new connections get ECONNREFUSED) / reopen it;
 * - `reset(dir, n)`    forward exactly `n` more bytes in `dir`, then RST that connection.
 *
 * `up` is client → target, `down` is target → client. While a direction is stalled or throttled,
 * at most HIGH_WATER bytes are held per connection; past that the sending socket is paused, so the
 * sender sees ordinary TCP backpressure instead of the proxy growing without bound.
 */
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export type Direction = 'up' | 'down' | 'both';
type Way = 'up' | 'down';

export interface FaultProxyOptions {
  target: { host: string; port: number };
}

export interface FaultProxyStats {
  /** Bytes forwarded client → target. */
  bytesUp: number;
  /** Bytes forwarded target → client. */
  bytesDown: number;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  active: number;
  /** Connections destroyed by cut(). */
  cut: number;
  /** Connections destroyed by a reset() trigger. */
  reset: number;
}

export interface FaultProxyEvents {
  /** A client connected (its number, from 1). */
  connection: [n: number];
}

/** Held per direction and connection before the sender is paused. */
const HIGH_WATER = 1024 * 1024;
/** Throttle granularity. */
const TICK_MS = 10;

const ways = (d: Direction): Way[] => (d === 'both' ? ['up', 'down'] : [d]);

/**
 * The faults in force and the counters, shared by the proxy (which changes them) and every
 * connection (which obeys them).
 */
class FaultState {
  readonly conns = new Set<Connection>();
  readonly stalled: Record<Way, boolean> = { up: false, down: false };
  readonly rates: Record<Way, number | null> = { up: null, down: null };
  trigger: { ways: Way[]; remaining: number; fired: () => void } | null = null;
  readonly counters = { bytesUp: 0, bytesDown: 0, connections: 0, cut: 0, reset: 0 };

  /** Bytes still allowed before the armed reset fires in `w`, or null when none is armed. */
  resetBudget(w: Way): number | null {
    const t = this.trigger;
    return t !== null && t.ways.includes(w) ? t.remaining : null;
  }

  forwarded(w: Way, n: number): void {
    if (w === 'up') this.counters.bytesUp += n;
    else this.counters.bytesDown += n;
    const t = this.trigger;
    if (t !== null && t.ways.includes(w)) t.remaining -= n;
  }

  /** The armed reset has been reached on `c`: disarm it (so no other connection takes it) and doom `c`. */
  claimReset(c: Connection): (() => void) | null {
    const t = this.trigger;
    if (t === null) return null;
    this.trigger = null;
    this.counters.reset++;
    c.doomed = true;
    return () => {
      c.abort();
      t.fired();
    };
  }

  pumpAll(): void {
    for (const c of this.conns) c.pump();
  }
}

/** One direction of one connection: a queue between a readable socket and a writable one. */
class Pipe {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private srcEnded = false;
  private waitingDrain = false;
  private timer: NodeJS.Timeout | null = null;
  private tokens = 0;
  private lastRefill = Date.now();

  constructor(
    private readonly state: FaultState,
    private readonly conn: Connection,
    private readonly way: Way,
    private readonly src: Socket,
    private readonly dst: Socket,
  ) {
    src.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued >= HIGH_WATER) src.pause();
      this.pump();
    });
    src.on('end', () => {
      this.srcEnded = true;
      this.pump();
    });
    dst.on('drain', () => {
      this.waitingDrain = false;
      this.pump();
    });
  }

  /** Forward what the current faults allow; called on data, drain, timers and control changes. */
  pump(): void {
    if (this.conn.closed || this.conn.doomed || this.waitingDrain) return;
    while (this.queue.length > 0) {
      if (this.state.stalled[this.way]) return;
      let allowed = Number.POSITIVE_INFINITY;
      const rate = this.state.rates[this.way];
      if (rate !== null) {
        const now = Date.now();
        // Cap the bucket at one tick's worth so a pause does not turn into a burst.
        this.tokens = Math.min(this.tokens + ((now - this.lastRefill) * rate) / 1000, Math.max(1, (rate * TICK_MS) / 1000));
        this.lastRefill = now;
        allowed = Math.floor(this.tokens);
        if (allowed <= 0) return this.later(TICK_MS);
      }
      const budget = this.state.resetBudget(this.way);
      if (budget === 0) {
        this.state.claimReset(this.conn)?.();
        return;
      }
      if (budget !== null) allowed = Math.min(allowed, budget);
      const head = this.queue[0]!;
      const piece = head.length <= allowed ? head : head.subarray(0, allowed);
      if (piece.length === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(piece.length);
      this.queued -= piece.length;
      if (rate !== null) this.tokens -= piece.length;
      this.state.forwarded(this.way, piece.length);
      if (budget !== null && budget === piece.length) {
        // The last permitted bytes: reset once they are handed to the kernel (a RST discards what
        // is still queued in user space), plus a turn so the peer can read them first (a RST right
        // behind data is often reported as a plain end of stream).
        const fire = this.state.claimReset(this.conn);
        this.dst.write(piece, () => setImmediate(() => fire?.()));
        return;
      }
      if (!this.dst.write(piece)) {
        this.waitingDrain = true;
        return;
      }
    }
    if (this.src.isPaused() && this.queued < HIGH_WATER / 2) this.src.resume();
    if (this.srcEnded && this.queue.length === 0 && !this.dst.writableEnded) this.dst.end();
  }

  private later(ms: number): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, ms);
  }

  dispose(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.queued = 0;
  }
}

/** A client socket and its upstream socket. */
class Connection {
  closed = false;
  /** A reset() trigger fired on this connection: nothing more is forwarded. */
  doomed = false;
  private readonly pipes: Pipe[];

  constructor(
    private readonly state: FaultState,
    private readonly client: Socket,
    private readonly upstream: Socket,
  ) {
    this.pipes = [new Pipe(state, this, 'up', client, upstream), new Pipe(state, this, 'down', upstream, client)];
    // An error on one side (a reset, a refused upstream) resets the other, as a network fault would.
    client.on('error', () => this.abort());
    upstream.on('error', () => this.abort());
    const onClose = () => {
      if (client.destroyed && upstream.destroyed) this.finish();
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pipes) p.dispose();
    this.state.conns.delete(this);
  }

  /** Destroy both sides with a TCP RST. */
  abort(): void {
    rst(this.client);
    rst(this.upstream);
  }

  pump(): void {
    for (const p of this.pipes) p.pump();
  }
}

function rst(s: Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

export class FaultProxy extends EventEmitter<FaultProxyEvents> {
  readonly host = '127.0.0.1';
  port = 0;
  private server: Server | null = null;
  private readonly target: { host: string; port: number };
  private readonly state = new FaultState();
  private readonly stallTimers: Record<Way, NodeJS.Timeout | null> = { up: null, down: null };
  private closed = false;

  private constructor(opts: FaultProxyOptions) {
    super();
    this.target = opts.target;
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const p = new FaultProxy(opts);
    await p.listen(0);
    return p;
  }

  /** `redis://127.0.0.1:<port>` for handing the proxy to a client as if it were the server. */
  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  /** A copy of the counters. */
  get stats(): FaultProxyStats {
    return { ...this.state.counters, active: this.state.conns.size };
  }

  /** Destroy every current connection, both sides, with a TCP RST. Returns how many. */
  cut(): number {
    const conns = [...this.state.conns].filter((c) => !c.doomed);
    for (const c of conns) c.abort();
    this.state.counters.cut += conns.length;
    return conns.length;
  }

  /** Stop forwarding in `direction` (bytes are kept) until resume(), or for `ms`. */
  stall(direction: Direction, ms?: number): void {
    for (const w of ways(direction)) {
      this.state.stalled[w] = true;
      if (this.stallTimers[w] !== null) clearTimeout(this.stallTimers[w]!);
      this.stallTimers[w] = ms === undefined ? null : setTimeout(() => this.resume(w), ms);
    }
  }

  /** Forward again in `direction` (default both) what a stall held back, then keep going. */
  resume(direction: Direction = 'both'): void {
    for (const w of ways(direction)) {
      this.state.stalled[w] = false;
      if (this.stallTimers[w] !== null) clearTimeout(this.stallTimers[w]!);
      this.stallTimers[w] = null;
    }
    this.state.pumpAll();
  }

  /** Throttle `direction` to `bytesPerSec` per connection; `null` lifts the limit. */
  slow(direction: Direction, bytesPerSec: number | null): void {
    if (bytesPerSec !== null && !(bytesPerSec > 0)) throw new RangeError(`FaultProxy.slow: bytesPerSec must be > 0 or null, got ${bytesPerSec}`);
    for (const w of ways(direction)) this.state.rates[w] = bytesPerSec;
    this.state.pumpAll();
  }

  /**
   * Refuse new connections (the listening socket is closed, so connecting fails with
   * ECONNREFUSED; open connections are kept), or listen again on the same port.
   */
  async refuse(on: boolean): Promise<void> {
    if (on) {
      const s = this.server;
      this.server = null;
      // close() stops accepting at once; its callback would wait for the open connections.
      if (s !== null) s.close();
    } else if (this.server === null && !this.closed) {
      await this.listen(this.port);
    }
  }

  /**
   * Forward exactly `afterBytes` more bytes in `direction` (counted over all connections, from
   * now), then reset the connection that carried the last of them. One-shot (a new call replaces
   * an armed trigger); resolves when it fires.
   */
  reset(direction: Direction, afterBytes: number): Promise<void> {
    if (!Number.isInteger(afterBytes) || afterBytes < 0) throw new RangeError(`FaultProxy.reset: afterBytes must be an integer >= 0, got ${afterBytes}`);
    return new Promise((resolve) => {
      this.state.trigger = { ways: ways(direction), remaining: afterBytes, fired: resolve };
      this.state.pumpAll();
    });
  }

  /** Stop listening and destroy every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of ['up', 'down'] as const) if (this.stallTimers[w] !== null) clearTimeout(this.stallTimers[w]!);
    for (const c of [...this.state.conns]) c.abort();
    const s = this.server;
    this.server = null;
    if (s !== null) await new Promise<void>((r) => s.close(() => r()));
  }

  private async listen(port: number): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('FaultProxy: no port');
    this.port = addr.port;
    this.server = server;
  }

  private accept(client: Socket): void {
    if (this.closed) {
      rst(client);
      return;
    }
    this.state.counters.connections++;
    const upstream = connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.state.conns.add(new Connection(this.state, client, upstream));
    this.emit('connection', this.state.counters.connections);
  }
}
