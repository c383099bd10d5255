/**
 * Groups replication-stream commands into write units for the target. It only batches: what
 * of each command is forwarded is the relay's answer (stages.ts).
 *
 * - PING and REPLCONF are not forwarded, but the bytes they occupy still advance the offset.
 * - SELECT is tracked (`db`) and forwarded as the relay says.
 * - A source MULTI ... EXEC stays whole: never split across units. When units are atomic
 *   (checkpoint on the target), the source's markers are dropped and its commands join the
 *   batch, because our own MULTI wraps the unit and transactions do not nest. Otherwise
 *   the transaction becomes an atomic unit of its own.
 * - REPLCONF GETACK ends the unit, flagged `ackNow`: the source is answered once it is applied.
 *
 * A unit's `offset` is the replication offset of its last byte: once the target has applied
 * it, that is the applied offset to ACK and to checkpoint.
 */
import type { StreamCommand } from '../../resp/stream-parser.js';
import type { Relay } from './stages.js';

export interface StreamUnit {
  commands: Buffer[];
  atomic: boolean;
  offset: number;
  /** The db the stream has selected after this unit. */
  dbAfter: number;
  /** Bytes of `commands`. */
  bytes: number;
  /**
   * The unit ends with a command that wipes or moves the db holding Replicant's own keys
   * (FLUSHALL, FLUSHDB there, SWAPDB with it): the session puts those keys back.
   */
  reservedReset?: ReservedReset;
  /** The unit ends with REPLCONF GETACK: ACK the source as soon as it is applied. */
  ackNow?: boolean;
}

/** `all`: a FLUSHALL (nothing of the target is left), not a FLUSHDB of Replicant's db. */
export type ReservedReset = { kind: 'flush'; all?: true } | { kind: 'swap'; a: number; b: number };

export interface StreamBatcherOptions {
  db: number;
  /** Wrap every unit in MULTI/EXEC (checkpoint on the target). */
  atomicUnits: boolean;
  maxCommands?: number;
  maxBytes?: number;
  /** The db holding Replicant's keys on the target (default 0). */
  reservedDb?: number;
  /** What of each command reaches the target. */
  relay: Relay;
}

export class StreamBatcher {
  private db: number;
  private commands: Buffer[] = [];
  private bytes = 0;
  /** Offset covered by the current batch (its last command, or the last skipped PING). */
  private batchOffset = -1;
  private tx: Buffer[] | null = null;
  private txBytes = 0;
  private txDb = 0;
  private readonly maxCommands: number;
  private readonly maxBytes: number;
  private reset: ReservedReset | undefined = undefined;

  constructor(private readonly opts: StreamBatcherOptions) {
    this.db = opts.db;
    this.maxCommands = opts.maxCommands ?? 2000;
    this.maxBytes = opts.maxBytes ?? 1 << 20;
  }

  /** The db selected after everything pushed so far (outside any open transaction). */
  get currentDb(): number {
    return this.db;
  }

  get inTransaction(): boolean {
    return this.tx !== null;
  }

  /** Feed one command; appends finished units to `out`. */
  push(cmd: StreamCommand, out: StreamUnit[]): void {
    const name = cmd.name;
    if (this.tx !== null) {
      this.pushInTransaction(cmd, out);
      return;
    }
    switch (name) {
      case 'ping':
        this.batchOffset = cmd.offset;
        return;
      case 'replconf':
        this.batchOffset = cmd.offset;
        if (cmd.arg(1)?.toString('latin1').toLowerCase() === 'getack') {
          const u = this.cut()!;
          u.ackNow = true;
          out.push(u);
        }
        return;
      case 'multi':
        // Everything before the MULTI is complete: it may go out on its own.
        this.tx = [];
        this.txBytes = 0;
        this.txDb = this.db;
        return;
      case 'exec':
      case 'discard':
        // An EXEC without MULTI cannot come from a master; forwarding it would only error.
        this.batchOffset = cmd.offset;
        return;
      case 'select': {
        this.db = parseDb(cmd);
        const fwd = this.opts.relay.select(cmd, this.db);
        this.batchOffset = cmd.offset;
        if (fwd === null) return;
        this.add(fwd);
        break;
      }
      default: {
        this.batchOffset = cmd.offset;
        const fwd = this.opts.relay.forward(cmd, this.db);
        if (fwd === null) return;
        this.add(fwd);
      }
    }
    // Such a command ends its unit, so the session's fix-up follows it directly.
    if (this.noteReset(cmd, this.db) || this.commands.length >= this.maxCommands || this.bytes >= this.maxBytes) out.push(this.cut()!);
  }

