/**
 * One process's part in sharing a cluster source sync: every round it beats (members.ts), looks
 * at which shards a live process holds (their leases), and says which free shards it claimed
 * (each lease taken with SET NX: one claimer wins) and which of its shards to give back
 * (claims.ts decides). The coordinator starts and stops the sessions accordingly.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../../observe/logger.js';
import { SyncLease, type NodeCall } from '../../checkpoint/lease.js';
import type { SyncIdentity } from '../../checkpoint/identity.js';
import { ShardMembers, type MemberInfo } from './members.js';
import { planClaims, shardQuota } from './claims.js';

/** What /status says about the sharing. */
export interface SharingStatus {
  /** This process, as the members hash names it. */
  member: string;
  maxShards: number | null;
  /** Shards this process holds at most now (its share of the live processes, within --max-shards). */
  quota: number;
  /** The live processes of this sync (this one included), oldest first, with the shards each holds. */
  members: MemberInfo[];
  /** Shards no live process holds at the last round (one that waits for a process: every one is at its quota). */
  waiting: string[];
}

export interface ShardState {
  key: string;
  /** Held by this process (and not being given back). */
  mine: boolean;
  streaming: boolean;
}

export class ShardSharing {
  readonly members: ShardMembers;
  private nextBeatAt = 0;
  private quota = 0;
  private waiting: string[] = [];
  /** Leases of free shards this process tried to claim (kept: a lease unchanged for a TTL is stale). */
  private readonly claimants = new Map<string, SyncLease>();
  private memberIds = '';
  private readonly warned = new Set<string>();

  constructor(
    private readonly o: { name: string; ttlMs: number; maxShards: number | null; log: Logger; identity: (key: string) => SyncIdentity },
  ) {
    this.members = new ShardMembers(o.name, o.ttlMs, o.maxShards);
  }

  /** The lease of shard `key` for a session of this process. */
  leaseFor(key: string): SyncLease {
    const id = this.o.identity(key);
    return new SyncLease({ key: id.leaseKey, id: id.id, clientPrefix: id.clientPrefix, ttlMs: this.o.ttlMs, logger: this.o.log.child({ shard: key }) });
  }

  /** One round: the heartbeat when due, then the shards claimed now (their leases ours) and the ones to give back. */
  async round(call: NodeCall, shards: readonly ShardState[]): Promise<{ claimed: Map<string, SyncLease>; give: string[] }> {
    if (Date.now() >= this.nextBeatAt) await this.beat(call, shards.filter((s) => s.mine).map((s) => s.key));
    const views = [];
    for (const s of shards) {
      const held = s.mine || Number(await call(['EXISTS', this.o.identity(s.key).leaseKey])) === 1;
      views.push({ ...s, held });
    }
    const live = this.members.live.some((m) => m.id === this.members.id) ? this.members.live : [...this.members.live, { id: this.members.id, maxShards: this.o.maxShards }];
    this.quota = shardQuota(shards.length, live, this.members.id);
    const plan = planClaims(views, this.quota, (key) => spread(this.members.id, key));
    const claimed = new Map<string, SyncLease>();
    for (const key of plan.claim) {
      const lease = this.claimants.get(key) ?? this.leaseFor(key);
      this.claimants.set(key, lease);
      if (await lease.claim(call)) {
        this.claimants.delete(key);
        claimed.set(key, lease);
      }
    }
    this.waiting = views.filter((v) => !v.held && !claimed.has(v.key)).map((v) => v.key);
    for (const key of this.waiting) {
      if (this.warned.has(key) || plan.claim.includes(key)) continue;
      this.warned.add(key);
      this.o.log.warn({ shard: key, quota: this.quota, members: live.length }, 'a shard waits for a process: every live process of this sync holds as many shards as it may (--max-shards); start another one');
    }
    for (const key of this.warned) if (!this.waiting.includes(key)) this.warned.delete(key);
    if (claimed.size > 0) await this.beat(call, [...shards.filter((s) => s.mine).map((s) => s.key), ...claimed.keys()]);
    return { claimed, give: plan.give };
  }

  /** Leaves the members (a graceful stop): the others share the shards without waiting for a TTL. */
  async leave(call: NodeCall): Promise<void> {
    await this.members.leave(call);
  }

  status(): SharingStatus {
    return { member: this.members.id, maxShards: this.o.maxShards, quota: this.quota, members: this.members.live, waiting: this.waiting };
  }

  private async beat(call: NodeCall, mine: string[]): Promise<void> {
    this.nextBeatAt = Date.now() + this.o.ttlMs / 3;
    const live = await this.members.beat(call, mine);
    const ids = live.map((m) => m.id).join(',');
    if (ids !== this.memberIds) {
      if (this.memberIds !== '' || live.length > 1) this.o.log.info({ members: live.map((m) => ({ id: m.id, shards: m.shards })) }, `${live.length} process${live.length === 1 ? '' : 'es'} share this sync's shards`);
      this.memberIds = ids;
    }
  }
}

/** A per-process order of the shards: processes claiming at the same moment try different free shards first. */
function spread(member: string, key: string): number {
  return createHash('sha1').update(`${member}/${key}`).digest().readUInt32BE(0);
}
