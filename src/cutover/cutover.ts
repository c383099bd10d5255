/**
 * The switch-over at the end of a migration, with a proof that nothing was left behind:
 *
 *  1. `CLIENT PAUSE <max-pause> WRITE` on the source: clients may still read, every write
 *     waits. The server stops its replication PINGs and active expiry while paused, so its
 *     `master_repl_offset` no longer moves;
 *  2. read that offset, then wait until the sync has applied exactly up to it;
 *  3. verify the target against the (frozen) source, sampled or in full;
 *  4. unpause (`--unpause`) or leave the source paused for the application to switch; the
 *     pause then ends by itself when --max-pause runs out (or with CLIENT UNPAUSE).
 *
 * Any failure after step 1, or the budget running out, unpauses the source and throws a
 * CutoverAbortedError (exit 11): a cutover never leaves writes blocked because it failed.
 */
import { syncIdentity } from '../checkpoint/identity.js';
import { CutoverAbortedError, SourceError, UsageError } from '../errors.js';
import { silentLogger, type Logger } from '../observe/logger.js';
import { parseServerInfo, type ServerInfo } from '../replication/server-info.js';
import { parseSourceUrl, resolveSource } from '../replication/source.js';
import { parseRedisUrl } from '../replication/url.js';
import type { TlsSettings } from '../net/tls.js';
import { readKeyspace } from '../verify/capabilities.js';
import { describeSample, type SampleSpec } from '../verify/sample.js';
import { ServerReply, VerifySide } from '../verify/side.js';
import { checkpointReader, statusUrlReader, type PositionReader, type SyncPosition } from './position.js';
import { checkRandomSample } from './random-sample.js';
import { reservedKeyCount } from './reserved.js';

export interface CutoverOptions {
  source: string;
  target: string;
  /** /status of the running sync; without it the target's checkpoint key is read. */
  statusUrl?: URL;
  /** --name of the sync (finds its checkpoint key); default: derived from the source address. */
  name?: string;
  maxPauseMs: number;
  /** Sampled verify; null = every key. */
  sample: SampleSpec | null;
  unpause: boolean;
  /** TLS settings of a rediss:// / sentinels:// side (from --tls-* options). */
  tls?: { source?: TlsSettings; target?: TlsSettings };
  /** How often the applied offset is read while waiting (default 5 ms). */
  pollMs?: number;
  logger?: Logger;
}

export interface CutoverProof {
  source: string;
  target: string;
  replid: string;
  /** The source's master_repl_offset once paused (it cannot move while paused). */
  sourceOffset: number;
  appliedOffset: number;
  /** Bytes the sync was behind when the pause began. */
  behindAtPauseBytes: number;
  positionFrom: string;
  catchUpMs: number;
  verify: { method: string; sample: string | null; compared: number; equal: number; differences: number; examples: string[]; durationMs: number };
  sourceKeys: number;
  /** Keys on the target, Replicant's own `__replicant*` keys left out. */
  targetKeys: number;
  /** From the PAUSE being sent to the UNPAUSE reply, or to now when left paused. */
  pausedMs: number;
  unpaused: boolean;
  /** When left paused: when the pause ends by itself (Unix ms). */
  pauseEndsAt: number | null;
}

/** Part of the pause kept free at the end: the verify must finish before writes could resume. */
function safetyMarginMs(maxPauseMs: number): number {
  return Math.min(250, Math.floor(maxPauseMs / 10));
}

const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

export class Cutover {
  private readonly log: Logger;
  private source: VerifySide | null = null;
  private target: VerifySide | null = null;
  private pausedAt: number | null = null;
  /** Between sending the PAUSE and the end of the paused part (the only time an interrupt must unpause). */
  private pausing = false;
  private interrupted: string | null = null;

  constructor(private readonly o: CutoverOptions) {
    if (o.maxPauseMs < 100) throw new UsageError(`--max-pause ${o.maxPauseMs} ms: give the sync at least 100 ms to catch up`);
    this.log = o.logger ?? silentLogger();
  }

  /**
   * Asks a running cutover to abort (Ctrl-C). True when the source may be paused: the cutover
   * then unpauses it and throws; false when there is nothing to undo (the caller may just exit).
   */
  interrupt(reason: string): boolean {
    this.interrupted = reason;
    return this.pausing;
  }

