/**
 * Who writes to the target. Every sync registers itself in the target's registry (source, its
 * run_id, the servers upstream of it, its checkpoint and lease keys). Read at start and at
 * every lease renewal, the registry tells this sync which keys are not its own (other syncs'),
 * refuses a second sync of the same source (atomically with the registration), a source that is
 * the target itself, and loops.
 */
import { UsageError } from '../../errors.js';
import { REGISTRY_KEY, parseRegistration, parseRegistry, type SyncRegistration } from '../../checkpoint/identity.js';
import { fullResyncReason } from '../../replication/identity.js';
import type { BeforePsync } from '../../replication/link.js';
import { describeSource } from '../../replication/source.js';
import type { Checkpoint } from '../../checkpoint/checkpoint.js';
import type { SyncContext } from '../context.js';
import { checkExistingKeys } from './existing.js';
import { fullResyncPlan } from './resync.js';
import { releaseLease } from './foreign-writes.js';
import { selectionOfFingerprint, selectionOverlap } from '../relay/overlap.js';

export class Ownership {
  /** Other syncs registered on the target (their keys are not ours). */
  otherSyncs = new Map<string, SyncRegistration>();
  /** This sync's entry as written by this process. */
  registration: SyncRegistration | null = null;
  /** This sync's entry found in the target's registry (written by an earlier run of it). */
  registeredAs: SyncRegistration | null = null;
  /** First start without a checkpoint: --existing is applied once the source is known not to be the target. */
  existingCheckPending = false;
  /** Why the next full resync happens (logged with it). */
  resyncReason: string | null = null;
  /** Set once anything was written to the target by this process. */
  wroteTarget = false;
  /** This process wrote the sync's entry where there was none: a refusal before any data withdraws it. */
  createdEntry = false;
  private readonly sameSourceSaid = new Set<string>();

  get othersText(): string {
    return [...this.otherSyncs.keys()].join(', ');
  }

  /** Says once per other sync that it shares this sync's source (its lease renewals re-check it). */
  sayOnceAboutSharedSource(name: string): boolean {
    if (this.sameSourceSaid.has(name)) return false;
    this.sameSourceSaid.add(name);
    return true;
  }
}

/** The other syncs writing to this target (a sync added later is seen within a lease period). */
export async function readRegistry(ctx: SyncContext): Promise<void> {
  const o = ctx.owner;
  const all = parseRegistry(await ctx.target.controlCall(['HGETALL', REGISTRY_KEY]));
  o.registeredAs = all.get(ctx.identity.id) ?? null;
  all.delete(ctx.identity.id);
  if (ctx.shard !== null) for (const id of [...all.keys()]) if (ctx.shard.isSibling(id)) all.delete(id);
  const added = [...all.keys()].filter((k) => !o.otherSyncs.has(k));
  if (added.length > 0 && ctx.run.phase !== 'connecting') ctx.log.info({ otherSyncs: added }, 'another sync now writes to this target too: its keys are protected from flushes');
  o.otherSyncs = all;
}

/** The source's ids this sync compares with the target's (INFO at start, or the handshake's). */
interface SourceIds {
  runId: string;
  replid: string;
  /** A replica's master (`host:port`), when INFO says so. */
  masterAddress?: string | undefined;
}

/**
 * A source that is the target itself, or a native replica of it (same replication history, or
 * configured to follow the target's address: its link may not be up yet), would have what
 * Replicant writes come back to it. Refused (exit 2) before anything is written to either server.
 */
export function refuseSourceIsTarget(ctx: SyncContext, src: SourceIds | null): void {
  const target = ctx.target.data.info;
  if (src === null || target.runId === '' || src.runId === '') return;
  const source = describeSource(ctx.sourceSpec);
  const targetLabel = ctx.target.label;
  if (src.runId === target.runId) {
    throw new UsageError(`the source ${source} and the target ${targetLabel} are the same server (run_id ${src.runId}): refusing to sync a server into itself; check --source and --target`);
  }
  // One replication history: the source is a (native) replica of the target, directly or through others.
  if (target.replid !== '' && src.replid === target.replid) {
    throw new UsageError(`replication loop: the source ${source} replicates the target ${targetLabel} (same replication id ${src.replid}): what Replicant writes would come back to it; check --source and --target`);
  }
  if (src.masterAddress !== undefined && sameAddress(src.masterAddress, ctx.target.ep)) {
    throw new UsageError(`replication loop: the source ${source} is a replica of the target ${targetLabel} (it follows ${src.masterAddress}, its link not necessarily up yet): what Replicant writes would come back to it; check --source and --target`);
  }
}

const LOOPBACK = /^(localhost|127(\.\d+){3}|::1|\[::1\])$/i;

