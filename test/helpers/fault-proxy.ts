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
    private readonly proxy: FaultProxy,
    private readonly conn: Connection,
    readonly way: Way,
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
      if (this.proxy.isStalled(this.way)) return;
      let allowed = Number.POSITIVE_INFINITY;
      const rate = this.proxy.rateOf(this.way);
      if (rate !== null) {
        const now = Date.now();
        // Cap the bucket at one tick's worth so a pause does not turn into a burst.
        this.tokens = Math.min(this.tokens + ((now - this.lastRefill) * rate) / 1000, Math.max(1, (rate * TICK_MS) / 1000));
        this.lastRefill = now;
        allowed = Math.floor(this.tokens);
        if (allowed <= 0) return this.later(TICK_MS);
      }
      const budget = this.proxy.resetBudget(this.way);
      if (budget !== null) {
        if (budget === 0) {
          this.proxy.fireReset(this.conn);
          return;
        }
        allowed = Math.min(allowed, budget);
      }
      const head = this.queue[0]!;
      const piece = head.length <= allowed ? head : head.subarray(0, allowed);
      if (piece.length === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(piece.length);
      this.queued -= piece.length;
      if (rate !== null) this.tokens -= piece.length;
      this.proxy.forwarded(this.way, piece.length);
      if (budget !== null && budget === piece.length) {
        // The last permitted bytes: reset once they are handed to the kernel (a RST discards
        // what is still queued in user space), and forward nothing more on this connection.
        this.conn.doomed = true;
        // The extra turn lets the peer read those bytes before the RST arrives: a RST queued
        // right behind data is often reported as a plain end of stream.
        this.dst.write(piece, () => setImmediate(() => this.proxy.fireReset(this.conn)));
        return;
      }
      const ok = this.dst.write(piece);
      if (!ok) {
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

class Connection {
  closed = false;
  /** A reset() trigger fired on this connection: nothing more is forwarded. */
  doomed = false;
  readonly pipes: Pipe[];

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    this.pipes = [new Pipe(proxy, this, 'up', client, upstream), new Pipe(proxy, this, 'down', upstream, client)];
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
    this.proxy.dropConnection(this);
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
  private readonly conns = new Set<Connection>();
  private readonly stalled: Record<Way, boolean> = { up: false, down: false };
  private readonly stallTimers: Record<Way, NodeJS.Timeout | null> = { up: null, down: null };
  private readonly rates: Record<Way, number | null> = { up: null, down: null };
  private trigger: { ways: Way[]; remaining: number; fired: () => void } | null = null;
  private closed = false;
  private readonly counters: FaultProxyStats = { bytesUp: 0, bytesDown: 0, connections: 0, active: 0, cut: 0, reset: 0 };

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
    return { ...this.counters, active: this.conns.size };
  }

  /** Destroy every current connection, both sides, with a TCP RST. Returns how many. */
  cut(): number {
    const n = this.conns.size;
    for (const c of [...this.conns]) c.abort();
    this.counters.cut += n;
    return n;
  }

  /** Stop forwarding in `direction` (bytes are kept) until resume(), or for `ms`. */
  stall(direction: Direction, ms?: number): void {
    for (const w of ways(direction)) {
      this.stalled[w] = true;
      if (this.stallTimers[w] !== null) clearTimeout(this.stallTimers[w]!);
      this.stallTimers[w] = ms === undefined ? null : setTimeout(() => this.resume(w), ms);
    }
  }

  /** Forward again in `direction` (default both) what a stall held back, then keep going. */
  resume(direction: Direction = 'both'): void {
    for (const w of ways(direction)) {
      this.stalled[w] = false;
      if (this.stallTimers[w] !== null) clearTimeout(this.stallTimers[w]!);
      this.stallTimers[w] = null;
    }
    this.pumpAll();
  }

  /** Throttle `direction` to `bytesPerSec` per connection; `null` lifts the limit. */
  slow(direction: Direction, bytesPerSec: number | null): void {
    if (bytesPerSec !== null && !(bytesPerSec > 0)) throw new RangeError(`FaultProxy.slow: bytesPerSec must be > 0 or null, got ${bytesPerSec}`);
    for (const w of ways(direction)) this.rates[w] = bytesPerSec;
    this.pumpAll();
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
   * now), then reset the connection that carried the last of them. One-shot; resolves when it fires.
   */
  reset(direction: Direction, afterBytes: number): Promise<void> {
    if (!Number.isInteger(afterBytes) || afterBytes < 0) throw new RangeError(`FaultProxy.reset: afterBytes must be an integer >= 0, got ${afterBytes}`);
    return new Promise((resolve) => {
      this.trigger = { ways: ways(direction), remaining: afterBytes, fired: resolve };
      this.pumpAll();
    });
  }

  /** Stop listening and destroy every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of ['up', 'down'] as const) if (this.stallTimers[w] !== null) clearTimeout(this.stallTimers[w]!);
    for (const c of [...this.conns]) c.abort();
    const s = this.server;
    this.server = null;
    if (s !== null) await new Promise<void>((r) => s.close(() => r()));
  }

  // ---------------------------------------------------------------- used by Pipe / Connection

  /** @internal */
  isStalled(w: Way): boolean {
    return this.stalled[w];
  }

  /** @internal */
  rateOf(w: Way): number | null {
    return this.rates[w];
  }

  /** @internal Bytes still allowed before the armed reset fires in `w`, or null when none is armed. */
  resetBudget(w: Way): number | null {
    const t = this.trigger;
    return t !== null && t.ways.includes(w) ? t.remaining : null;
  }

  /** @internal */
  forwarded(w: Way, n: number): void {
    if (w === 'up') this.counters.bytesUp += n;
    else this.counters.bytesDown += n;
    const t = this.trigger;
    if (t !== null && t.ways.includes(w)) t.remaining -= n;
  }

  /** @internal */
  fireReset(c: Connection): void {
    const t = this.trigger;
    if (t === null) return;
    this.trigger = null;
    this.counters.reset++;
    c.doomed = true;
    c.abort();
    t.fired();
  }

  /** @internal */
  dropConnection(c: Connection): void {
    this.conns.delete(c);
  }

  // ---------------------------------------------------------------- private

  private pumpAll(): void {
    for (const c of this.conns) c.pump();
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
    this.counters.connections++;
    const upstream = connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.conns.add(new Connection(this, client, upstream));
    this.emit('connection', this.counters.connections);
  }
}
