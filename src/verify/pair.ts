/** The two sides of a comparison in one database, and helpers shared by the value readers. */
import type { VerifySide } from './side.js';
import type { Arg } from '../resp/encode.js';

export interface SidePair {
  source: VerifySide;
  target: VerifySide;
  db: number;
  /** Where the key is on the target: another db and name under a partial sync's --db-map / --rename-prefix. */
  targetDb: number;
  /** The source name of the key compared, and its target name. */
  key?: Buffer;
  targetKey?: Buffer;
}

/** The key's name on the target side. */
export function targetName(pair: SidePair, key: Buffer): Buffer {
  return key === pair.key && pair.targetKey !== undefined ? pair.targetKey : key;
}

/** The same command on both sides, concurrently (the key argument named on the target as it is there). */
export function both(pair: SidePair, args: Arg[]): Promise<[unknown, unknown]> {
  const t = pair.targetKey === undefined ? args : args.map((a) => (a === pair.key ? pair.targetKey! : a));
  return Promise.all([pair.source.call(pair.db, args), pair.target.call(pair.targetDb, t)]);
}

/** The smallest stream id after `id` ("ms-seq"), for XRANGE / XPENDING paging (exclusive ranges need 6.2+). */
export function nextStreamId(id: string): string {
  const [ms, seq] = id.split('-') as [string, string];
  const s = BigInt(seq) + 1n;
  return s > 0xffffffffffffffffn ? `${BigInt(ms) + 1n}-0` : `${ms}-${s}`;
}
