/**
 * Cluster target writer: a router over one standalone TargetWriter per master.
 *
 * - Topology from CLUSTER SLOTS on the seed (a flat 16384-entry table), all slots must be served.
 * - Each command goes to the master of its key's slot; commands are gathered per node and sent
 *   as node units (cut at a unit's offset, at 64 KB or 1000 commands, and on flush).
 * - The applied offset is the highest offset whose commands every node has applied (ClusterOffsets).
 * - -MOVED updates that slot, starts one background topology refresh and re-sends only that
 *   command to the new owner; -ASK re-sends it with a one-shot ASKING and leaves the table alone.
 *   Redirects per command are capped (maxRedirections). Known limit: while a slot moves, a
 *   command submitted after the redirect can overtake an earlier command of the same slot that is
 *   still on its way back from the old owner.
 * - Atomic units must keep all their keys in one slot (a transaction cannot span nodes); a
 *   multi-slot atomic unit is refused with a TargetError from submit().
 */
import { EventEmitter } from 'node:events';
import { encodeCommand, encodeCommands } from '../../resp/encode.js';
import { silentLogger, type Logger } from '../../observe/logger.js';
import type { Arg } from '../../resp/encode.js';
import { NodeBatch } from './batch.js';
import { ClusterOffsets } from './offsets.js';
import { ROUTE_ALL, ROUTE_ANY, routeOf, splitCrossSlot } from './routing.js';
import { NO_NODE, parseClusterSlots, parseRedirect, splitAddress } from './topology.js';
import { TargetCommandError, TargetError } from '../errors.js';
import { splitCommands } from '../../resp/request-decoder.js';
import type { StreamedUnit, TargetEndpoint, TargetInfo, TargetWriterEvents, TargetWriterOptions, UnitWriter, WriteUnit, WriterStats } from '../types.js';
import { TargetWriter } from '../standalone.js';

export interface ClusterWriterOptions extends TargetWriterOptions {
  /** Redirections (MOVED/ASK) one command may follow before the writer fails. Default 16. */
  maxRedirections?: number;
}

const BATCH_BYTES = 64 * 1024;
const BATCH_COMMANDS = 1000;

class ClusterNode {
  writer: TargetWriter | undefined;
  readonly batch = new NodeBatch();
  /** Units submitted while the connection was still being made. */
  backlog: WriteUnit[] = [];
  ready!: Promise<void>;
  constructor(readonly index: number, readonly addr: string) {}
}

export class ClusterTargetWriter extends EventEmitter<TargetWriterEvents> implements UnitWriter {
  info!: TargetInfo;
  private readonly nodes: ClusterNode[] = [];
  private readonly byAddr = new Map<string, ClusterNode>();
  private slots!: Uint16Array;
  private readonly offsets = new ClusterOffsets();
  /** "node:seq" of re-sent units → redirects followed so far. */
  private readonly hops = new Map<string, number>();
  private readonly log: Logger;
  private readonly maxRedirections: number;
  private maxInflight: number;
  private applied: number | undefined;
  private failure: TargetError | undefined;
  private closed = false;
  private refreshing: Promise<void> | undefined;
  /** Incremented for every node unit sent: flush() loops until no re-send happened meanwhile. */
  private sent = 0;

  /** A command cannot be streamed through to a cluster (its relay assembles big commands instead). */
  openStreamed(): StreamedUnit {
    throw new TargetError('a cluster target takes whole commands only: big stream commands are assembled for it');
  }

  static async connect(seed: TargetEndpoint, opts: ClusterWriterOptions = {}): Promise<ClusterTargetWriter> {
    const probe = await TargetWriter.connect(seed, { ...opts, onError: 'fail' });
    let reply: unknown;
    try {
      if (!probe.info.cluster) throw new TargetError(`target ${probe.address} is not a cluster (cluster_enabled:0): use the standalone writer`);
      reply = await probe.call(['CLUSTER', 'SLOTS']);
    } finally {
      probe.destroy();
    }
    const table = parseClusterSlots(reply, seed.host);
    const w = new ClusterTargetWriter(seed, opts);
    w.slots = new Uint16Array(table.slots.length);
    const nodes = table.masters.map((addr) => w.nodeFor(addr, false));
    for (let s = 0; s < table.slots.length; s++) w.slots[s] = nodes[table.slots[s]!]!.index;
    try {
      await Promise.all(nodes.map((n) => n.ready));
    } catch (e) {
      w.destroy();
      throw e;
    }
    w.info = { ...probe.info, cluster: true, dbsize: nodes.reduce((sum, n) => sum + n.writer!.info.dbsize, 0) };
    return w;
  }