/** `host:port` names the endpoint: the same host text, or both loopback (no DNS: what cannot be told is not refused). */
function sameAddress(address: string, ep: { host: string; port: number }): boolean {
  const i = address.lastIndexOf(':');
  if (i < 0 || Number(address.slice(i + 1)) !== ep.port) return false;
  const host = address.slice(0, i);
  return host.toLowerCase() === ep.host.toLowerCase() || (LOOPBACK.test(host) && LOOPBACK.test(ep.host));
}

/** Whether registry entry `r` is a sync of this sync's source (the same address text, or the same run_id). */
function sameSource(r: SyncRegistration, source: string, runId: string | null): boolean {
  return r.source === source || (runId !== null && r.sourceRunId === runId);
}

/**
 * Another sync (another --name) of the same source into this target would apply every write to
 * a key both copy a second time: refused unless their selections are provably disjoint (or
 * --allow-overlap says the user knows better). Returns the refusal, or null (then `r` may stay).
 */
function sameSourceConflict(ctx: SyncContext, name: string, r: SyncRegistration): UsageError | null {
  const mine = ctx.scope.fingerprint;
  const overlap = selectionOverlap(selectionOfFingerprint(r.filter), selectionOfFingerprint(mine));
  if (overlap === null) {
    if (ctx.owner.sayOnceAboutSharedSource(name)) ctx.log.info({ other: name, otherFilter: r.filter, filter: mine }, `sync "${name}" copies other keys of the same source into this target (the two selections are disjoint)`);
    return null;
  }
  if (r.filter === undefined || mine === '') {
    return new UsageError(
      `sync "${name}" already copies the source ${r.source} into this target${r.filter === undefined ? '' : ' (a partial sync)'}: a second sync of it would apply every write twice. ` +
        `Use that sync's --name to resume it, or, if it is finished, forget it with HDEL ${REGISTRY_KEY} ${name}`,
    );
  }
  if (ctx.opts.allowOverlap) {
    if (ctx.owner.sayOnceAboutSharedSource(name)) ctx.log.warn({ other: name, otherFilter: r.filter, filter: mine }, `sync "${name}" copies keys of the same source into this target and ${overlap} (--allow-overlap): a key both select gets every write twice`);
    return null;
  }
  return new UsageError(
    `sync "${name}" already copies keys of the source ${r.source} that this sync would copy too (${overlap}; its filters: ${r.filter}; these: ${mine}): every write to such a key would be applied twice. ` +
      `Make the selections disjoint (--key/--key-prefix whose literal beginnings differ, --exclude-key, other --db or --type), or give --allow-overlap if no key can be in both; a finished sync is forgotten with HDEL ${REGISTRY_KEY} ${name}`,
  );
}

/**
 * Checks the registry and writes this sync's entry in one step (a script), so two syncs of one
 * source started at the same moment cannot both pass the check: the script registers only if
 * every other entry of the same source is one this side has vetted (exactly as it read it).
 */
async function register(ctx: SyncContext, entry: SyncRegistration): Promise<void> {
  const vetted: string[] = [];
  const value = JSON.stringify(entry);
  for (let round = 0; round < 100; round++) {
    const r = await ctx.target.controlCall(['EVAL', REGISTER, 1, REGISTRY_KEY, ctx.identity.id, value, entry.source, entry.sourceRunId ?? '', ...vetted]);
    if (!Array.isArray(r)) return;
    const [name, text] = [String(r[0]), String(r[1])];
    const other = parseRegistration(text);
    if (other !== null && !(ctx.shard?.isSibling(name) ?? false)) {
      const conflict = sameSourceConflict(ctx, name, other);
      if (conflict !== null) throw conflict;
    }
    vetted.push(name, text);
  }
  throw new UsageError(`the registry ${REGISTRY_KEY} on the target keeps changing: could not register sync "${ctx.identity.id}"; retry`);
}

/**
 * KEYS[1]: the registry; ARGV: our id, our entry, our source's address text and run_id ('' when
 * unknown), then name/value pairs already vetted. Returns the first other entry of the same
 * source not vetted (as {name, value}), or 1 once registered.
 */
const REGISTER = [
  'local vetted = {}',
  'for i = 5, #ARGV, 2 do vetted[ARGV[i]] = ARGV[i + 1] end',
  "local all = redis.call('HGETALL', KEYS[1])",
  'for i = 1, #all, 2 do',
  '  local name, value = all[i], all[i + 1]',
  '  if name ~= ARGV[1] and vetted[name] ~= value then',
  '    local ok, e = pcall(cjson.decode, value)',
  "    if ok and type(e) == 'table' and (e.source == ARGV[3] or (ARGV[4] ~= '' and e.sourceRunId == ARGV[4])) then return {name, value} end",
  '  end',
  'end',
  "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])",
  'return 1',
].join('\n');

/** Removes this sync's entry, only if it is still the one this process wrote. */
async function unregister(ctx: SyncContext): Promise<void> {
  const r = ctx.owner.registration;
  if (r === null) return;
  await ctx.target.controlCall(['EVAL', UNREGISTER, 1, REGISTRY_KEY, ctx.identity.id, JSON.stringify(r)]);
  ctx.owner.registration = null;
}

