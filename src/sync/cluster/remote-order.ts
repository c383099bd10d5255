/**
 * Orders a migrated key's RESTORE after the shards that other processes sync (shards shared
 * among processes): their commands never pass this process's migration guard, so the exporting
 * shard's DEL of the key (and its writes from before the MIGRATE) could reach the target after
 * the RESTORE and delete the key, or count a write twice.
 *
 * Rule: the RESTORE of key k waits until every shard held elsewhere has applied (its checkpoint
 * on the target, written in the same transaction as each of its batches) the offset its master
 * had just after the MIGRATE of k: then that master's DEL of k, and everything it had before, is
 * on the target. MIGRATE is synchronous on the exporting master: it deletes the key and
 * propagates the DEL before it serves any other command. So any INFO it answers after the
 * importing master applied the RESTORE (which is when we can see it) gives such an offset.
 *
 * That offset is read as early as possible: when a chunk holding `RESTORE-ASKING` arrives on the
 * link (noteArrival, at wire speed, before the chunk waits in the spool). Reading it when the
 * RESTORE is applied instead (later, if this shard lags) could name an offset past a RESTORE the
 * other process itself holds waiting for this shard: both would wait for ever. When no sample
 * covers a RESTORE (it arrived during this shard's own snapshot), the offset is read then, after
 * checking that the master no longer has the keys.
 *
 * The cost, during a reshard only: one INFO per other master per arriving chunk with migrated
 * keys (one at a time), and a few reads of the target per batch of them.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../observe/logger.js';
import type { NodeCall } from '../../checkpoint/lease.js';
import { parseCheckpoint } from '../../checkpoint/checkpoint.js';
import { tlsConnectOptions } from '../../net/tls.js';
import { endpointLabel, type SourceEndpoint } from '../../replication/url.js';

/** A shard of the sync that another process holds (or none does yet). */
export interface RemoteShard {
  key: string;
  /** Its master now (null while it has none: a failover). */
  master: SourceEndpoint | null;
  /** Its checkpoint key on the target. */
  checkpointKey: string;
}

/** How often a condition is read again while waiting. */
const POLL_MS = 5;
/** A wait longer than this is logged (it goes on: giving up could lose a key). */
const SLOW_WAIT_MS = 10_000;

/** Every other master's offset, read after this shard's stream up to `upTo` had arrived. */
interface Sample {
  upTo: number;
  offsets: Promise<Map<string, { offset: number; replid: string }>>;
}

const MARK = [Buffer.from('RESTORE-ASKING'), Buffer.from('restore-asking')];
const MARK_TAIL = MARK[0]!.length - 1;

export class RemoteOrder {
  private readonly clients = new Map<string, Promise<Redis>>();
  /** Per shard, oldest first: samples not yet used by a RESTORE. */
  private readonly samples = new Map<string, Sample[]>();
  /** Per shard: the sample being read, and whether a chunk with RESTOREs arrived since it started. */
  private readonly sampling = new Map<string, { again: number | null }>();
  /** Per shard: the last bytes of the previous chunk. */
  private readonly tails = new Map<string, Buffer>();

  constructor(
    private readonly o: { remotes: () => RemoteShard[]; target: NodeCall; log: Logger },
  ) {}

  /** Whether some shard is held by another process (a RESTORE then has to be ordered). */
  active(): boolean {
    return this.o.remotes().length > 0;
  }

  /** A chunk of `shard`'s stream arrived, ending at `offset`: when it holds a RESTORE-ASKING, the other masters' offsets are read now. */
  noteArrival(shard: string, chunk: Buffer, offset: number): void {
    // The mark may straddle two chunks: the previous chunk's tail is looked at with this one's head.
    const tail = this.tails.get(shard);
    this.tails.set(shard, Buffer.from(chunk.subarray(Math.max(0, chunk.length - MARK_TAIL))));
    const seam = tail === undefined ? null : Buffer.concat([tail, chunk.subarray(0, MARK_TAIL)]);
    if (!MARK.some((m) => chunk.includes(m) || (seam?.includes(m) ?? false)) || !this.active()) return;
    const busy = this.sampling.get(shard);
    if (busy !== undefined) {
      busy.again = offset;
      return;
    }
    this.sample(shard, offset);
  }

  private sample(shard: string, upTo: number): void {
    const state = { again: null as number | null };
    this.sampling.set(shard, state);
    const offsets = this.readOffsets();
    const list = this.samples.get(shard) ?? [];
    list.push({ upTo, offsets });
    this.samples.set(shard, list);
    void offsets.catch(() => undefined).finally(() => {
      this.sampling.delete(shard);
      if (state.again !== null) this.sample(shard, state.again);
    });
  }

