/**
 * The live processes of one cluster source sync (same source, target and --name) that share its
 * shards. Each announces itself in the target, in the hash `__replicant:members:<name>`, every
 * third of the lease TTL; one not heard of for a whole TTL is gone, and the next heartbeat of any
 * member removes it. Ages are measured with the target's clock (TIME in the script), so the hosts'
 * clocks do not matter. Nothing here decides who syncs what: the shards' leases do (claims.ts).
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { reservedKey } from '../../checkpoint/reserved.js';
import type { NodeCall } from '../../checkpoint/lease.js';

/** What a member says of itself (and, read back, how long ago it last did). */
export interface MemberInfo {
  id: string;
  host: string;
  pid: number;
  /** Unix ms when the process started sharing this sync. */
  since: number;
  /** Shard keys it holds. */
  shards: string[];
  /** Its --max-shards (null: no cap). */
  maxShards: number | null;
  /** Milliseconds since its last heartbeat, by the target's clock (0 for this process). */
  ageMs: number;
}

/**
 * KEYS[1]: the members hash. ARGV: `beat` or `leave`, this member's id, the TTL (ms), its JSON.
 * Writes this member (with the target's time) or removes it, drops members older than the TTL,
 * keeps the hash only as long as someone beats, and returns the target's time (ms) and the hash.
 */
const HEARTBEAT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
if ARGV[1] == 'leave' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], now .. ' ' .. ARGV[4])
end
local all = redis.call('HGETALL', KEYS[1])
local out = {tostring(now)}
for i = 1, #all, 2 do
  local at = tonumber(string.match(all[i + 1], '^(%d+) '))
  if at == nil or now - at > ttl then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
if #out == 1 then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ttl * 3) end
return out
`;

export class ShardMembers {
  /** This process, as the other members know it. */
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly key: string;
  private readonly since = Date.now();
  /** The live members at the last heartbeat (this one included). */
  live: MemberInfo[] = [];

  constructor(
    name: string,
    private readonly ttlMs: number,
    private readonly maxShards: number | null,
  ) {
    this.key = membersKey(name);
  }

  /** Announces this process holding `shards`; returns every live member, this one included. */
  async beat(call: NodeCall, shards: readonly string[]): Promise<MemberInfo[]> {
    const me = { host: hostname(), pid: process.pid, since: this.since, shards, maxShards: this.maxShards };
    const [now, ...hash] = (await call(['EVAL', HEARTBEAT, 1, this.key, 'beat', this.id, this.ttlMs, JSON.stringify(me)])) as unknown[];
    this.live = parseMembers(hash, Number(now));
    return this.live;
  }

  /** Leaves (a graceful stop): the others see one member less at once, not after a TTL. */
  async leave(call: NodeCall): Promise<void> {
    await call(['EVAL', HEARTBEAT, 1, this.key, 'leave', this.id, this.ttlMs, '{}']);
  }
}

export function membersKey(name: string): string {
  return reservedKey(`members:${name}`);
}

/** The members hash (HGETALL's flat [id, "<ms> <json>", ...]) read at `nowMs`, the target's time; oldest member first. */
export function parseMembers(hash: readonly unknown[], nowMs: number): MemberInfo[] {
  const out: MemberInfo[] = [];
  for (let i = 0; i + 1 < hash.length; i += 2) {
    const text = String(hash[i + 1]);
    const space = text.indexOf(' ');
    try {
      const m = JSON.parse(text.slice(space + 1)) as Partial<MemberInfo>;
      out.push({
        id: String(hash[i]),
        host: typeof m.host === 'string' ? m.host : '?',
        pid: typeof m.pid === 'number' ? m.pid : 0,
        since: typeof m.since === 'number' ? m.since : 0,
        shards: Array.isArray(m.shards) ? m.shards.map(String) : [],
        maxShards: typeof m.maxShards === 'number' ? m.maxShards : null,
        ageMs: Math.max(0, nowMs - Number(text.slice(0, space))),
      });
    } catch {
      // Not a member entry: left out.
    }
  }
  return out.sort((a, b) => a.since - b.since || a.id.localeCompare(b.id));
}
