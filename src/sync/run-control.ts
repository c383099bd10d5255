/**
 * Where the sync stands and why it stops: the current state (and the public phase it shows
 * as), the one stop reason (`Halt`), the interrupts that cut a running step short, and
 * whether the copy on the target was found lost. One log line per state change, naming its cause.
 */
import type { Logger } from '../observe/logger.js';
import { PHASE_OF, type Halt, type Phase, type StateName } from './phases.js';

/** Thrown inside a step when the sync was halted meanwhile: the driver turns it into `stopping`. */
export class Halted extends Error {}

/** Thrown inside a step for a failure the sync recovers from by reconnecting one side. */
export class Reconnect extends Error {
  constructor(readonly side: 'source' | 'target', message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class RunControl {
  state: StateName = 'starting';
  phase: Phase = 'connecting';
  halt: Halt | null = null;
  /** --exit-after-full-sync on a resumed sync: stop once this source offset is applied (null: not waiting for one). */
  exitAtOffset: number | null = null;
  /** Why the copy on the target is gone (flushed, restarted empty): the next connection copies again. */
  copyLost: string | null = null;
  /** Resolves at the first halt (cuts sleeps and waits short). */
  readonly halted: Promise<void>;
  private resolveHalted!: () => void;
  private readonly interrupts = new Set<() => void>();

  constructor(
    private readonly log: Logger,
    private readonly emitPhase: (phase: Phase, info: Record<string, unknown>) => void,
  ) {
    this.halted = new Promise((resolve) => (this.resolveHalted = resolve));
  }

  get stopping(): boolean {
    return this.halt !== null;
  }

  /** The lease was lost: nothing more may be applied (thrown from wherever that is noticed). */
  get leaseLost(): Error | null {
    return this.halt?.why === 'lease-lost' ? this.halt.error : null;
  }

  /**
   * Enters `state`, logging the transition once with its cause: `phase: X` when the public phase
   * changes (the phase event is then emitted too, and for every reconnect), `state: X` when only
   * the state does. Once stopping, only the end is reported.
   */
  enter(state: StateName, cause: string, info: Record<string, unknown> = {}): void {
    const from = this.state;
    const phase = PHASE_OF[state];
    if (this.halt !== null && phase !== 'stopping' && phase !== 'stopped') return;
    if (from === state && state !== 'reconnecting' && state !== 'bridging') return;
    this.state = state;
    if (this.phase === phase && phase !== 'reconnecting') {
      this.log.info({ state, from, cause, ...info }, `state: ${state}`);
      return;
    }
    this.phase = phase;
    this.log.info({ phase, state, from, cause, ...info }, `phase: ${phase}`);
    this.emitPhase(phase, info);
  }

  /** A transition that the public phase does not show (a failure's way to `stopped`): logged only. */
  note(state: StateName, cause: string): void {
    const from = this.state;
    this.state = state;
    this.log.info({ state, from, cause }, `state: ${state}`);
  }

  /**
   * Stops the sync for `h`: interrupts run, waits end. The first reason wins, except that a
   * lost lease overrides a graceful stop (nothing more may be applied). False: nothing changed.
   */
  stop(h: Halt): boolean {
    if (this.state === 'stopped') return false;
    const graceful = this.halt?.why === 'stop' || this.halt?.why === 'done';
    if (this.halt !== null && !(graceful && h.why === 'lease-lost')) return false;
    this.halt = h;
    for (const f of [...this.interrupts]) f();
    this.resolveHalted();
    return true;
  }

  /** The target no longer holds the copy: the current connection ends and the next one copies again. */
  loseCopy(why: string): boolean {
    if (this.copyLost !== null) return false;
    this.copyLost = why;
    for (const f of [...this.interrupts]) f();
    return true;
  }

  /** `f` runs at a halt or a lost copy while registered (closing the source link, for one). Returns the unregistration. */
  onInterrupt(f: () => void): () => void {
    this.interrupts.add(f);
    return () => this.interrupts.delete(f);
  }

  /** Throws when halted: Halted, or the lease error (nothing may be applied after it). */
  check(): void {
    if (this.halt === null) return;
    throw this.leaseLost ?? new Halted();
  }

  /** Sleep, cut short by a halt. */
  sleep(ms: number): Promise<void> {
    // A referenced timer: while the sync waits to reconnect, nothing else may keep the process
    // alive (an unreferenced one let Node exit mid-run with code 0).
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      void this.halted.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