  private constructor(private readonly seed: TargetEndpoint, private readonly opts: ClusterWriterOptions) {
    super();
    this.log = (opts.logger ?? silentLogger()).child({ cluster: `${seed.host}:${seed.port}` });
    this.maxRedirections = opts.maxRedirections ?? 16;
    this.maxInflight = opts.maxInflightBytes ?? 64 * 1024 * 1024;
  }

  get appliedOffset(): number | undefined {
    return this.applied;
  }

  /** Sum over the node writers (units and commands are node-level: a re-sent command counts twice). */
  get stats(): WriterStats {
    const s: WriterStats = { commands: 0, units: 0, errors: 0, bytes: 0 };
    for (const n of this.nodes) {
      if (!n.writer) continue;
      s.commands += n.writer.stats.commands;
      s.units += n.writer.stats.units;
      s.errors += n.writer.stats.errors;
      s.bytes += n.writer.stats.bytes;
    }
    return s;
  }

  get pendingUnits(): number {
    return this.nodes.reduce((n, node) => n + (node.writer?.pendingUnits ?? 0) + node.backlog.length, 0);
  }

  /** "host:port" of the masters, in discovery order. */
  get masters(): string[] {
    return this.nodes.map((n) => n.addr);
  }

  /**
   * Routes the commands of `unit` by key and queues them. Returns false when a node is over its
   * in-flight budget. Throws TargetError when the writer failed, the payload is not well-formed
   * RESP with `count` commands, or an atomic unit spans slots.
   */
  submit(unit: WriteUnit): boolean {
    this.assertOpen();
    const cmds = splitCommands(unit.payload);
    if (cmds === undefined || cmds.length !== unit.count) {
      throw new TargetError(`cluster target: unit${unit.offset === undefined ? '' : ` completing offset ${unit.offset}`} does not hold ${unit.count} well-formed commands`);
    }
    if (unit.atomic) return this.submitAtomic(unit, cmds);
    for (const c of cmds) this.route(c.args, c.buf, c.start, c.end);
    if (unit.offset !== undefined) this.markOffset(unit.offset);
    return !this.overBudget();
  }

  /** Queues one command (routed by its key); `offset`, when given, is reported once it and everything before it is applied. */
  submitCommand(args: readonly Arg[], offset?: number): boolean {
    this.assertOpen();
    this.route(args, undefined, 0, 0);
    if (offset !== undefined) this.markOffset(offset);
    return !this.overBudget();
  }

  /** The in-flight budget of each node now. */
  get maxInflightBytes(): number {
    return this.maxInflight;
  }

