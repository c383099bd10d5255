/**
 * How the shards of one cluster source sync are shared among the processes that run it (pure
 * decisions; the coordinator acts on them with the shards' leases, which make every claim
 * exclusive). Each process holds up to its quota: the shards divided among the live members,
 * with the members capped by --max-shards taking no more than their cap and the others sharing
 * the rest. A process over its quota (a member joined) gives shards back at a checkpoint
 * boundary; one under it claims shards that no live process holds.
 */
import type { MemberInfo } from './members.js';

/**
 * This member's quota. Water-filling: members whose cap is below the even share are held to
 * their cap, and what they leave is shared by the others (rounded up, so that the quotas always
 * cover every shard when the caps allow it).
 */
export function shardQuota(shards: number, members: readonly Pick<MemberInfo, 'id' | 'maxShards'>[], self: string): number {
  let open = members.slice();
  let left = shards;
  for (;;) {
    if (open.length === 0) return 0;
    const share = Math.ceil(left / open.length);
    const capped = open.filter((m) => m.maxShards !== null && m.maxShards < share);
    if (capped.length === 0) return open.some((m) => m.id === self) ? share : 0;
    const me = capped.find((m) => m.id === self);
    if (me !== undefined) return me.maxShards!;
    for (const m of capped) left -= m.maxShards!;
    open = open.filter((m) => !capped.includes(m));
  }
}

export interface ShardView {
  key: string;
  /** Held by this process. */
  mine: boolean;
  /** Held by a live process (this one or another), as its lease says. */
  held: boolean;
  /** This process's session of it streams (only such a shard is given away: a copy in progress is not interrupted). */
  streaming: boolean;
}

/**
 * What to do now: the shards to claim (free ones, as many as the quota allows) and the shards to
 * give back (streaming ones, newest claim last in `shards` order is kept: the last ones go).
 * `order` spreads the processes over different free shards when they claim at the same time.
 */
export function planClaims(shards: readonly ShardView[], quota: number, order: (key: string) => number): { claim: string[]; give: string[] } {
  const mine = shards.filter((s) => s.mine);
  if (mine.length > quota) {
    const give = mine.filter((s) => s.streaming).slice(quota - mine.length).map((s) => s.key);
    return { claim: [], give };
  }
  const free = shards.filter((s) => !s.held).sort((a, b) => order(a.key) - order(b.key));
  return { claim: free.slice(0, quota - mine.length).map((s) => s.key), give: [] };
}
