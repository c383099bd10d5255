/**
 * The sampled verify of a cutover: `n` keys picked with RANDOMKEY (per db, in proportion to its
 * keys) on the source, and as many on the target (to catch keys only the target has), checked
 * with the verifier's KeyChecker. Unlike `verify --sample`, which walks the whole keyspace with
 * SCAN and keeps a fraction, this costs the same whatever the size of the dataset: the pause it
 * is timed against does not grow with the data.
 */
import { isOwnKey } from '../checkpoint/reserved.js';
import type { Logger } from '../observe/logger.js';
import { probeSide } from '../verify/capabilities.js';
import { KeyChecker } from '../verify/check.js';
import { ServerReply, type VerifySide } from '../verify/side.js';

export interface SampleOutcome {
  compared: number;
  equal: number;
  differences: number;
  /** Up to 5 examples: `db N key "k": kind (detail)`. */
  examples: string[];
  durationMs: number;
}

/** Keys per RANDOMKEY pipeline and per checked batch. */
const BATCH = 200;

async function randomKeys(side: VerifySide, db: number, n: number): Promise<Buffer[]> {
  const out = new Map<string, Buffer>();
  for (let left = n; left > 0; left -= BATCH) {
    const replies = await side.randomKeys(db, Math.min(BATCH, left));
    for (const r of replies) {
      if (r instanceof ServerReply) throw side.fail(new Error(r.message), 'RANDOMKEY');
      // Replicant's own keys exist on the target only.
      if (Buffer.isBuffer(r) && !isOwnKey(r)) out.set(r.toString('latin1'), r);
    }
  }
  return [...out.values()];
}

/** `n` keys split over the dbs in proportion to their sizes (at least one per non-empty db). */
function share(keyspace: Map<number, number>, n: number): Map<number, number> {
  const total = [...keyspace.values()].reduce((a, b) => a + b, 0);
  const out = new Map<number, number>();
  for (const [db, keys] of keyspace) if (keys > 0) out.set(db, Math.min(keys, Math.max(1, Math.round((n * keys) / total))));
  return out;
}

export async function checkRandomSample(source: VerifySide, target: VerifySide, n: number, logger: Logger, signal?: AbortSignal): Promise<SampleOutcome> {
  const started = Date.now();
  const [sc, tc] = await Promise.all([probeSide(source), probeSide(target)]);
  const checker = new KeyChecker({
    source,
    target,
    fingerprint: sc.debug && tc.debug ? 'digest-value' : 'dump',
    expiry: sc.pexpiretime && tc.pexpiretime ? 'pexpiretime' : 'pttl',
    describe: () => true,
    logger,
  });
  const picks = new Map<number, Map<string, Buffer>>();
  for (const [side, caps] of [[source, sc], [target, tc]] as const) {
    for (const [db, count] of share(caps.keyspace, n)) {
      const m = picks.get(db) ?? new Map<string, Buffer>();
      for (const k of await randomKeys(side, db, count)) m.set(k.toString('latin1'), k);
      picks.set(db, m);
    }
  }
  const out: SampleOutcome = { compared: 0, equal: 0, differences: 0, examples: [], durationMs: 0 };
  for (const [db, keys] of [...picks].sort((a, b) => a[0] - b[0])) {
    const list = [...keys.values()];
    for (let i = 0; i < list.length; i += BATCH) {
      signal?.throwIfAborted();
      const batch = list.slice(i, i + BATCH);
      const verdicts = await checker.check(db, batch);
      verdicts.forEach((v, j) => {
        if (v.kind === 'absent' || v.kind === 'outside') return;
        out.compared++;
        if (v.kind === 'equal') out.equal++;
        else {
          out.differences++;
          if (out.examples.length < 5) out.examples.push(`db ${db} key ${JSON.stringify(batch[j]!.toString('latin1'))}: ${v.kind} (${v.detail})`);
        }
      });
    }
  }
  out.durationMs = Date.now() - started;
  return out;
}
