/**
 * A stream command with a big argument (ReplicationStreamParser's `bigArgBytes`: an argument of
 * 1 MiB or more after the key) is relayed as its bytes arrive, from the spool to the target socket,
 * never assembled: a 256 MB SET is not held whole. Its unit is the command alone with the
 * checkpoint: MULTI, the command's bytes as they come, GETSET of the checkpoint, EXEC (exactly
 * once, as any unit). The stages decide on its head (name, key, db): relayed unchanged, dropped
 * (its bytes are read and let go), or assembled whole and relayed as before when a stage may
 * rewrite it (--rename-prefix, --type, a command with other keys under a key filter), on a cluster
 * target or source, and inside a source transaction.
 *
 * While its bytes stream, the spool keeps at most 4 MiB in memory (as for a big string of the
 * snapshot). A streamed unit cannot be resent: a target connection lost before it was applied
 * resumes from the source (steps/bridge.ts).
 */
import { encodeCommand, encodeCommands } from '../../resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../resp/stream-parser.js';
import type { Spool } from '../../spool/spool.js';
import type { StreamedUnit } from '../../writer/index.js';
import type { SyncContext } from '../context.js';
import type { StreamBatcher, StreamUnit } from '../relay/batcher.js';
import { ASSEMBLE, type StageChain } from '../relay/stages.js';
import { Reconnect } from '../run-control.js';
import { canBridge } from './bridge.js';

/** Arguments (after the key) at least this long are relayed in pieces. */
export const BIG_ARG_BYTES = 1024 * 1024;
/** The spool's memory budget while a big argument streams through. */
const BIG_ARG_SPOOL_MEMORY = 4 * 1024 * 1024;

type Mode = 'stream' | 'assemble' | 'drop';

export class BigCommandRelay {
  private head: StreamCommand | null = null;
  private mode: Mode = 'drop';
  private unit: StreamedUnit | null = null;
  private parts: Buffer[] = [];
  /** The stream's db the command runs in. */
  private db = 0;
  /** The command as error reports name it: its name and key. */
  private described: Buffer = Buffer.alloc(0);

  constructor(
    private readonly ctx: SyncContext,
    private readonly spool: Spool,
    private readonly batcher: StreamBatcher,
    private readonly relay: StageChain,
  ) {}

  /** A command's body is still arriving. */
  get open(): boolean {
    return this.head !== null;
  }

  /**
   * The head of a command with a big argument (`head.body` set). What the batcher holds goes out
   * first (`out`, `submitAll`) when the command streams through. Relays what of it arrived so far.
   */
  async start(head: StreamCommand, out: StreamUnit[], submitAll: () => Promise<void>): Promise<void> {
    this.head = head;
    this.parts = [];
    this.db = this.batcher.currentDb;
    const fwd = this.batcher.inTransaction ? ASSEMBLE : this.relay.forwardHead(head, this.db);
    this.mode = fwd === ASSEMBLE ? 'assemble' : fwd === null ? 'drop' : 'stream';
    if (this.mode !== 'assemble') this.spool.setMemoryBudget(Math.min(this.ctx.opts.spoolMemoryBytes, BIG_ARG_SPOOL_MEMORY));
    if (fwd !== ASSEMBLE && fwd !== null) {
      const before = this.batcher.cut();
      if (before !== null) out.push(before);
      await submitAll();
      // Named in error reports by its name and key (its arguments after those are not kept).
      this.described = encodeCommand(head.args.slice(0, 2));
      this.unit = await this.guard(async () => this.ctx.target.data.openStreamed(fwd, this.ctx.store.atomicWithData, this.described));
    }
    await this.pump(out);
  }

  /** Relays the bytes of the open command that arrived; at its last byte, ends it (into `out` when assembled). */
  async pump(out: StreamUnit[]): Promise<void> {
    const head = this.head!;
    const body = head.body!;
    const pieces = body.take();
    if (this.mode === 'stream') {
      const unit = this.unit!;
      await this.guard(async () => {
        for (const p of pieces) if (!unit.write(p)) await unit.drained();
      });
    } else if (this.mode === 'assemble') {
      for (const p of pieces) this.parts.push(p);
    }
    if (!body.done) return;
    this.head = null;
    if (this.mode !== 'assemble') this.spool.setMemoryBudget(this.ctx.opts.spoolMemoryBytes);
    if (this.mode === 'stream') await this.end(body.offset);
    else if (this.mode === 'drop') this.batcher.advance(body.offset);
    else {
      // As before this relay existed: the whole command, parsed again with its exact offset.
      const whole = Buffer.concat([head.raw, ...this.parts], body.length);
      this.parts = [];
      this.batcher.push(new ReplicationStreamParser(body.offset - body.length).push(whole)[0]!, out);
    }
  }

  /** The command's last byte was written: the checkpoint ends its unit, which is pending like any other from now on. */
  private async end(offset: number): Promise<void> {
    const { ctx, db } = this;
    const unit = this.unit!;
    this.unit = null;
    const units = ctx.units;
    const inline = ctx.tracker.inline(ctx.store, ctx.tracker.current('streaming', offset, db), ctx.scope.connectionDb(db), null, false);
    const tailCount = inline.commands?.length ?? 0;
    // The same array for the writer and the applied log: recovery after an abort compares them.
    const payload = inline.commands === null ? [this.described] : [this.described, encodeCommands(inline.commands)];
    units.db = db;
    await this.guard(async () => {
      units.pending.push({ offset, db, payload, count: 1 + tailCount, atomic: ctx.store.atomicWithData, inline: tailCount, streamed: true });
      const room = unit.end({ payload, count: 1 + tailCount, offset, onExecReply: inline.onExecReply });
      if (!room) await ctx.target.data.waitDrain();
    });
    await units.afterSubmit();
  }

  /**
   * The source link ended in the middle of the open command. A half-written unit cannot stay on the
   * target connection: it goes with the connection, and the sync resumes from the applied offset.
   */
  abandon(): void {
    if (this.head === null) return;
    this.head = null;
    this.parts = [];
    if (this.mode !== 'stream') return;
    this.unit = null;
    this.ctx.units.pending = [];
    this.ctx.target.dropWriter();
    throw new Reconnect('target', 'the source link ended in the middle of a command with a big argument: its unfinished unit was dropped with the target connection; resuming from the applied offset');
  }

  /** A target failure while the command streams: it cannot be resent, so a lost connection resumes from the source. */
  private async guard<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (!canBridge(this.ctx, e)) this.ctx.units.fail(e);
      this.ctx.units.pending = [];
      throw new Reconnect('target', `target connection lost while a command with a big argument streamed through: resuming from the source at the applied offset`, { cause: e });
    }
  }
}
