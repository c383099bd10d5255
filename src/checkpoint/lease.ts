/**
 * Only one instance of a sync may apply batches to the target: a lease key on the target
 * (`SET NX PX`), renewed by its holder every third of its time to live.
 *
 * A second instance that finds the lease alive (its value changes as the holder renews it)
 * refuses at once (exit 10). One whose holder is provably dead (this host, boot and pid namespace,
 * its process gone: a restart after a crash) takes it over at once. One that finds it stale (not
 * renewed: the holder died elsewhere) waits for it to expire, takes it. Either then *fences* the previous holder: it kills every target connection
 * carrying this sync's client name but another token. Ownership thus travels with the batches:
 * a batch reaches the target only on a connection that was opened and checked under a live
 * lease, and such connections are killed before the new holder reads the checkpoint, so the
 * old holder cannot apply even one more batch after the new one starts.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { ExitCode, ReplicantError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { Arg } from '../resp/encode.js';

export class LeaseError extends ReplicantError {
  constructor(message: string) {
    super('LOCKED', message, ExitCode.LOCKED);
  }
}

/** A way to run one command on one target node (the cluster writer has one per master). */
export type NodeCall = (args: readonly Arg[]) => Promise<unknown>;

export interface LeaseOptions {
  key: string;
  /** Sync id (for messages). */
  id: string;
  /** Client names of this sync's connections start with this. */
  clientPrefix: string;
  ttlMs: number;
  logger: Logger;
}

interface Holder {
  token: string;
  host: string;
  pid: number;
  /** Where `pid` means something: this boot of the machine and this pid namespace (absent when unknown). */
  pidSpace?: string;
  since: number;
  renewedAt: number;
}

export class SyncLease {
  readonly token = randomBytes(8).toString('hex');
  readonly clientName: string;
  private readonly since = Date.now();
  private timer: NodeJS.Timeout | null = null;
  /** Renewal loops started: only the latest one goes on. */
  private loops = 0;
  private fenceWarned = false;
  /** The lease value claim() last saw held by another, and since when (an unchanged one is stale). */
  private claimSeen = { value: '', since: 0 };
  /**
   * Times this instance found the lease gone and set it again when it may have expired: an
   * expiry the target counts in its expired_keys (the foreign-writes ledger forgives them; it
   * resets this). Gone sooner than its TTL after we set it, it was deleted (a flush), not expired.
   */
  lapses = 0;
  /** When the lease was last set by this instance (the request's send time), 0 before. */
  private setAt = 0;

  constructor(private readonly opts: LeaseOptions) {
    this.clientName = `${opts.clientPrefix}${this.token}`;
  }

  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  /** The lease value with a fresh renewal time (its change is what tells a live holder). */
  currentValue(): string {
    const space = pidSpace();
    const h: Holder = { token: this.token, host: hostname(), pid: process.pid, ...(space === null ? {} : { pidSpace: space }), since: this.since, renewedAt: Date.now() };
    return JSON.stringify(h);
  }

