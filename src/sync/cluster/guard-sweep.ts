/**
 * Releases the migration guard's entries no migration DEL can still pair with. Each round records
 * a mark and every shard's received offset; once every shard has applied what it had received at
 * round k, a DEL issued by the source before round k-1 was marked has been applied, so the
 * entries tracked before that mark are released (a whole round of margin for a DEL in flight).
 */
import type { Logger } from '../../observe/logger.js';
import type { MigrationGuard } from './migration-guard.js';
import type { ShardProgress } from './shard.js';

/** Rounds kept while some shard does not stream (dropping old marks only delays sweeps). */
const MAX_ROUNDS = 1000;

export class GuardSweep {
  private rounds: { mark: number; received: Map<string, number> }[] = [];

  constructor(private readonly guard: MigrationGuard, private readonly log: Logger) {}

  /** One round over the shards of this process (key → progress). */
  round(shards: ReadonlyMap<string, () => ShardProgress>): void {
    const received = new Map<string, number>();
    for (const [key, progress] of shards) {
      const p = progress();
      if (p.received !== null) received.set(key, p.received);
    }
    this.rounds.push({ mark: this.guard.mark(), received });
    if (this.rounds.length > MAX_ROUNDS) this.rounds.shift();
    let done = -1;
    for (const [i, r] of this.rounds.entries()) {
      const applied = [...shards].every(([key, progress]) => {
        const p = progress();
        const want = r.received.get(key);
        return p.streaming && p.applied !== null && want !== undefined && p.applied >= want;
      });
      if (applied) done = i;
    }
    if (done < 1) return;
    const released = this.guard.sweep(this.rounds[done - 1]!.mark);
    if (released > 0) this.log.debug({ released, tracked: this.guard.size }, 'migration guard: released keys no DEL can still arrive for');
    this.rounds = this.rounds.slice(done);
  }
}
