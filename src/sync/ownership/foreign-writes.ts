/**
 * Keys other clients create on the target, counted by the target itself, so that a full resync
 * flushes only a target that holds nothing this sync did not write (resync.ts).
 *
 * With the checkpoint on the target every stream batch is one MULTI/EXEC: nothing else runs
 * inside it. A script opens and one closes each batch and read the target's figures: its keys
 * (INFO keyspace, every db, minus this sync's own keys) and the keys it removed itself
 * (`expired_keys` + `evicted_keys`). What changes inside a batch is this sync's doing; what
 * changes between the end of one batch and the start of the next, or until the resync decision
 * (a stop, a crash, a restart in between), is not: keys created there, net of what the target
 * expired or evicted, are other clients' keys. They are added up in the hash
 * `__replicant:ledger:<name>` (home db), in the same transactions as the data. The ledger starts
 * when a full sync's copy is complete (or a relayed FLUSHALL emptied the target).
 *
 * The lease is this sync's one key with a TTL: when it expired (a crash, a long outage) the
 * target counted it in expired_keys. The lease says how often it found itself gone (`lapses`);
 * a graceful release (DEL, no expiry) is marked first so that the next instance does not
 * forgive an expiry that never happened.
 *
 * Not seen (README, Safety): writes during a snapshot transfer, keys created then deleted by
 * others, values others overwrite in keys of the copy. Statistics reset on the target (a
 * restart, CONFIG RESETSTAT), a missing ledger or a refused INFO make the count unknown: a flush
 * is then refused unless the target holds no key but Replicant's own. Only a standalone target
 * with the checkpoint on it (not a cluster source's shard) keeps a ledger.
 */
import { REGISTRY_KEY } from '../../checkpoint/identity.js';
import { reservedKey } from '../../checkpoint/reserved.js';
import { encodeCommand, type Arg } from '../../resp/encode.js';
import type { SyncContext } from '../context.js';
import type { ReservedReset } from '../relay/batcher.js';
import { countForeignKeys } from './existing.js';

/**
 * KEYS: this sync's own keys in the home db, the ledger last. ARGV: mode, home db, lease lapses,
 * the target's run_id. Ledger fields: k, e (keys not ours, keys the target expired or evicted, at
 * the end of the last batch), c, id (its total_commands_processed and run_id then: a restart or
 * a CONFIG RESETSTAT shows there), f (keys others created), x (lapses of the lease: expiries of
 * ours counted in f), u (why the count is unknown: a code of UNKNOWN), r (the lease was released,
 * not expired). Modes: begin, end, reset (a new ledger), released, peek (returns {f - x, u}
 * without writing). No ledger and no checkpoint (KEYS[3]): the target lost its data (flushed,
 * restarted empty), others' keys with it; counting starts again from what it holds now. EXISTS
 * comes first: it expires an own key that is due before INFO counts it.
 * Plain finds rather than patterns: INFO stats is long (this keeps the script at a few µs). `begin`
 * writes only what changed (most batches change nothing there), but always on a ledger that does
 * not exist yet: `end` takes a missing ledger for one deleted inside the batch.
 */
const LEDGER = `if redis.replicate_commands then redis.replicate_commands() end
local m, L = ARGV[1], KEYS[#KEYS]
redis.call('SELECT', ARGV[2])
if m == 'released' then
  if redis.call('EXISTS', L) == 1 then redis.call('HSET', L, 'r', 1) end
  return 0
end
local k, e, c = -redis.call('EXISTS', unpack(KEYS)), nil, nil
local ks, st = redis.pcall('INFO', 'keyspace'), redis.pcall('INFO', 'stats')
local function num(name) local i = string.find(st, name, 1, true) return i and tonumber(string.match(st, '^%d+', i + #name)) end
if type(ks) == 'string' and type(st) == 'string' then
  for n in string.gmatch(ks, 'keys=(%d+)') do k = k + tonumber(n) end
  local x, v = num('expired_keys:'), num('evicted_keys:')
  c = num('total_commands_processed:')
  if x and v and c then e = x + v end
end
if m == 'end' or m == 'reset' then
  if m == 'reset' then redis.call('DEL', L) elseif redis.call('EXISTS', L) == 0 then redis.call('HSET', L, 'u', 'deleted') end
  if e then redis.call('HSET', L, 'k', k, 'e', e, 'c', c, 'id', ARGV[4]) else redis.call('HSET', L, 'u', 'info') end
  return 0
end
local last = redis.call('HMGET', L, 'k', 'e', 'c', 'id', 'f', 'x', 'u', 'r')
local u, gain = last[7] or '', 0
if u == '' then
  if not last[1] then
    if redis.call('EXISTS', KEYS[3]) == 1 then u = 'none' end
  elseif not e then u = 'info'
  elseif last[4] ~= ARGV[4] or c < tonumber(last[3]) or e < tonumber(last[2]) then u = 'reset'
  else gain = math.max(0, k - tonumber(last[1]) + e - tonumber(last[2])) end
end
local f0, x0 = tonumber(last[5]) or 0, tonumber(last[6]) or 0
local f = f0 + gain
local x = x0 + math.max(0, tonumber(ARGV[3]) - (last[8] and 1 or 0))
if m == 'peek' then return {math.max(0, f - x), u} end
if not last[1] or f ~= f0 or x ~= x0 then redis.call('HSET', L, 'f', f, 'x', x) end
if u ~= (last[7] or '') then redis.call('HSET', L, 'u', u) end
if last[8] then redis.call('HDEL', L, 'r') end
return 0`;

