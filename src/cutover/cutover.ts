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
 *
 * One cutover at a time per source: each names its source connections `replicant-cutover-…`,
 * refuses to pause beside another one, and looks again before it reports (a second cutover's
 * UNPAUSE, or its abort, would end this one's pause under it).
 *
 * A Redis Cluster source is paused on every master, and each master's offset is waited for
 * in the shard of the sync that follows its replication history: read from each shard's
 * checkpoint on the target (wherever the process holding the shard runs), or from the sync's
 * /status (--status-url; required when the target is a cluster, where checkpoints are files).
 */
import { randomBytes } from 'node:crypto';
import { syncIdentity } from '../checkpoint/identity.js';
import { CutoverAbortedError, SourceError, UsageError } from '../errors.js';
import { silentLogger, type Logger } from '../observe/logger.js';
import { parseServerInfo, type ServerInfo } from '../replication/server-info.js';
import { parseSourceUrl, resolveSource } from '../replication/source.js';
import { endpointLabel, parseRedisUrl } from '../replication/url.js';
import type { TlsSettings } from '../net/tls.js';
import { readKeyspace } from '../verify/capabilities.js';
import { describeSample, type SampleSpec } from '../verify/sample.js';
import { ServerReply, VerifySide } from '../verify/side.js';
import { checkpointReader, clusterCheckpointReader, statusUrlReader, type PositionReader, type ShardPosition, type SyncPosition } from './position.js';
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
  /** A cluster source: each master paused, its offset and the shard's applied offset (the top-level offsets are their sums). */
  shards?: { master: string; replid: string; sourceOffset: number; appliedOffset: number }[];
}

/** One master of the source (the source itself when standalone), as INFO describes it. */
interface SourceMaster {
  label: string;
  info: ServerInfo;
}