  /**
   * Take the lease, waiting (at most its time to live) for a dead holder's lease to expire;
   * throws LeaseError while another holder is alive. Then fences the previous holder. Returns
   * false when `cancelled()` turned true while waiting.
   */
  async acquire(call: NodeCall, nodes: NodeCall[], sleep: (ms: number) => Promise<void>, cancelled: () => boolean): Promise<boolean> {
    const { key, ttlMs } = this.opts;
    let seen: string | null = null;
    let seenSince = 0;
    let announced = false;
    for (;;) {
      const sent = Date.now();
      if ((await call(['SET', key, this.currentValue(), 'NX', 'PX', ttlMs])) !== null) {
        this.setAt = sent;
        this.lapses++;
        break;
      }
      const cur = await call(['GET', key]);
      if (cur === null) continue;
      const text = String(cur);
      const holder = parseHolder(text);
      if (holder?.token === this.token) break;
      // A holder that provably died (a restart after a crash, under a supervisor): no need to wait for its TTL.
      if (holder !== null && provablyDead(holder)) {
        if (await this.takeOver(call, text)) {
          this.opts.logger.warn({ sync: this.opts.id, holder: `${holder.host} pid ${holder.pid}` }, 'the instance that held this sync is dead (this host and boot, its process is gone): lease taken over at once');
          break;
        }
        continue;
      }
      // A live holder changes the value at every renewal (every third of the TTL).
      if (seen !== null && text !== seen) throw new LeaseError(this.refusal(holder, 'it renewed its lease just now'));
      if (seen === null) seenSince = Date.now();
      seen = text;
      // Unchanged for longer than a TTL, yet still there (something keeps the key alive without
      // renewing it: a PEXPIRE, a restored backup): its holder is gone. Taken over only if it still is that value.
      if (Date.now() - seenSince > ttlMs + STALE_MARGIN_MS) {
        if (await this.takeOver(call, text)) {
          this.opts.logger.warn({ sync: this.opts.id, holder: holder ? `${holder.host} pid ${holder.pid}` : text.slice(0, 100) }, 'the lease of this sync was kept alive without being renewed for longer than its time to live: its holder is gone; taken over');
          break;
        }
        continue;
      }
      if (!announced) {
        announced = true;
        const pttl = Number(await call(['PTTL', key]));
        this.opts.logger.warn({ sync: this.opts.id, holder: holder ? `${holder.host} pid ${holder.pid}` : text.slice(0, 100), expiresInMs: pttl }, 'another instance held this sync until recently: waiting to see whether it is alive (it would renew its lease) or gone');
      }
      await sleep(Math.max(100, Math.min(500, ttlMs / 6)));
      if (cancelled()) return false;
    }
    await this.fence(nodes);
    return true;
  }

  /**
   * One try, without waiting (a process sharing a cluster source's shards claims a free one):
   * true when the lease is now ours. A holder provably dead is taken over at once; a lease seen
   * unchanged by earlier tries for longer than its TTL is taken as its holder's leftover. The
   * previous holder is fenced when the session starts (acquire).
   */
  async claim(call: NodeCall): Promise<boolean> {
    const { key, ttlMs } = this.opts;
    const sent = Date.now();
    if ((await call(['SET', key, this.currentValue(), 'NX', 'PX', ttlMs])) !== null) {
      // As in acquire(): the previous holder's lease may have expired (the ledger forgives it).
      this.setAt = sent;
      this.lapses++;
      return true;
    }
    const cur = await call(['GET', key]);
    if (cur === null) return false;
    const text = String(cur);
    const holder = parseHolder(text);
    if (holder?.token === this.token) return true;
    if (text !== this.claimSeen.value) this.claimSeen = { value: text, since: Date.now() };
    const stale = Date.now() - this.claimSeen.since > ttlMs + STALE_MARGIN_MS;
    return (holder !== null && provablyDead(holder)) || stale ? this.takeOver(call, text) : false;
  }

  /** SET the lease to ours only if it still holds `expected` (one script: nothing can slip in between). */
  private async takeOver(call: NodeCall, expected: string): Promise<boolean> {
    const sent = Date.now();
    const r = await call(['EVAL', TAKE_OVER, 1, this.opts.key, expected, this.currentValue(), this.opts.ttlMs]);
    const taken = r !== null && r !== 0 && String(r) === 'OK';
    if (taken) this.setAt = sent;
    return taken;
  }

  private refusal(holder: Holder | null, why: string): string {
    const who = holder ? `${holder.host} pid ${holder.pid}, running since ${new Date(holder.since).toISOString()}` : 'unknown';
    return `sync "${this.opts.id}" is already running (${who}; ${why}): only one instance may write to the target. Stop it first, or give this sync another --name if it really is a different one`;
  }