  async run(): Promise<CutoverProof> {
    const spec = parseSourceUrl(this.o.source, this.o.tls?.source);
    const sourceEndpoint = await resolveSource(spec, this.log);
    this.source = new VerifySide('source', sourceEndpoint, this.log);
    this.target = new VerifySide('target', parseRedisUrl(this.o.target, this.o.tls?.target), this.log);
    try {
      await this.source.open();
      const masters = this.source.clusterMasters;
      if (masters !== null) {
        throw new UsageError(
          `source ${this.source.label} is a Redis Cluster (${masters.length} masters): cutover handles a standalone source only (each shard has its own replication offset to wait for); ` +
            'stop the writes by hand, then prove the copy with replicant verify',
        );
      }
      await this.target.open();
      const before = await this.sourceInfo();
      if (before.major < 6 || (before.major === 6 && before.minor < 2)) {
        throw new SourceError(`source ${this.source.label} runs Redis ${before.version}: CLIENT PAUSE ... WRITE needs 6.2 or later (an older server can only pause every client)`);
      }
      if (before.role !== 'master') throw new SourceError(`source ${this.source.label} is a replica of ${before.masterAddress ?? 'another server'}: pause its master instead`);
      const read: PositionReader = this.o.statusUrl ? statusUrlReader(this.o.statusUrl) : checkpointReader(this.target, syncIdentity(spec, this.o.name).checkpointKey);
      const pos = await read();
      this.checkFollows(pos, before);
      this.log.info({ behindBytes: before.masterReplOffset - (pos.appliedOffset ?? 0), from: pos.from }, 'sync found; pausing writes on the source');
      return await this.pausedPart(read);
    } finally {
      this.source.close();
      this.target.close();
    }
  }

  private async sourceInfo(): Promise<ServerInfo> {
    // Plain INFO (server, replication, keyspace among its sections): several sections in one call need 7.0.
    const text = await this.source!.call(0, ['INFO']).catch((e: unknown) => {
      throw e instanceof ServerReply ? new SourceError(`source ${this.source!.label} refuses INFO (${e.message}): the cutover needs its replication offset`) : e;
    });
    return parseServerInfo(String(text));
  }

  /** The sync must be streaming this very source history, else waiting is pointless. */
  private checkFollows(pos: SyncPosition, info: ServerInfo): void {
    if (pos.appliedOffset === null || pos.replid === null) {
      throw new UsageError(`no sync position at ${pos.from}${this.o.statusUrl ? '' : ' (is the sync running with --checkpoint target, and is --name the one it uses?)'}`);
    }
    if (pos.phase !== 'streaming') throw new UsageError(`the sync is in phase ${pos.phase} (${pos.from}): cut over once it streams`);
    if (pos.replid !== info.masterReplid) {
      throw new UsageError(`the sync follows replication id ${pos.replid} (${pos.from}), the source ${this.source!.label} is at ${info.masterReplid}: it is not this source's sync, or it has to resync first`);
    }
  }

  private async pausedPart(read: PositionReader): Promise<CutoverProof> {
    const source = this.source!;
    const maxPause = this.o.maxPauseMs;
    const started = Date.now();
    this.pausedAt = started;
    this.pausing = true;
    const deadline = started + maxPause - safetyMarginMs(maxPause);
    try {
      // Inside the try: a PAUSE whose reply was lost may still have paused the source.
      await source.call(0, ['CLIENT', 'PAUSE', maxPause, 'WRITE']);
      const frozen = await this.sourceInfo();
      const target = frozen.masterReplOffset;
      const first = await read();
      this.checkFollows(first, frozen);
      const behind = target - first.appliedOffset!;
      let pos = first;
      while (pos.appliedOffset! < target) {
        this.checkBudget(deadline, `the sync applied offset ${pos.appliedOffset} of ${target}`);
        await new Promise((r) => setTimeout(r, this.o.pollMs ?? 5));
        pos = await read();
        if (pos.replid !== frozen.masterReplid) throw new Error(`the sync switched to replication id ${pos.replid} while waiting (a resync)`);
      }
      if (pos.appliedOffset! > target) throw new Error(`the sync reports offset ${pos.appliedOffset}, beyond the paused source's ${target}: writes were not paused`);
      const catchUpMs = Date.now() - started;
      this.log.info({ offset: target, catchUpMs }, 'caught up; verifying');
      const giveUp = new AbortController();
      const verify = await this.withinBudget(deadline, this.verify(giveUp.signal), 'the verify', giveUp);
      if (verify.differences > 0) throw new Error(`verify found ${verify.differences} differences among ${verify.compared} keys compared (${verify.examples.join('; ')})`);
      // The source cannot have moved: a changed offset means the pause did not hold.
      const after = await this.sourceInfo();
      if (after.masterReplOffset !== target) throw new Error(`the source offset moved from ${target} to ${after.masterReplOffset} during the pause (did something unpause it?)`);
      this.checkBudget(deadline, 'while checking the source after the verify');
      const targetKeys = sum(await readKeyspace(this.target!)) - (await reservedKeyCount(this.target!));
      let unpaused = false;
      if (this.o.unpause) {
        await source.call(0, ['CLIENT', 'UNPAUSE']);
        unpaused = true;
      }
      const now = Date.now();
      return {
        source: source.label,
        target: this.target!.label,
        replid: frozen.masterReplid,
        sourceOffset: target,
        appliedOffset: pos.appliedOffset!,
        behindAtPauseBytes: behind,
        positionFrom: pos.from,
        catchUpMs,
        verify,
        sourceKeys: sum(after.keys),
        targetKeys,
        pausedMs: now - started,
        unpaused,
        pauseEndsAt: unpaused ? null : started + maxPause,
      };
    } catch (e) {
      throw await this.abort(e);
    } finally {
      this.pausing = false;
    }
  }

