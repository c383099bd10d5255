import { describe, expect, it } from 'vitest';
import { encodeCommand, type Arg } from '../../src/resp/encode.js';
import { ReplicationStreamParser } from '../../src/resp/stream-parser.js';
import { StreamBatcher, type StreamBatcherOptions, type StreamUnit } from '../../src/sync/relay/batcher.js';
import { CommandTable } from '../../src/commands/table.js';
import { testRelay } from '../helpers/relay.js';

/** Parse `cmds` (from offset 0), push each through a batcher, then cut the rest. */
function batch(cmds: Arg[][], opts: Partial<StreamBatcherOptions> = {}): { units: StreamUnit[]; batcher: StreamBatcher } {
  const batcher = new StreamBatcher({ db: 0, atomicUnits: false, relay: testRelay().relay, ...opts });
  const units: StreamUnit[] = [];
  const parsed = new ReplicationStreamParser(0).push(Buffer.concat(cmds.map((c) => encodeCommand(c))));
  expect(parsed).toHaveLength(cmds.length);
  for (const c of parsed) batcher.push(c, units);
  const last = batcher.cut();
  if (last !== null) units.push(last);
  return { units, batcher };
}

const text = (u: StreamUnit): string[] => u.commands.map((b) => b.toString('latin1').split('\r\n').filter((_, i) => i > 0 && i % 2 === 0).join(' '));
const len = (...cmds: Arg[][]): number => cmds.reduce((n, c) => n + encodeCommand(c).length, 0);