/** Why the ledger cannot count (its `u`), said in the exit-7 message. */
const UNKNOWN: Record<string, string> = {
  none: 'Replicant has no record of them (its record was deleted, or this sync began under a Replicant version that kept none)',
  info: 'the target refuses INFO to this user',
  reset: 'the target restarted or its statistics were reset (CONFIG RESETSTAT)',
  deleted: 'the record was deleted by a source FLUSHDB of the db holding Replicant\'s keys',
};

const LEDGER_BYTES = Buffer.from(LEDGER);

export type LedgerMode = 'begin' | 'end' | 'reset' | 'released' | 'peek';

/**
 * Whether this sync keeps a ledger: a standalone target (not a cluster source's shard) with the
 * checkpoint on it, and a copy that began clean (otherwise a full resync never flushes anyway).
 */
export function keepsLedger(ctx: SyncContext): boolean {
  return ctx.shard === null && !ctx.target.cluster && ctx.store.atomicWithData && ctx.store.key !== null && ctx.tracker.cleanStart;
}

/** The ledger script in `mode`, as one command (it selects the home db itself; the caller's db is kept). `begin` takes the lease's lapses. */
export function ledgerCommand(ctx: SyncContext, mode: LedgerMode): Arg[] {
  const keys = [ctx.identity.leaseKey, REGISTRY_KEY, ctx.store.key!, reservedKey('preflight'), ctx.identity.ledgerKey];
  const lapses = ctx.lease.lapses;
  if (mode === 'begin' || mode === 'reset') ctx.lease.lapses = 0;
  return ['EVAL', LEDGER_BYTES, keys.length, ...keys, mode, ctx.store.homeDb, mode === 'reset' ? 0 : lapses, ctx.target.data.info.runId];
}

/**
 * The ledger's scripts around a stream unit (null when the sync keeps none): `open` goes first in
 * the unit's transaction, `close` after its commands, before the checkpoint. A unit ending with a
 * FLUSHALL starts a new ledger: nothing another client wrote is left.
 */
export function ledgerAround(ctx: SyncContext, reset: ReservedReset | undefined): { open: Buffer; close: Arg[] } | null {
  if (!keepsLedger(ctx)) return null;
  const open = encodeCommand(ledgerCommand(ctx, 'begin'));
  return { open, close: ledgerCommand(ctx, reset?.kind === 'flush' && reset.all === true ? 'reset' : 'end') };
}

/** Marks a graceful release of the lease (its disappearance is no expiry), then releases it. */
export async function releaseLease(ctx: SyncContext): Promise<void> {
  const call = (a: readonly Arg[]): Promise<unknown> => ctx.target.controlCall(a);
  if (keepsLedger(ctx)) await call(ledgerCommand(ctx, 'released')).catch(() => undefined);
  await ctx.lease.release(call);
}

/**
 * Why a flush would destroy keys other clients wrote, or null when the target's counters say
 * none was created since the last full sync (or when it holds no key but Replicant's own).
 */
export async function foreignWritesSeen(ctx: SyncContext): Promise<string | null> {
  if (!keepsLedger(ctx)) return null;
  const [created, unknown] = (await ctx.target.controlCall(ledgerCommand(ctx, 'peek'))) as [number, Buffer | string];
  const code = String(unknown);
  const why = code === '' ? '' : (UNKNOWN[code] ?? code);
  const n = Number(created);
  if (why === '' && n === 0) return null;
  // Nothing but Replicant's keys on the target: a flush destroys nothing, whatever the ledger says.
  const { foreign } = await countForeignKeys(ctx.target.data, ctx.store.homeDb, false);
  if (foreign === 0) return null;
  const holds = `it holds ${foreign} key${foreign === 1 ? '' : 's'} besides Replicant's`;
  if (why !== '') return `Replicant cannot tell whether other clients wrote to it since the last full sync: ${why}; ${holds}`;
  return `other clients created ${n} key${n === 1 ? '' : 's'} on it since the last full sync (counted by the target: INFO keyspace, expired_keys, evicted_keys, between this sync's batches and while it was stopped); ${holds}`;
}