  /** Kill the target connections of earlier holders of this sync (on every node). */
  async fence(nodes: NodeCall[]): Promise<number> {
    let killed = 0;
    for (const call of nodes) {
      try {
        const list = String(await call(['CLIENT', 'LIST']));
        for (const line of list.split('\n')) {
          const name = /(?:^| )name=(\S*)/.exec(line)?.[1];
          const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
          if (!name || !id || !name.startsWith(this.opts.clientPrefix) || name === this.clientName) continue;
          killed += Number(await call(['CLIENT', 'KILL', 'ID', id])) > 0 ? 1 : 0;
        }
      } catch (e) {
        if (!this.fenceWarned) {
          this.fenceWarned = true;
          this.opts.logger.warn({ err: (e as Error).message }, 'cannot list or kill the connections of an earlier instance of this sync (CLIENT LIST/KILL refused): relying on the lease alone');
        }
      }
    }
    if (killed > 0) this.opts.logger.warn({ sync: this.opts.id, connections: killed }, 'fenced an earlier instance of this sync: killed its target connections');
    return killed;
  }

  /**
   * Confirm the lease is still ours and extend it; re-take it if it expired meanwhile (a target
   * outage longer than the lease, or a target that lost its data): true then. Throws LeaseError when another instance holds it.
   */
  async renew(call: NodeCall): Promise<boolean> {
    const { key, ttlMs } = this.opts;
    // One script: check that the lease is ours (or gone) and extend it, with nothing in between.
    const sent = Date.now();
    const r = await call(['EVAL', RENEW, 1, key, `"token":"${this.token}"`, this.currentValue(), ttlMs]);
    const mayHaveExpired = sent >= this.setAt + ttlMs;
    if (Number(r) === 1 || Number(r) === 2) this.setAt = sent;
    if (Number(r) === 1) return false;
    if (Number(r) === 2) {
      if (mayHaveExpired) this.lapses++;
      this.opts.logger.warn({ sync: this.opts.id }, 'the lease was gone (expired while the target was unreachable for longer than --lease-ttl, or the target lost its data): taken again');
      return true;
    }
    const holder = parseHolder(String(r));
    throw new LeaseError(`sync "${this.opts.id}": another instance (${holder ? `${holder.host} pid ${holder.pid}` : 'unknown'}) took over the target; this one stops without applying anything more`);
  }

