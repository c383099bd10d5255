/**
 * Groups replication-stream commands into write units for the target.
 *
 * - PING and REPLCONF are not forwarded, but the bytes they occupy still advance the offset.
 * - SELECT is tracked (`db`) and forwarded.
 * - A source MULTI ... EXEC stays whole: never split across units. When units are atomic
 *   (checkpoint on the target), the source's markers are dropped and its commands join the
 *   batch, because our own MULTI wraps the unit and transactions do not nest. Otherwise
 *   the transaction becomes an atomic unit of its own.
 * - Keys under the reserved prefix are never copied.
 * - With a partial sync's `filter`, each command (and SELECT) is replaced by what the filter
 *   says reaches the target (itself, a rewrite, several commands, or nothing).
 *
 * A unit's `offset` is the replication offset of its last byte: once the target has applied
 * it, that is the applied offset to ACK and to checkpoint.
 */
import { RESERVED_PREFIX_BYTES } from '../../checkpoint/store.js';
import type { StreamCommand } from '../../resp/stream-parser.js';
import type { FilterResult, StreamFilter } from './by-name.js';

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
}

export type ReservedReset = { kind: 'flush' } | { kind: 'swap'; a: number; b: number };

export interface StreamBatcherOptions {
  db: number;
  /** Wrap every unit in MULTI/EXEC (checkpoint on the target). */
  atomicUnits: boolean;
  maxCommands?: number;
  maxBytes?: number;
  /** Called for REPLCONF GETACK, after the units before it were returned. */
  onGetAck?: () => void;
  /**
   * Called for FLUSHALL/FLUSHDB; returning true drops the command (a target shared with other
   * syncs: relaying it would delete their keys).
   */
  dropFlush?: (cmd: StreamCommand, db: number) => boolean;
  /** The db holding Replicant's keys on the target (default 0). */
  reservedDb?: number;
  /** Called for each dropped command touching a reserved key. */
  onReserved?: (cmd: StreamCommand) => void;
  /**
   * Cluster targets have only db 0: SELECT is not forwarded, and each command the source
   * runs in another db is passed here and dropped (the callback throws to stop instead).
   */
  onForeignDb?: (cmd: StreamCommand, db: number) => void;
  /**
   * Called for each command about to be forwarded (not SELECT, MULTI/EXEC, PING, REPLCONF):
   * false drops it, its bytes still advancing the offset (the callback throws to stop instead).
   */
  admit?: (cmd: StreamCommand) => boolean;
  /** Partial sync: what of each command reaches the target (absent: everything, unchanged). */
  filter?: StreamFilter;
  /**
   * Applied first to each command the filter would see, on the source's key names: the command
   * itself, a rewritten one, or null to drop it (a cluster source's slot migration guard).
   */
  rewrite?: (cmd: StreamCommand) => StreamCommand | null;
}

/** Commands whose effect does not depend on the selected db. */
const DB_AGNOSTIC = new Set(['flushall', 'function', 'script', 'publish', 'spublish']);

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
          const u = this.cut();
          if (u !== null) out.push(u);
          this.opts.onGetAck?.();
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
        const fwd = this.opts.onForeignDb !== undefined ? null : this.opts.filter === undefined ? cmd.raw : this.opts.filter.select(cmd, this.db);
        this.batchOffset = cmd.offset;
        if (fwd === null) return;
        this.add(fwd);
        break;
      }
      default: {
        this.batchOffset = cmd.offset;
        const fwd = this.forwarded(cmd, this.db);
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
        const fwd = this.opts.onForeignDb !== undefined ? null : this.opts.filter === undefined ? cmd.raw : this.opts.filter.select(cmd, this.txDb);
        if (fwd !== null) this.addTx(tx, fwd);
        return;
      }
      default: {
        const fwd = this.forwarded(cmd, this.txDb);
        if (fwd === null) return;
        this.addTx(tx, fwd);
        this.noteReset(cmd, this.txDb);
      }
    }
  }

  /**
   * What of `cmd` (run in source db `db`) is forwarded, or null when nothing is: a reserved key,
   * outside the partial sync's filter, a db a cluster lacks, a command the target cannot run.
   */
  private forwarded(original: StreamCommand, db: number): FilterResult {
    if (isReserved(original)) {
      this.opts.onReserved?.(original);
      return null;
    }
    const cmd = this.opts.rewrite === undefined ? original : this.opts.rewrite(original);
    if (cmd === null) return null;
    const f = this.opts.filter;
    const fwd = f === undefined ? cmd.raw : f.apply(cmd, db);
    if (fwd === null) return null;
    if (this.foreign(cmd, f === undefined ? db : f.targetDb(db)) || !this.admits(cmd)) return null;
    return fwd;
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
    const f = this.opts.filter;
    const map = (d: number) => (f === undefined ? d : f.targetDb(d));
    if (name === 'flushall' || (name === 'flushdb' && map(db) === home)) {
      this.reset = { kind: 'flush' };
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

  /** True (and reported) when `cmd` must be dropped: a reserved key, or a db a cluster lacks. */
  private foreign(cmd: StreamCommand, db: number): boolean {
    if ((cmd.name === 'flushall' || cmd.name === 'flushdb') && this.opts.dropFlush?.(cmd, db) === true) return true;
    if (db !== 0 && this.opts.onForeignDb !== undefined && !DB_AGNOSTIC.has(cmd.name)) {
      this.opts.onForeignDb(cmd, db);
      return true;
    }
    return false;
  }

  private admits(cmd: StreamCommand): boolean {
    return this.opts.admit === undefined || this.opts.admit(cmd);
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

/** Checked on every forwarded command: reads the key's bytes in place (no view, no args array). */
function isReserved(cmd: StreamCommand): boolean {
  return cmd.argStartsWith(1, RESERVED_PREFIX_BYTES);
}