  /** Change every node's in-flight budget from now on (nodes connected later get it too). */
  setMaxInflight(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`cluster writer: in-flight budget must be a non-negative integer, got ${bytes}`);
    this.maxInflight = bytes;
    for (const n of this.nodes) n.writer?.setMaxInflight(bytes);
  }

  waitDrain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const busy = this.nodes.filter((n) => n.writer !== undefined && n.writer.inflightBytes >= this.maxInflight);
    return Promise.all(busy.map((n) => n.writer!.waitDrain())).then(
      () => this.throwIfFailed(),
      (e: unknown) => this.throwIfFailed(e),
    );
  }

  async flush(): Promise<void> {
    for (;;) {
      this.throwIfFailed();
      for (const n of this.nodes) this.cut(n);
      const before = this.sent;
      try {
        await Promise.all(this.nodes.map(async (n) => {
          await n.ready;
          await n.writer!.flush();
        }));
      } catch (e) {
        this.throwIfFailed(e);
      }
      if (this.sent === before) return this.throwIfFailed();
    }
  }

  /**
   * One command, ordered after what was queued for its node. Keyless commands go to the first
   * master; FLUSHALL, SCRIPT, FUNCTION... to every master (the first master's reply is returned).
   */
  async call(args: readonly Arg[]): Promise<unknown> {
    this.assertOpen();
    const route = routeOf(args);
    const targets = route === ROUTE_ALL ? this.nodes : [this.nodes[route >= 0 ? this.slots[route]! : 0]!];
    const replies = await Promise.all(targets.map(async (node) => {
      this.cut(node);
      await node.ready;
      return node.writer!.call(args);
    }));
    return replies[0];
  }

  /** Each master serving slots, with the first slot it serves (by the current table) and a caller. */
  masterSlots(): { addr: string; slot: number; call: (args: readonly Arg[]) => Promise<unknown> }[] {
    const first = new Map<number, number>();
    for (let s = 0; s < this.slots.length; s++) if (!first.has(this.slots[s]!)) first.set(this.slots[s]!, s);
    return [...first].map(([index, slot]) => {
      const node = this.nodes[index]!;
      return {
        addr: node.addr,
        slot,
        call: async (args: readonly Arg[]) => {
          await node.ready;
          return node.writer!.call(args);
        },
      };
    });
  }

  /** One caller per master (CLIENT LIST/KILL must reach each server). */
  nodeCalls(): ((args: readonly Arg[]) => Promise<unknown>)[] {
    return this.nodes.map((node) => async (args: readonly Arg[]) => {
      await node.ready;
      return node.writer!.call(args);
    });
  }

  async close(): Promise<void> {
    if (this.failure || this.closed) return this.destroy();
    try {
      await this.flush();
      this.closed = true;
      await Promise.all(this.nodes.map((n) => n.writer?.close()));
    } finally {
      this.destroy();
    }
  }

  destroy(): void {
    this.closed = true;
    for (const n of this.nodes) n.writer?.destroy();
  }

  // ---- routing ------------------------------------------------------------------------------

  /** Queues one command: as a byte range of `buf` when given, else encoded from `args`. */
  private route(args: readonly Arg[], buf: Buffer | undefined, start: number, end: number): void {
    const parts = splitCrossSlot(args);
    if (parts !== undefined) {
      for (const p of parts) this.append(this.nodes[this.slots[p.slot]!]!, p.args, undefined, 0, 0);
      return;
    }
    const r = routeOf(args);
    if (r === ROUTE_ALL) for (const n of this.nodes) this.append(n, args, buf, start, end);
    else this.append(this.nodes[r === ROUTE_ANY ? 0 : this.slots[r]!]!, args, buf, start, end);
  }

  private append(node: ClusterNode, args: readonly Arg[], buf: Buffer | undefined, start: number, end: number): void {
    if (buf === undefined) node.batch.appendCommand(args);
    else node.batch.appendRange(buf, start, end);
    if (node.batch.bytes >= BATCH_BYTES || node.batch.count >= BATCH_COMMANDS) this.cut(node);
  }

  /**
   * The one slot an atomic unit touches (0 when keyless), or null when it spans slots or
   * masters and so cannot run as one transaction on a cluster.
   */
  atomicSlot(unit: Pick<WriteUnit, 'payload' | 'count'>): number | null {
    const cmds = splitCommands(unit.payload);
    if (cmds === undefined || cmds.length !== unit.count) return null;
    return slotOfAll(cmds);
  }

  private submitAtomic(unit: WriteUnit, cmds: { args: Buffer[] }[]): boolean {
    const slot = slotOfAll(cmds);
    if (slot === null) {
      const slots = new Set<string>();
      for (const c of cmds) {
        const r = routeOf(c.args);
        if (r !== ROUTE_ANY) slots.add(r === ROUTE_ALL ? 'all masters' : String(r));
      }
      throw new TargetError(`cluster target: atomic unit${unit.offset === undefined ? '' : ` completing offset ${unit.offset}`} touches slots ${[...slots].join(', ')}; a transaction must stay within one slot`);
    }
    const node = this.nodes[this.slots[slot]!]!;
    this.cut(node); // what was queued before goes first
    this.send(node, unit.payload, unit.count, true);
    if (unit.offset !== undefined) this.markOffset(unit.offset);
    return !this.overBudget();
  }

  private markOffset(offset: number): void {
    for (const n of this.nodes) this.cut(n);
    this.report(this.offsets.mark(offset));
  }

  /** Sends a node's gathered commands as one unit. */
  private cut(node: ClusterNode): void {
    if (node.batch.count === 0) return;
    const { pieces, count } = node.batch.take();
    this.send(node, pieces, count, false);
  }

  /** Sends a unit to a node; its offset field carries the node-local sequence number. */
  private send(node: ClusterNode, payload: Buffer | Buffer[], count: number, atomic: boolean): number {
    const seq = this.offsets.nextSeq(node.index);
    const unit: WriteUnit = { payload, count, atomic, offset: seq };
    this.sent++;
    if (node.writer) node.writer.submit(unit);
    else node.backlog.push(unit);
    return seq;
  }

  private overBudget(): boolean {
    for (const n of this.nodes) if (n.writer !== undefined && n.writer.inflightBytes >= this.maxInflight) return true;
    return false;
  }

  private report(offsets: number[]): void {
    for (const o of offsets) {
      this.applied = o;
      this.emit('applied', o);
    }
  }

  // ---- nodes and redirects ------------------------------------------------------------------

  /** The node for "host:port", connecting to it when it is new. */
  private nodeFor(addr: string, background = true): ClusterNode {
    const known = this.byAddr.get(addr);
    if (known) return known;
    const node = new ClusterNode(this.offsets.addNode(), addr);
    this.nodes.push(node);
    this.byAddr.set(addr, node);
    const { host, port } = splitAddress(addr);
    const endpoint: TargetEndpoint = { ...this.seed, host, port };
    node.ready = TargetWriter.connect(endpoint, this.opts, { interceptError: (e, args) => this.onNodeError(node, e, args) }).then((w) => {
      node.writer = w;
      // The budget may have changed while it connected.
      w.setMaxInflight(this.maxInflight);
      w.on('applied', (seq) => {
        this.hops.delete(`${node.index}:${seq}`);
        this.report(this.offsets.onApplied(node.index, seq));
      });
      w.on('commandError', (e) => this.emit('commandError', e));
      w.on('error', (e) => this.fail(e));
      if (this.closed || this.failure) w.destroy();
      for (const u of node.backlog.splice(0)) w.submit(u);
    });
    if (background) node.ready.catch((e: unknown) => this.fail(e instanceof TargetError ? e : new TargetError(`cluster target: ${String(e)}`)));
    return node;
  }

  /** MOVED/ASK from a node: re-send that one command where the cluster says. */
  private onNodeError(node: ClusterNode, err: TargetCommandError, args: Buffer[] | undefined): boolean {
    const r = parseRedirect(err.reply, splitAddress(node.addr).host);
    if (r === undefined || args === undefined || err.offset === undefined) return false;
    const hops = (this.hops.get(`${node.index}:${err.offset}`) ?? 0) + 1;
    if (hops > this.maxRedirections) {
      this.fail(new TargetError(`cluster target: ${err.command} (key ${JSON.stringify(err.key ?? '')}) was redirected more than ${this.maxRedirections} times; last: ${err.reply}`));
      return true;
    }
    const dest = this.nodeFor(r.addr);
    if (r.kind === 'MOVED') {
      this.slots[r.slot] = dest.index;
      this.refreshTopology();
    }
    // Sent at once, ahead of dest's gathered batch: those commands were all submitted after this one.
    const seq = r.kind === 'ASK' ? this.send(dest, encodeCommands([['ASKING'], args]), 2, false) : this.send(dest, encodeCommand(args), 1, false);
    this.hops.set(`${dest.index}:${seq}`, hops);
    this.offsets.redirect(node.index, err.offset, dest.index, seq);
    this.log.debug({ command: err.command, key: err.key, redirect: err.reply }, 'cluster redirect');
    return true;
  }

  /** One CLUSTER SLOTS refresh at a time, in the background. */
  private refreshTopology(): void {
    if (this.refreshing) return;
    const via = this.nodes.find((n) => n.writer !== undefined);
    if (!via) return;
    this.refreshing = (async () => {
      try {
        const t = parseClusterSlots(await via.writer!.call(['CLUSTER', 'SLOTS']), splitAddress(via.addr).host, false);
        if (this.failure || this.closed) return;
        const idx = t.masters.map((addr) => this.nodeFor(addr).index);
        for (let s = 0; s < t.slots.length; s++) if (t.slots[s] !== NO_NODE) this.slots[s] = idx[t.slots[s]!]!;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'cluster topology refresh failed; keeping the current table');
      } finally {
        this.refreshing = undefined;
      }
    })();
  }

  // ---- failure ------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new TargetError(`cluster target ${this.seed.host}:${this.seed.port}: writer is closed`);
  }

  private throwIfFailed(cause?: unknown): void {
    if (this.failure) throw this.failure;
    if (cause !== undefined) throw cause;
  }

  private fail(err: TargetError): void {
    if (this.failure) return;
    this.failure = err;
    for (const n of this.nodes) n.writer?.destroy();
    this.log.error({ err: err.message }, 'cluster target writer failed');
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}

/** The single slot all `cmds` touch (0 when all are keyless), or null when they span slots or every master. */
function slotOfAll(cmds: readonly { args: Buffer[] }[]): number | null {
  let slot: number | null = null;
  for (const c of cmds) {
    const r = routeOf(c.args);
    if (r === ROUTE_ALL) return null;
    if (r === ROUTE_ANY) continue;
    if (slot !== null && slot !== r) return null;
    slot = r;
  }
  return slot ?? 0;
}