describe('StreamBatcher', () => {
  it('drops PING and REPLCONF but moves the offset, and cuts at GETACK (that unit asks for an ACK)', () => {
    const cmds: Arg[][] = [['SET', 'a', '1'], ['PING'], ['REPLCONF', 'getack', '*'], ['REPLCONF', 'ACK', '5'], ['INCR', 'b'], ['ping']];
    const { units } = batch(cmds);
    expect(units.map((u) => u.ackNow === true)).toEqual([true, false]);
    expect(units.map(text)).toEqual([['SET a 1'], ['INCR b']]);
    expect(units.map((u) => u.offset)).toEqual([len(...cmds.slice(0, 3)), len(...cmds)]);
    expect(units[1]!.bytes).toBe(len(['INCR', 'b']));
  });

  it('tracks SELECT and forwards it', () => {
    const { units, batcher } = batch([['SELECT', '3'], ['SET', 'k', 'v'], ['select', '12']]);
    expect(units.map(text)).toEqual([['SELECT 3', 'SET k v', 'select 12']]);
    expect(units[0]!.dbAfter).toBe(12);
    expect(batcher.currentDb).toBe(12);
  });

  it('drops commands whose first key is in the reserved namespace (exactly __replicant:), and only those', () => {
    const cmds: Arg[][] = [['SET', '__replicant:checkpoint', 'x'], ['SET', '__replican', 'y'], ['DEL', '__REPLICANT:a'], ['HSET', '__replicant:syncs', 'f', 'v'], ['SET', '__replicant:user', 'u'], ['SET', '__replicantish', 'z'], ['FLUSHALL'], ['SET', 'k', '__replicant']];
    const { relay, figures } = testRelay({ onError: 'fail' });
    const { units } = batch(cmds, { relay });
    // Replicant's own keys (a chained source's bookkeeping) go silently; user data under the prefix is counted as skipped, even under fail.
    expect(figures.skippedCommands).toBe(1);
    // FLUSHALL wipes Replicant's keys too: it ends its unit, flagged, so the session puts them back.
    expect(units.map(text)).toEqual([['SET __replican y', 'DEL __REPLICANT:a', 'SET __replicantish z', 'FLUSHALL'], ['SET k __replicant']]);
    expect(units.map((u) => u.reservedReset)).toEqual([{ kind: 'flush', all: true }, undefined]);
    expect(units[1]!.offset).toBe(len(...cmds));
  });

  it('keeps a source transaction whole: its own unit, or merged into an atomic batch', () => {
    const cmds: Arg[][] = [['SET', 'a', '1'], ['MULTI'], ['INCR', 'b'], ['SET', '__replicant:x', '1'], ['LPUSH', 'l', 'x'], ['EXEC'], ['SET', 'c', '3']];
    const plain = batch(cmds).units;
    expect(plain.map(text)).toEqual([['SET a 1'], ['INCR b', 'LPUSH l x'], ['SET c 3']]);
    expect(plain.map((u) => u.atomic)).toEqual([false, true, false]);
    expect(plain[1]!.offset).toBe(len(...cmds.slice(0, 6)));
    const atomic = batch(cmds, { atomicUnits: true }).units;
    expect(atomic.map(text)).toEqual([['SET a 1', 'INCR b', 'LPUSH l x', 'SET c 3']]);
  });

  it('drops commands in other dbs for a cluster target, except db-agnostic ones, each counted as skipped', () => {
    const cmds: Arg[][] = [['SET', 'a', '1'], ['SELECT', '2'], ['SET', 'b', '2'], ['FLUSHALL'], ['SELECT', '0'], ['SET', 'c', '3']];
    const { relay, figures } = testRelay({ cluster: true });
    const { units } = batch(cmds, { relay });
    expect(figures.skippedCommands).toBe(1);
    expect(figures.errors).toBe(1);
    expect(units.map(text)).toEqual([['SET a 1', 'FLUSHALL'], ['SET c 3']]);
    // Under --on-error fail the same command stops the sync, naming the key and the db.
    expect(() => batch(cmds, { relay: testRelay({ cluster: true, onError: 'fail' }).relay })).toThrow(/SET key "b" in db 2: a cluster target has only db 0/);
  });

  it('a source FLUSH on a target shared with another sync: never relayed; skipped and counted (the copy is then incomplete)', () => {
    const cmds: Arg[][] = [['SET', 'a', '1'], ['FLUSHALL'], ['SELECT', '1'], ['FLUSHDB'], ['SET', 'b', '2']];
    const { relay, figures } = testRelay({ otherSyncs: ['other'] });
    const { units } = batch(cmds, { relay });
    expect(units.flatMap(text)).toEqual(['SET a 1', 'SELECT 1', 'SET b 2']);
    expect(figures.skippedCommands).toBe(2);
    expect(figures.shortfall().skippedCommands).toBe(2);
    expect(() => batch(cmds, { relay: testRelay({ otherSyncs: ['other'], onError: 'fail' }).relay })).toThrow(/shared with other syncs \(other\)/);
    // Alone on the target, a FLUSHALL is relayed.
    expect(batch(cmds).units.flatMap(text)).toContain('FLUSHALL');
  });

  it('flags FLUSHDB of the reserved db and SWAPDB with it, in and out of transactions', () => {
    const cmds: Arg[][] = [['SELECT', '3'], ['FLUSHDB'], ['SWAPDB', '1', '2'], ['SELECT', '0'], ['FLUSHDB'], ['SET', 'a', '1'], ['SWAPDB', '1', '0'], ['MULTI'], ['SET', 'b', '1'], ['SWAPDB', '0', '4'], ['EXEC'], ['SET', 'c', '1']];
    for (const atomicUnits of [false, true]) {
      const { units } = batch(cmds, { atomicUnits });
      expect(units.filter((u) => u.reservedReset !== undefined).map((u) => u.reservedReset)).toEqual([{ kind: 'flush' }, { kind: 'swap', a: 1, b: 0 }, { kind: 'swap', a: 0, b: 4 }]);
      // Each flagged command is the last of its unit (the session appends its fix-up after it).
      for (const u of units) if (u.reservedReset !== undefined) expect(text(u).at(-1)).toMatch(/^(FLUSHDB|SWAPDB|SET b 1|SWAPDB 0 4)/);
    }
  });

  it('cuts a unit at maxCommands and maxBytes', () => {
    const cmds: Arg[][] = Array.from({ length: 7 }, (_, i) => ['SET', `k${i}`, 'v']);
    expect(batch(cmds, { maxCommands: 3 }).units.map((u) => u.commands.length)).toEqual([3, 3, 1]);
    expect(batch(cmds, { maxBytes: 2 * len(cmds[0]!) }).units.map((u) => u.commands.length)).toEqual([2, 2, 2, 1]);
  });
  it('a command the target does not know is left out, in and out of a transaction, and its bytes still move the offset', () => {
    const cmds: Arg[][] = [['SET', 'a', '1'], ['HSET', 'h', 'f', 'v'], ['MULTI'], ['SET', 'b', '2'], ['HSET', 'h2', 'f', 'v'], ['EXEC'], ['HSET', 'h3', 'f', 'v']];
    // A target whose COMMAND reply lists SET and SELECT but not HSET (renamed or disabled there).
    const table = CommandTable.parse([
      ['set', -3, [], 1, 1, 1],
      ['select', 2, [], 0, 0, 0],
    ])!;
    const { relay, figures } = testRelay({ table });
    const { units } = batch(cmds, { atomicUnits: true, relay });
    expect(figures.skippedCommands).toBe(3);
    expect(units[0]!.offset).toBe(len(...cmds));
  });
});
