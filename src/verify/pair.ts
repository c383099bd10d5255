/** The two sides of a comparison in one database, and helpers shared by the value readers. */
import type { Arg, VerifySide } from './side.js';

export interface SidePair {
  source: VerifySide;
  target: VerifySide;
  db: number;
}

/** The same command on both sides, concurrently. */
export function both(pair: SidePair, args: Arg[]): Promise<[unknown, unknown]> {
  return Promise.all([pair.source.call(pair.db, args), pair.target.call(pair.db, args)]);
}

/** The smallest stream id after `id` ("ms-seq"), for XRANGE / XPENDING paging (exclusive ranges need 6.2+). */
export function nextStreamId(id: string): string {
  const [ms, seq] = id.split('-') as [string, string];
  const s = BigInt(seq) + 1n;
  return s > 0xffffffffffffffffn ? `${BigInt(ms) + 1n}-0` : `${ms}-${s}`;
}
