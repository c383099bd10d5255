/**
 * The FIFO of units written to the target and awaiting replies. Replies arrive in the order the
 * commands were written (one connection), so every reply belongs to the head unit.
 */

/** What a queued unit is: plain commands, a MULTI/EXEC-wrapped batch, or a control-plane call. */
export const UnitKind = { PLAIN: 0, ATOMIC: 1, CALL: 2 } as const;
export type UnitKind = (typeof UnitKind)[keyof typeof UnitKind];

/** A unit written to the target (a streamed one, see streamed-unit.ts, gets its payload, counts and offset at its end). */
export class PendingUnit {
  /** Replies received so far (atomic: MULTI's +OK, one per queued command, then EXEC's). */
  replied = 0;
  /** Errors returned while queuing inside MULTI, by command index (atomic only). */
  queueErrors: { index: number; reply: string }[] | undefined = undefined;
  constructor(
    readonly kind: UnitKind,
    public payload: Buffer | Buffer[],
    /** Commands in the payload. */
    public count: number,
    /** Replies to expect: `count`, or `count + 2` for atomic units. */
    public expected: number,
    /** Bytes written for this unit (MULTI/EXEC included): released from the in-flight budget on completion. */
    public bytes: number,
    public offset: number | undefined,
    /** Submission sequence number: flush() waits for a sequence number. */
    readonly seq: number,
    /** For CALL units. */
    readonly settle?: (err: Error | undefined, reply: unknown) => void,
    /** Atomic units: EXEC's replies. */
    public onExecReply?: (replies: unknown[]) => void,
  ) {}
}

/** Array-backed FIFO with a moving head (no Array#shift on the hot path). */
export class UnitQueue {
  private items: (PendingUnit | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  peek(): PendingUnit | undefined {
    return this.items[this.head];
  }

  push(u: PendingUnit): void {
    this.items.push(u);
  }

  shift(): PendingUnit | undefined {
    const u = this.items[this.head];
    if (u === undefined) return undefined;
    this.items[this.head++] = undefined;
    // Compact once the dead prefix is both large and most of the array.
    if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return u;
  }

  /** Removes and returns every unit (used when the connection fails). */
  drain(): PendingUnit[] {
    const rest = this.items.slice(this.head) as PendingUnit[];
    this.items = [];
    this.head = 0;
    return rest;
  }
}