  private pushInTransaction(cmd: StreamCommand, out: StreamUnit[]): void {
    const tx = this.tx!;
    switch (cmd.name) {
      case 'exec': {
        this.tx = null;
        if (this.opts.atomicUnits) {
          for (const c of tx) this.commands.push(c);
          this.bytes += this.txBytes;
          this.db = this.txDb;
          this.batchOffset = cmd.offset;
          if (this.reset !== undefined || this.commands.length >= this.maxCommands || this.bytes >= this.maxBytes) out.push(this.cut()!);
        } else {
          const reset = this.reset;
          this.reset = undefined;
          const before = this.cut();
          if (before !== null) out.push(before);
          this.db = this.txDb;
          if (tx.length > 0) out.push({ commands: tx, atomic: true, offset: cmd.offset, dbAfter: this.db, bytes: this.txBytes, ...(reset ? { reservedReset: reset } : {}) });
          else this.batchOffset = cmd.offset;
        }
        return;
      }
      case 'discard':
        this.tx = null;
        this.batchOffset = cmd.offset;
        return;
      case 'multi':
      case 'ping':
      case 'replconf':
        return;
      case 'select': {
        this.txDb = parseDb(cmd);
        const fwd = this.opts.relay.select(cmd, this.txDb);
        if (fwd !== null) this.addTx(tx, fwd);
        return;
      }
      default: {
        const fwd = this.opts.relay.forward(cmd, this.txDb);
        if (fwd === null) return;
        this.addTx(tx, fwd);
        this.noteReset(cmd, this.txDb);
      }
    }
  }

  private add(fwd: Buffer | Buffer[]): void {
    if (Buffer.isBuffer(fwd)) {
      this.commands.push(fwd);
      this.bytes += fwd.length;
      return;
    }
    for (const b of fwd) {
      this.commands.push(b);
      this.bytes += b.length;
    }
  }

  private addTx(tx: Buffer[], fwd: Buffer | Buffer[]): void {
    for (const b of Buffer.isBuffer(fwd) ? [fwd] : fwd) {
      tx.push(b);
      this.txBytes += b.length;
    }
  }

  /** Records (and returns true for) a command that wipes or moves the reserved db. */
  private noteReset(cmd: StreamCommand, db: number): boolean {
    const home = this.opts.reservedDb ?? 0;
    const name = cmd.name;
    const map = (d: number) => this.opts.relay.targetDb(d);
    if (name === 'flushall' || (name === 'flushdb' && map(db) === home)) {
      this.reset = name === 'flushall' ? { kind: 'flush', all: true } : { kind: 'flush' };
      return true;
    }
    if (name === 'swapdb') {
      const a = map(Number(cmd.arg(1)?.toString('latin1')));
      const b = map(Number(cmd.arg(2)?.toString('latin1')));
      if (a !== b && (a === home || b === home) && Number.isInteger(a) && Number.isInteger(b)) {
        this.reset = { kind: 'swap', a, b };
        return true;
      }
    }
    return false;
  }

  /** A command outside any transaction that forwards nothing (its bytes were relayed elsewhere or dropped) still moves the offset. */
  advance(offset: number): void {
    this.batchOffset = offset;
  }

  /**
   * Close the current batch (e.g. at the end of the bytes available now) and return it, or
   * null when nothing has advanced. A unit may have no commands (only PINGs were seen): it
   * still carries the offset forward.
   */
  cut(): StreamUnit | null {
    if (this.batchOffset < 0) return null;
    const u: StreamUnit = { commands: this.commands, atomic: this.opts.atomicUnits, offset: this.batchOffset, dbAfter: this.db, bytes: this.bytes };
    if (this.reset !== undefined) {
      u.reservedReset = this.reset;
      this.reset = undefined;
    }
    this.commands = [];
    this.bytes = 0;
    this.batchOffset = -1;
    return u;
  }
}

function parseDb(cmd: StreamCommand): number {
  const a = cmd.arg(1);
  const n = a === undefined ? NaN : Number(a.toString('latin1'));
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