/** The client name prefix of a running cutover's source connections. */
const CUTOVER_CLIENT = 'replicant-cutover-';

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
  /** This cutover's client name on the source (see otherCutover()). */
  private readonly clientName = `${CUTOVER_CLIENT}${process.pid}-${randomBytes(4).toString('hex')}`;

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
      const cluster = this.source.clusterMasters;
      await this.target.open();
      if (cluster !== null && this.o.statusUrl === undefined && this.target.clusterMasters !== null) {
        throw new UsageError(`source ${this.source.label} is a Redis Cluster (${cluster.length} masters) and the target is one too (the shards' checkpoints are files there): give --status-url (the sync's /status lists the position of each shard)`);
      }
      const before = await this.masters();
      for (const m of before) {
        const i = m.info;
        if (i.major < 6 || (i.major === 6 && i.minor < 2)) {
          throw new SourceError(`source ${m.label} runs Redis ${i.version}: CLIENT PAUSE ... WRITE needs 6.2 or later (an older server can only pause every client)`);
        }
        if (i.role !== 'master') throw new SourceError(`source ${m.label} is a replica of ${i.masterAddress ?? 'another server'}: pause its master instead`);
      }
      const read: PositionReader = this.o.statusUrl
        ? statusUrlReader(this.o.statusUrl)
        : cluster !== null
          ? clusterCheckpointReader(this.target, this.o.name ?? endpointLabel(sourceEndpoint))
          : checkpointReader(this.target, syncIdentity(spec, this.o.name).checkpointKey);
      const pos = await read();
      const tracks = this.checkFollows(pos, before);
      const behind = before.reduce((t, m, i) => t + m.info.masterReplOffset - (tracks[i]!.appliedOffset ?? 0), 0);
      await this.onEveryMaster(['CLIENT', 'SETNAME', this.clientName]).catch((e: unknown) => {
        if (!(e instanceof SourceError)) throw e;
        this.log.warn({ err: e.message }, 'cannot name this cutover on the source: a second cutover started meanwhile would not see it');
      });
      const other = await this.otherCutover();
      if (other !== null) throw new CutoverAbortedError(`cutover not started: ${other}; one cutover at a time (nothing was paused)`);
      this.log.info({ behindBytes: behind, from: pos.from, masters: before.length }, 'sync found; pausing writes on the source');
      return await this.pausedPart(read);
    } finally {
      this.source.close();
      this.target.close();
    }
  }

  /** INFO of the source, or of each master of a cluster source (plain INFO: several sections in one call need 7.0). */
  private async masters(): Promise<SourceMaster[]> {
    const s = this.source!;
    const labels = s.clusterMasters ?? [s.label];
    const replies = s.clusterMasters === null ? [await s.call(0, ['INFO']).catch((e: unknown) => (e instanceof ServerReply ? e : Promise.reject(e)))] : await s.everyNode(0, ['INFO']);
    return replies.map((r, i) => {
      if (r instanceof ServerReply) throw new SourceError(`source ${labels[i]} refuses INFO (${r.message}): the cutover needs its replication offset`);
      return { label: labels[i]!, info: parseServerInfo(String(r)) };
    });
  }

  /** `args` on the source, or on every master of a cluster source; a refusal throws. */
  private async onEveryMaster(args: (string | number)[]): Promise<void> {
    const s = this.source!;
    if (s.clusterMasters === null) {
      await s.call(0, args);
      return;
    }
    const replies = await s.everyNode(0, args);
    const refused = replies.findIndex((r) => r instanceof ServerReply);
    if (refused >= 0) throw new SourceError(`source master ${s.clusterMasters[refused]} refused ${args.slice(0, 2).join(' ')}: ${(replies[refused] as Error).message}`);
  }

  /** Each position of the sync (its shards for a cluster source). */
  private static tracks(pos: SyncPosition): ShardPosition[] {
    return pos.shards ?? [{ phase: pos.phase, replid: pos.replid, appliedOffset: pos.appliedOffset, node: null }];
  }

  /**
   * The sync must be streaming this very source history (each master's, for a cluster), else
   * waiting is pointless. Returns the position that follows each master, in their order.
   */
  private checkFollows(pos: SyncPosition, masters: SourceMaster[]): ShardPosition[] {
    const tracks = Cutover.tracks(pos);
    if (masters.length === 1 && pos.shards === undefined) {
      if (pos.appliedOffset === null || pos.replid === null) {
        throw new UsageError(`no sync position at ${pos.from}${this.o.statusUrl ? '' : ' (is the sync running with --checkpoint target, and is --name the one it uses?)'}`);
      }
      if (pos.phase !== 'streaming') throw new UsageError(`the sync is in phase ${pos.phase} (${pos.from}): cut over once it streams`);
      if (pos.replid !== masters[0]!.info.masterReplid) {
        throw new UsageError(`the sync follows replication id ${pos.replid} (${pos.from}), the source ${masters[0]!.label} is at ${masters[0]!.info.masterReplid}: it is not this source's sync, or it has to resync first`);
      }
      return tracks;
    }
    return masters.map((m) => {
      const t = tracks.find((x) => x.replid === m.info.masterReplid);
      if (t === undefined) {
        throw new UsageError(`no shard of the sync at ${pos.from} follows master ${m.label} (replication id ${m.info.masterReplid}): it is not this source's sync, or that shard has to resync first`);
      }
      if (t.phase !== 'streaming' || t.appliedOffset === null) throw new UsageError(`the shard of master ${m.label} is in phase ${t.phase} (${pos.from}): cut over once every shard streams`);
      return t;
    });
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
      await this.onEveryMaster(['CLIENT', 'PAUSE', maxPause, 'WRITE']);
      const frozen = await this.masters();
      const first = await read();
      let tracks = this.checkFollows(first, frozen);
      const behind = frozen.reduce((t, m, i) => t + m.info.masterReplOffset - tracks[i]!.appliedOffset!, 0);
      let pos = first;
      for (;;) {
        const lagging = frozen.findIndex((m, i) => tracks[i]!.appliedOffset! < m.info.masterReplOffset);
        if (lagging < 0) break;
        const where = frozen.length === 1 ? '' : ` for master ${frozen[lagging]!.label}`;
        this.checkBudget(deadline, `the sync applied offset ${tracks[lagging]!.appliedOffset} of ${frozen[lagging]!.info.masterReplOffset}${where}`);
        await new Promise((r) => setTimeout(r, this.o.pollMs ?? 5));
        pos = await read();
        const now = Cutover.tracks(pos);
        tracks = frozen.map((m) => {
          const t = frozen.length === 1 && pos.shards === undefined ? now[0]! : now.find((x) => x.replid === m.info.masterReplid);
          if (t === undefined || t.replid !== m.info.masterReplid) throw new Error(`the sync switched to replication id ${t?.replid ?? 'none'} while waiting${frozen.length === 1 ? '' : ` for master ${m.label}`} (a resync)`);
          return t;
        });
      }
      frozen.forEach((m, i) => {
        const applied = tracks[i]!.appliedOffset!;
        if (applied > m.info.masterReplOffset) throw new Error(`the sync reports offset ${applied}, beyond the paused source's ${m.info.masterReplOffset}${frozen.length === 1 ? '' : ` (master ${m.label})`}: writes were not paused`);
      });
      const target = frozen.reduce((t, m) => t + m.info.masterReplOffset, 0);
      const catchUpMs = Date.now() - started;
      this.log.info({ offset: target, catchUpMs }, 'caught up; verifying');
      const giveUp = new AbortController();
      const verify = await this.withinBudget(deadline, this.verify(giveUp.signal), 'the verify', giveUp);
      if (verify.differences > 0) throw new Error(`verify found ${verify.differences} differences among ${verify.compared} keys compared (${verify.examples.join('; ')})`);
      // The source cannot have moved: a changed offset means the pause did not hold.
      const after = await this.masters();
      after.forEach((m, i) => {
        const was = frozen[i]!.info.masterReplOffset;
        if (m.info.masterReplOffset !== was) throw new Error(`the source offset${after.length === 1 ? '' : ` of master ${m.label}`} moved from ${was} to ${m.info.masterReplOffset} during the pause (did something unpause it?)`);
      });
      const other = await this.otherCutover();
      if (other !== null) throw new Error(`${other}: its UNPAUSE (or its abort) would end this pause under it`);
      this.checkBudget(deadline, 'while checking the source after the verify');
      const targetKeys = sum(await readKeyspace(this.target!)) - (await reservedKeyCount(this.target!));
      let unpaused = false;
      if (this.o.unpause) {
        await this.onEveryMaster(['CLIENT', 'UNPAUSE']);
        unpaused = true;
      }
      const now = Date.now();
      const cluster = source.clusterMasters !== null;
      return {
        source: source.label,
        target: this.target!.label,
        replid: cluster ? `${frozen.length} shards (below)` : frozen[0]!.info.masterReplid,
        sourceOffset: target,
        appliedOffset: tracks.reduce((t, x) => t + x.appliedOffset!, 0),
        behindAtPauseBytes: behind,
        positionFrom: pos.from,
        catchUpMs,
        verify,
        sourceKeys: after.reduce((t, m) => t + sum(m.info.keys), 0),
        targetKeys,
        pausedMs: now - started,
        unpaused,
        pauseEndsAt: unpaused ? null : started + maxPause,
        ...(cluster ? { shards: frozen.map((m, i) => ({ master: m.label, replid: m.info.masterReplid, sourceOffset: m.info.masterReplOffset, appliedOffset: tracks[i]!.appliedOffset! })) } : {}),
      };
    } catch (e) {
      throw await this.abort(e);
    } finally {
      this.pausing = false;
    }
  }

  /** Another cutover connected to a source master (by its client name), said as a reason; null when none (or CLIENT LIST is refused). */
  private async otherCutover(): Promise<string | null> {
    const s = this.source!;
    const lists = await s.everyNode(0, ['CLIENT', 'LIST', 'TYPE', 'normal']);
    for (let i = 0; i < lists.length; i++) {
      const l = lists[i];
      if (l instanceof ServerReply || l instanceof Error) {
        this.log.warn({ source: s.clusterMasters?.[i] ?? s.label, err: (l as Error).message }, 'CLIENT LIST refused: cannot see whether another cutover runs against this source');
        continue;
      }
      for (const line of String(l).split('\n')) {
        const name = /(?:^| )name=(\S*)/.exec(line)?.[1];
        if (name !== undefined && name.startsWith(CUTOVER_CLIENT) && name !== this.clientName) {
          const addr = /(?:^| )addr=(\S*)/.exec(line)?.[1] ?? 'unknown';
          return `another cutover is running against source ${s.clusterMasters?.[i] ?? s.label} (client ${name} from ${addr})`;
        }
      }
    }
    return null;
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
    const r = await new Verifier({ source: this.o.source, target: this.o.target, ...(this.o.tls ? { tls: this.o.tls } : {}), sample, settleMs: 0, maxDiffs: 5, signal, logger: this.log }).run();
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
      await this.onEveryMaster(['CLIENT', 'UNPAUSE']);
      resumed = `writes resumed on the source after ${Date.now() - this.pausedAt!} ms`;
    } catch (e) {
      resumed = `CLIENT UNPAUSE failed (${(e as Error).message}): the pause ends by itself at ${new Date(this.pausedAt! + this.o.maxPauseMs).toISOString()}`;
    }
    this.log.error({ reason }, 'cutover aborted');
    return new CutoverAbortedError(`cutover aborted: ${reason}; ${resumed}`, { cause });
  }
}