  /**
   * Renew every third of the time to live until stop(); `onLost` gets the error that ends it,
   * `onRenewed` runs after each renewal.
   */
  startRenewing(call: () => NodeCall | null, onLost: (e: Error) => void, onRenewed?: (retaken: boolean) => void): void {
    // One renewal loop: a lease claimed by the cluster coordinator is renewed by it until its session takes over.
    this.stop();
    const loop = ++this.loops;
    const live = (): boolean => this.timer !== null && this.loops === loop;
    const tick = (): void => {
      const c = call();
      const next = (): void => {
        if (live()) this.timer = setTimeout(tick, this.opts.ttlMs / 3).unref();
      };
      if (c === null) return next();
      this.renew(c).then((retaken) => {
        if (!live()) return;
        onRenewed?.(retaken);
        next();
      }, (e: unknown) => {
        if (!live()) return;
        if (e instanceof LeaseError) {
          this.stop();
          onLost(e);
        } else next(); // the target connection failed: the session reconnects and confirms the lease
      });
    };
    this.timer = setTimeout(tick, this.opts.ttlMs / 3).unref();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * FLUSHALL the target (a standalone server) with this lease, and the hash fields in `keep`,
   * written again in the same script: no moment exists at which the lease is missing and a
   * second instance could take it. Refused (LeaseError, nothing flushed) when another instance
   * holds the lease. `db` is where Replicant's keys live.
   */
  async flushAll(call: NodeCall, db: number, keep: readonly (readonly [key: string, field: string, value: string])[]): Promise<void> {
    const { key, ttlMs } = this.opts;
    const sent = Date.now();
    const r = await call(['EVAL', FLUSH_ALL, 1 + keep.length, key, ...keep.map((k) => k[0]), db, `"token":"${this.token}"`, this.currentValue(), ttlMs, ...keep.flatMap((k) => [k[1], k[2]])]);
    if (Number(r) === 1) {
      this.setAt = sent;
      return;
    }
    const holder = parseHolder(String(r));
    throw new LeaseError(`sync "${this.opts.id}": another instance (${holder ? `${holder.host} pid ${holder.pid}` : 'unknown'}) holds the lease; this one does not flush the target and stops`);
  }

  /** Give the lease up (graceful stop), only if it is still ours. */
  async release(call: NodeCall): Promise<void> {
    this.stop();
    const cur = await call(['GET', this.opts.key]);
    if (cur !== null && parseHolder(String(cur))?.token === this.token) await call(['DEL', this.opts.key]);
  }
}

/**
 * This machine's boot and this process's pid namespace, or null when either cannot be read (not
 * Linux, /proc hidden): a pid names the same process only within both.
 */
function pidSpace(): string | null {
  if (cachedPidSpace !== undefined) return cachedPidSpace;
  try {
    cachedPidSpace = `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()} ${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    cachedPidSpace = null;
  }
  return cachedPidSpace;
}
let cachedPidSpace: string | null | undefined;

/**
 * The holder ran on this host, in this boot and pid namespace, and its process no longer exists:
 * it cannot renew or write again. Anything less certain (another host, an unknown boot, a
 * process that exists, even frozen) is not: the lease is then waited for as before.
 */
function provablyDead(h: Holder): boolean {
  const space = pidSpace();
  if (space === null || h.pidSpace !== space || h.host !== hostname() || !Number.isInteger(h.pid) || h.pid <= 0 || h.pid === process.pid) return false;
  try {
    process.kill(h.pid, 0);
    return false;
  } catch (e) {
    // EPERM: it exists (another user's process).
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** How much longer than its TTL an unchanged lease is given before it is taken as its holder's leftover. */
const STALE_MARGIN_MS = 1000;

/** KEYS[1]: the lease; ARGV: the value it must still hold, ours, the TTL. */
const TAKE_OVER = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 0";

/**
 * KEYS[1]: the lease; ARGV: our token as it appears in the value, our new value, the TTL.
 * 1: ours, extended; 2: it was gone, taken again; otherwise the other holder's value.
 */
const RENEW = [
  "local cur = redis.call('GET', KEYS[1])",
  "if not cur then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 2 end",
  "if string.find(cur, ARGV[1], 1, true) then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end",
  'return cur',
].join('\n');

/**
 * KEYS[1]: the lease, KEYS[2..]: hashes to write again; ARGV: the db of Replicant's keys, our
 * token as it appears in the value, our new value, the TTL, then field/value per hash.
 * 1: flushed with our keys written again; otherwise the other holder's value (nothing flushed).
 */
const FLUSH_ALL = [
  "redis.call('SELECT', ARGV[1])",
  "local cur = redis.call('GET', KEYS[1])",
  'if cur and not string.find(cur, ARGV[2], 1, true) then return cur end',
  "redis.call('FLUSHALL')",
  "redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])",
  "for i = 2, #KEYS do redis.call('HSET', KEYS[i], ARGV[2 * i + 1], ARGV[2 * i + 2]) end",
  'return 1',
].join('\n');

/** Who holds a lease, from its value (for `replicant status`); null when it is not a lease value. */
export function leaseHolder(text: string): { host: string; pid: number; since: number; renewedAt: number } | null {
  const h = parseHolder(text);
  return h === null ? null : { host: h.host, pid: h.pid, since: h.since, renewedAt: h.renewedAt };
}

function parseHolder(text: string): Holder | null {
  try {
    const o = JSON.parse(text) as Partial<Holder>;
    if (typeof o.token !== 'string') return null;
    return { token: o.token, host: String(o.host), pid: Number(o.pid), ...(typeof o.pidSpace === 'string' ? { pidSpace: o.pidSpace } : {}), since: Number(o.since), renewedAt: Number(o.renewedAt) };
  } catch {
    return null;
  }
}