  private async readOffsets(): Promise<Map<string, { offset: number; replid: string }>> {
    const out = new Map<string, { offset: number; replid: string }>();
    await Promise.all(
      this.o.remotes().map(async (r) => {
        if (r.master === null) return;
        const at = await this.offsetAfter(r.master, []);
        if (at !== null) out.set(r.key, at);
      }),
    );
    return out;
  }

  /** The offsets of the first sample read after `offset` of `shard`'s stream had arrived (older samples dropped), or null. */
  private async sampled(shard: string, offset: number): Promise<Map<string, { offset: number; replid: string }> | null> {
    const list = this.samples.get(shard) ?? [];
    while (list.length > 0 && list[0]!.upTo < offset) list.shift();
    const s = list[0];
    return s === undefined ? null : s.offsets.catch(() => null);
  }

  /** The shard's stream was left (a reconnection, a full resync): its samples say nothing of the next one. */
  forget(shard: string): void {
    this.samples.delete(shard);
    this.tails.delete(shard);
  }

  /** Resolves once every other process's shard has applied what its master did with `keys` (whose last RESTORE starts at `offset` of `shard`'s stream). */
  async settle(shard: string, keys: readonly Buffer[], offset: number): Promise<void> {
    if (keys.length === 0) return;
    const sampled = await this.sampled(shard, offset);
    const started = Date.now();
    let warned = false;
    const slow = (what: Record<string, unknown>): void => {
      if (warned || Date.now() - started < SLOW_WAIT_MS) return;
      warned = true;
      this.o.log.warn({ shard, ...what }, 'slot migration: a key restored by this shard waits until the shard it came from (synced by another process) has applied its removal; still waiting');
    };
    for (const r of this.o.remotes()) {
      let at: { offset: number; replid: string } | null = sampled?.get(r.key) ?? null;
      while (at === null) {
        const master = r.master ?? this.o.remotes().find((x) => x.key === r.key)?.master ?? null;
        at = master === null ? null : await this.offsetAfter(master, keys).catch(() => null);
        if (at === null) {
          slow({ from: r.key, waitingFor: 'its master to have removed the keys' });
          await sleep(POLL_MS);
        }
      }
      while (!(await this.applied(r.checkpointKey, at))) {
        slow({ from: r.key, offset: at.offset });
        await sleep(POLL_MS);
      }
    }
  }

  /** Closes the connections to the other masters. */
  close(): void {
    for (const c of this.clients.values()) void c.then((r) => r.disconnect(), () => undefined);
    this.clients.clear();
  }

  /** The master's offset once it has none of `keys` (a redirect says the key is not there), else null. */
  private async offsetAfter(master: SourceEndpoint, keys: readonly Buffer[]): Promise<{ offset: number; replid: string } | null> {
    const c = await this.client(master);
    const p = c.pipeline();
    for (const k of keys) p.exists(k);
    p.info('replication');
    const replies = (await p.exec()) ?? [];
    for (let i = 0; i < keys.length; i++) {
      const [err, n] = replies[i] ?? [null, 0];
      if (err === null && Number(n) > 0) return null;
      // MOVED / ASK: the key's slot is served elsewhere, or it is not here any more.
      if (err !== null && !/^(MOVED|ASK) /.test(err.message)) throw err;
    }
    const [err, info] = replies[keys.length] ?? [new Error('no INFO reply'), null];
    if (err !== null) throw err;
    const text = String(info);
    const offset = Number(/master_repl_offset:(\d+)/.exec(text)?.[1]);
    const replid = /master_replid:(\w+)/.exec(text)?.[1];
    return Number.isFinite(offset) && replid !== undefined ? { offset, replid } : null;
  }

  /** Whether the shard's checkpoint on the target has reached `at` in the same history. */
  private async applied(checkpointKey: string, at: { offset: number; replid: string }): Promise<boolean> {
    const cp = parseCheckpoint((await this.o.target(['GET', checkpointKey])) as Buffer | string | null);
    return cp !== null && cp.state === 'streaming' && cp.replid === at.replid && cp.offset >= at.offset;
  }

  private client(ep: SourceEndpoint): Promise<Redis> {
    const label = endpointLabel(ep);
    let c = this.clients.get(label);
    if (c === undefined) {
      c = import('ioredis').then(({ Redis }) => {
        const r = new Redis({
          host: ep.host,
          port: ep.port,
          username: ep.username,
          password: ep.password,
          ...(ep.tls === undefined ? {} : { tls: tlsConnectOptions(ep.host, ep.tls) }),
          connectTimeout: 3000,
          maxRetriesPerRequest: 1,
        });
        r.on('error', () => undefined);
        return r;
      });
      this.clients.set(label, c);
    }
    return c;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