const UNREGISTER = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";

/**
 * At each lease renewal (after readRegistry): an entry of the same source that conflicts with
 * this sync and was registered earlier (written behind the registration script's back, e.g. by
 * an older Replicant) wins; this sync stops (exit 2) and withdraws its entry and lease. The
 * earlier one, seeing a later entry, keeps running.
 */
export async function yieldToEarlierSync(ctx: SyncContext, stop: (e: Error) => void): Promise<void> {
  const mine = ctx.owner.registration;
  if (mine === null) return;
  for (const [name, r] of ctx.owner.otherSyncs) {
    if (!sameSource(r, mine.source, mine.sourceRunId)) continue;
    const earlier = r.since < mine.since || (r.since === mine.since && name < ctx.identity.id);
    if (!earlier) continue;
    const conflict = sameSourceConflict(ctx, name, r);
    if (conflict === null) continue;
    stop(new UsageError(`sync "${name}" registered the source ${r.source} before this one (${new Date(r.since).toISOString()}): ${conflict.message}. This one stops`));
    await unregister(ctx);
    await releaseLease(ctx);
    return;
  }
}

/**
 * Before PSYNC (on the replication connection): refuse a source that is the target itself or
 * that the target feeds (a loop), register this sync on the target (refusing a second sync of
 * the same source in the same step), apply --existing, and when the checkpoint cannot be
 * resumed, say why and apply the full-resync policy before the source forks. Every refusal comes
 * before this sync's entry is written, or withdraws the entry this process wrote.
 */
export async function beforePsync(ctx: SyncContext, hs: BeforePsync, cp: Checkpoint | null): Promise<void> {
  const o = ctx.owner;
  const id = hs.identity;
  ctx.tracker.sourceRunId = id?.runId ?? null;
  const target = ctx.target.data.info;
  const before = o.registeredAs;
  const source = describeSource(ctx.sourceSpec);
  // The same name for another source would adopt that source's checkpoint (and flush its copy).
  if (before !== null && before.source !== source && (id === null || before.sourceRunId !== id.runId)) {
    throw new UsageError(`sync "${ctx.identity.id}" on the target belongs to the source ${before.source}, not ${source}: give this sync another --name (or, if it is the same data at a new address, forget the old entry with HDEL ${REGISTRY_KEY} ${ctx.identity.id})`);
  }
  const known = id !== null && target.runId !== '';
  if (o.registration === null && before === null) o.createdEntry = true;
  try {
    refuseSourceIsTarget(ctx, id);
    const upstream = known ? await upstreamOf(ctx, hs, id.runId) : new Set<string>();
    const entry = (): SyncRegistration => ({
      source,
      sourceRunId: known ? id.runId : null,
      upstream: [...upstream],
      checkpointKey: ctx.store.key ?? '',
      leaseKey: ctx.identity.leaseKey,
      // The first registration's time: which of two syncs of one source came first.
      since: o.registration?.since ?? before?.since ?? Date.now(),
      ...(ctx.scope.fingerprint === '' ? {} : { filter: ctx.scope.fingerprint }),
    });
    // Without the source's identity, an entry written before (with it) is kept.
    const next = known ? entry() : (o.registration ?? entry());
    await register(ctx, next);
    o.registration = next;
    if (o.existingCheckPending) {
      o.existingCheckPending = false;
      await checkExistingKeys(ctx);
    }
    if (cp !== null && id !== null) {
      const why = fullResyncReason(id, cp.replid, cp.offset);
      if (why !== null) {
        o.resyncReason = why;
        // Refuse now rather than after the source has forked and sent its snapshot.
        await fullResyncPlan(ctx, why, cp.cleanStart);
      }
    }
  } catch (e) {
    // A refused start leaves no entry behind: it would make the target look shared, or block a legitimate sync.
    if (o.createdEntry && !o.wroteTarget) await unregister(ctx).catch(() => undefined);
    throw e;
  }
}

/** The servers feeding the source through other syncs (the source's own registry); refuses a loop back to the target. */
async function upstreamOf(ctx: SyncContext, hs: BeforePsync, sourceRunId: string): Promise<Set<string>> {
  const target = ctx.target.data.info;
  const upstream = new Set<string>([sourceRunId]);
  const reg = await hs.call(['HGETALL', REGISTRY_KEY]);
  if (!(reg instanceof Error)) {
    for (const r of parseRegistry(reg).values()) {
      if (r.sourceRunId !== null) upstream.add(r.sourceRunId);
      for (const u of r.upstream) upstream.add(u);
    }
  }
  if (upstream.has(target.runId)) {
    throw new UsageError(`replication loop: the source ${describeSource(ctx.sourceSpec)} is itself fed from the target ${ctx.target.label} (run_id ${target.runId}) by another Replicant sync; refusing to copy it back`);
  }
  upstream.delete(sourceRunId);
  return upstream;
}
