/**
 * The units handed to the target and not yet applied, in order, and the offset the target has
 * applied. Stream units stay here until the writer says they are applied, so a lost target
 * connection is bridged by resending them (steps/bridge.ts), and an aborted one can be taken
 * back (unit-abort.ts). After an abort, units go one at a time for a while (`serialUnits`).
 */
import type { TargetConnections } from './target-connections.js';

export interface PendingUnit {
  offset: number;
  db: number;
  payload: Buffer[];
  count: number;
  atomic: boolean;
  /** Trailing commands of our own (the checkpoint write), not the source's. */
  inline: number;
  /** Leading commands of our own (the foreign-writes ledger's opening script). */
  lead?: number;
  /** The source asked for an ACK (REPLCONF GETACK) that this unit answers once applied. */
  ack?: boolean;
  /** Its command was streamed through (`payload` names it, without its big argument): it cannot be resent. */
  streamed?: boolean;
}

/** How many commands of a unit are ours, not the source's: at its start and at its end. */
export interface OwnCommands {
  lead: number;
  tail: number;
}
const NO_OWN: OwnCommands = { lead: 0, tail: 0 };

export interface AppliedLogHooks {
  /** Throws when nothing more may be applied (the lease was lost). A graceful stop still applies what was received. */
  check(): void;
  /** Whether a writer failure can be bridged in place now (streaming, connection lost, not stopping). */
  canBridge(e: unknown): boolean;
  /** Reconnects the target and resends what it lacks (throws when it cannot). */
  bridge(): Promise<void>;
  /** `offset` (and the units up to it, `commands` in all, the last one leaving the stream in `db`) is applied; `ack`: ACK the source now. */
  applied(offset: number, db: number, commands: number, ack: boolean): void;
}

export class AppliedLog {
  pending: PendingUnit[] = [];
  /** Offset applied on the target (what is ACKed and checkpointed). */
  applied: number | null = null;
  /** The db selected after the last applied unit. */
  appliedDb = 0;
  /** The stream's db after the last unit submitted. */
  db = 0;
  /** Stream units still to send one at a time (see unit-abort.ts). */
  serialUnits = 0;

  constructor(
    private readonly target: TargetConnections,
    private readonly hooks: AppliedLogHooks,
  ) {}

  /** Forget what was in flight (a full sync starts, or the target went back in time). */
  reset(applied: number | null): void {
    this.pending = [];
    this.applied = applied;
  }

  /**
   * Hands a unit to the writer. Stream units (those with an offset) stay pending until applied;
   * a lost connection while streaming is bridged (the unit is resent if the target lacks it).
   */
  async submit(payload: Buffer[], count: number, atomic: boolean, offset: number | undefined, db = this.db, own: OwnCommands = NO_OWN, onExecReply?: (replies: unknown[]) => void, ack?: boolean): Promise<void> {
    this.hooks.check();
    if (offset !== undefined) {
      const p: PendingUnit = { offset, db, payload, count, atomic, inline: own.tail };
      if (own.lead > 0) p.lead = own.lead;
      if (ack === true) p.ack = true;
      this.pending.push(p);
    }
    try {
      const writer = this.target.data;
      if (!writer.submit({ payload, count, atomic, offset, onExecReply })) await writer.waitDrain();
    } catch (e) {
      if (offset === undefined || !this.hooks.canBridge(e)) this.fail(e);
      await this.hooks.bridge();
    }
  }

  /**
   * Waits until everything submitted is applied, bridging a lost connection while streaming, also
   * when nothing is pending: a target lost at a quiet moment is reconnected without dropping the
   * source link (which could cost a full resync once the outage outlasts the source's backlog).
   */
  async flush(): Promise<void> {
    for (;;) {
      try {
        await this.target.data.flush();
        return;
      } catch (e) {
        if (!this.hooks.canBridge(e)) this.fail(e);
        await this.hooks.bridge();
      }
    }
  }

  /** After a unit was submitted: in serial mode, wait until it (and anything resent) is applied. */
  async afterSubmit(): Promise<void> {
    if (this.serialUnits === 0) return;
    this.serialUnits--;
    // (An aborted unit sent again is pending after the flush: wait for it too.)
    do await this.flush();
    while ((this.target.writer?.pendingUnits ?? 0) > 0);
  }

  /** A writer failure that cannot be bridged: the lease error first, then what the failure means. */
  fail(e: unknown): never {
    this.hooks.check();
    throw this.target.classify(e);
  }

  /** The writer's 'applied' event. */
  onApplied(offset: number): void {
    let db = this.db;
    let n = 0;
    let ack = false;
    while (this.pending.length > 0 && this.pending[0]!.offset <= offset) {
      const p = this.pending.shift()!;
      db = p.db;
      n += p.count;
      if (p.ack === true) ack = true;
    }
    this.applied = offset;
    this.appliedDb = db;
    this.hooks.applied(offset, db, n, ack);
  }
}