  private checkBudget(deadline: number, where: string): void {
    if (this.interrupted !== null) throw new Error(this.interrupted);
    if (Date.now() >= deadline) throw new Error(`the pause budget (--max-pause ${this.o.maxPauseMs} ms) ran out: ${where}`);
  }

  /** `work`, or a rejection once the budget runs out or on interrupt (then `giveUp` stops the work). */
  private async withinBudget<T>(deadline: number, work: Promise<T>, what: string, giveUp: AbortController): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const out = new Promise<never>((_, reject) => {
      const fail = (e: Error) => {
        giveUp.abort(e);
        reject(e);
      };
      const tick = () => {
        if (this.interrupted !== null) fail(new Error(this.interrupted));
        else if (Date.now() >= deadline) fail(new Error(`the pause budget (--max-pause ${this.o.maxPauseMs} ms) ran out during ${what}`));
        else timer = setTimeout(tick, 20);
      };
      tick();
    });
    work.catch(() => undefined);
    try {
      return await Promise.race([work, out]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * `--sample N`: N random keys per side (random-sample.ts), a cost independent of the data
   * size; a fraction, or no sample, runs the verifier (SCAN of every key).
   */
  private async verify(signal: AbortSignal): Promise<CutoverProof['verify']> {
    const sample = this.o.sample;
    if (sample?.kind === 'count') {
      const r = await checkRandomSample(this.source!, this.target!, sample.n, this.log, signal);
      if (r.differences > 0) this.log.error({ examples: r.examples }, 'differences found');
      return { method: 'random-keys', sample: `${sample.n} random keys per side`, compared: r.compared, equal: r.equal, differences: r.differences, examples: r.examples, durationMs: r.durationMs };
    }
    const { Verifier } = await import('../verify/verifier.js');
    const { differenceCount, quoted, KIND_LABEL } = await import('../verify/report.js');
    const r = await new Verifier({ source: this.o.source, target: this.o.target, sample, settleMs: 0, maxDiffs: 5, signal, logger: this.log }).run();
    return {
      method: r.method,
      sample: sample ? describeSample(sample) : null,
      compared: r.summary.compared,
      equal: r.summary.equal,
      differences: differenceCount(r.summary),
      examples: r.differences.map((d) => `db ${d.db} key ${quoted(d.key)}: ${KIND_LABEL[d.kind]} (${d.detail})`),
      durationMs: r.durationMs,
    };
  }

  /** Unpause (best effort) and describe what happened, for the exit-11 message. */
  private async abort(cause: unknown): Promise<CutoverAbortedError> {
    const reason = cause instanceof Error ? cause.message : String(cause);
    let resumed: string;
    try {
      await this.source!.call(0, ['CLIENT', 'UNPAUSE']);
      resumed = `writes resumed on the source after ${Date.now() - this.pausedAt!} ms`;
    } catch (e) {
      resumed = `CLIENT UNPAUSE failed (${(e as Error).message}): the pause ends by itself at ${new Date(this.pausedAt! + this.o.maxPauseMs).toISOString()}`;
    }
    this.log.error({ reason }, 'cutover aborted');
    return new CutoverAbortedError(`cutover aborted: ${reason}; ${resumed}`, { cause });
  }
}
