import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { encodeCommand, type Arg } from '../../src/resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../src/resp/stream-parser.js';
import { MigrationGuard, SweepRounds } from '../../src/sync/cluster/migration-guard.js';

const cmd = (...args: Arg[]): StreamCommand => new ReplicationStreamParser(0).push(encodeCommand(args))[0]!;
/** RESTORE-ASKING as MIGRATE sends it (the payload does not matter to the guard). */
const restore = (key: string, ...opts: string[]) => cmd('RESTORE-ASKING', key, '0', Buffer.from([0, 1, 0x76, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8]), ...opts);
/** What the target receives, as text arguments (null: nothing). */
const fwd = (out: Buffer | null): string[] | null => (out === null ? null : new ReplicationStreamParser(0).push(out)[0]!.args.map((a) => a.toString('latin1')));

describe('MigrationGuard', () => {
  it('forwards everything untouched while no key was migrated', () => {
    const g = new MigrationGuard();
    for (const c of [cmd('SET', 'k', 'v'), cmd('DEL', 'k', 'j'), cmd('UNLINK', 'k'), cmd('MULTI'), cmd('EXEC')]) expect(g.apply(c, 'A')).toBe(c.raw);
    expect(g.size).toBe(0);
  });

  it("source's DEL first, then the destination's RESTORE: both applied, the key stays", () => {
    const g = new MigrationGuard();
    const del = cmd('DEL', 'k');
    expect(g.apply(del, 'A')).toBe(del.raw);
    expect(fwd(g.apply(restore('k'), 'B'))?.[0]).toBe('RESTORE-ASKING');
    expect(g.ownerOf(Buffer.from('k'))).toBe('B');
    expect(g.droppedDeletes).toBe(0);
  });

  it("destination's RESTORE first: replaces the source's copy, and the source's late DEL is dropped", () => {
    const g = new MigrationGuard();
    const out = fwd(g.apply(restore('k'), 'B'));
    expect(out?.[0]).toBe('RESTORE-ASKING');
    expect(out?.slice(4)).toEqual(['REPLACE']);
    expect(g.apply(cmd('DEL', 'k'), 'A')).toBeNull();
    expect(g.droppedDeletes).toBe(1);
    // Consumed: a later DEL of k from A is a real one (the slot may have come back by then).
    expect(g.size).toBe(0);
    const again = cmd('DEL', 'k');
    expect(g.apply(again, 'A')).toBe(again.raw);
  });

  it('keeps RESTORE-ASKING with REPLACE (and ABSTTL) as it is', () => {
    const g = new MigrationGuard();
    const r = restore('k', 'REPLACE', 'ABSTTL');
    expect(g.apply(r, 'B')).toBe(r.raw);
    const lower = restore('j', 'replace');
    expect(g.apply(lower, 'B')).toBe(lower.raw);
    const ttl = fwd(g.apply(restore('t', 'ABSTTL'), 'B'));
    expect(ttl?.slice(4)).toEqual(['ABSTTL', 'REPLACE']);
  });

  it('drops only the migrated keys of a multi-key DEL (one DEL per MIGRATE ... KEYS batch)', () => {
    const g = new MigrationGuard();
    g.apply(restore('b'), 'B');
    g.apply(restore('d'), 'B');
    expect(fwd(g.apply(cmd('DEL', 'a', 'b', 'c', 'd'), 'A'))).toEqual(['DEL', 'a', 'c']);
    expect(fwd(g.apply(cmd('UNLINK', 'x'), 'A'))).toEqual(['UNLINK', 'x']);
    g.apply(restore('y'), 'B');
    g.apply(restore('z'), 'B');
    expect(fwd(g.apply(cmd('unlink', 'y', 'x', 'z'), 'A'))).toEqual(['unlink', 'x']);
    expect(g.apply(cmd('DEL'), 'A')).not.toBeNull();
    expect(g.droppedDeletes).toBe(4);
    expect(g.size).toBe(0);
  });

  it('drops a migrated key named twice in one DEL both times', () => {
    const g = new MigrationGuard();
    g.apply(restore('k'), 'B');
    expect(fwd(g.apply(cmd('DEL', 'k', 'a', 'k'), 'A'))).toEqual(['DEL', 'a']);
    expect(g.droppedDeletes).toBe(1);
  });

  it('passes a RESTORE-ASKING without a key as it is (the target answers it)', () => {
    const g = new MigrationGuard();
    const bare = cmd('RESTORE-ASKING');
    expect(g.apply(bare, 'B')).toBe(bare.raw);
    expect(g.size).toBe(0);
  });

  it('treats a DEL inside MULTI like any other (MULTI and EXEC pass)', () => {
    const g = new MigrationGuard();
    g.apply(restore('k'), 'B');
    const multi = cmd('MULTI');
    const exec = cmd('EXEC');
    expect(g.apply(multi, 'A')).toBe(multi.raw);
    expect(fwd(g.apply(cmd('DEL', 'k', 'other'), 'A'))).toEqual(['DEL', 'other']);
    expect(g.apply(cmd('DEL', 'k'), 'A')).not.toBeNull(); // consumed above
    expect(g.apply(exec, 'A')).toBe(exec.raw);
  });

  it("applies the owner's own DEL and keeps guarding: a migration's DEL may still come", () => {
    const g = new MigrationGuard();
    g.apply(restore('k'), 'B');
    const own = cmd('DEL', 'k');
    expect(g.apply(own, 'B')).toBe(own.raw);
    expect(g.ownerOf(Buffer.from('k'))).toBe('B');
    // B re-creates k; A's migration DEL arrives only now: k must survive.
    g.apply(cmd('SET', 'k', 'v2'), 'B');
    expect(g.apply(cmd('DEL', 'k'), 'A')).toBeNull();
  });

  it("drops the old owner's writes of a migrated key (from before the MIGRATE), keeps the new owner's", () => {
    const g = new MigrationGuard();
    g.apply(restore('n'), 'B');
    // A's stream lags: INCRs it ran before migrating n arrive after B's RESTORE (which holds their effect).
    expect(g.apply(cmd('INCR', 'n'), 'A')).toBeNull();
    expect(g.apply(cmd('INCR', 'n'), 'A')).toBeNull();
    const own = cmd('INCR', 'n');
    expect(g.apply(own, 'B')).toBe(own.raw);
    expect(g.apply(cmd('DEL', 'n'), 'A')).toBeNull();
    expect(g.droppedWrites).toBe(2);
    expect(g.droppedDeletes).toBe(1);
    expect(g.size).toBe(0);
  });

  it('finds tracked keys at every key position, never in values', () => {
    const g = new MigrationGuard();
    g.apply(restore('t'), 'B');
    const naming = [
      cmd('SET', 't', 'v'),
      cmd('RENAME', 'x', 't'),
      cmd('LMOVE', 't', 'x', 'LEFT', 'RIGHT'),
      cmd('COPY', 'x', 't'),
      cmd('MSET', 'a', '1', 't', '2'),
      cmd('SUNIONSTORE', 'd', 'x', 't'),
      cmd('ZUNIONSTORE', 'd', '2', 'x', 't'),
      cmd('BITOP', 'OR', 'd', 'x', 't'),
      cmd('OBJECT', 'FREQ', 't'),
      cmd('SORT', 'x', 'STORE', 't'),
      cmd('EVAL', 'return 1', '1', 't'),
    ];
    for (const c of naming) expect(g.apply(c, 'A'), c.name).toBeNull();
    const notNaming = [
      cmd('SET', 'x', 't'),
      cmd('MSET', 'a', 't'),
      cmd('ZUNIONSTORE', 'd', '1', 'x', 'WEIGHTS', 't'),
      cmd('SORT', 'x', 'BY', 't'),
      cmd('EVAL', 't', '1', 'x', 't'),
      cmd('PUBLISH', 't', 't'),
      cmd('FLUSHALL'),
    ];
    for (const c of notNaming) expect(g.apply(c, 'A'), c.name).toBe(c.raw);
    expect(g.droppedWrites).toBe(naming.length);
  });

  it('covers a slot that moves A -> B -> A in every order of the two streams but one', () => {
    // A's stream: DEL k (1st migration), RESTORE-ASKING k (2nd); B's: RESTORE-ASKING k (1st), DEL k (2nd).
    // Not covered (module comment, Limits): A's two before B's first, B lagging a whole round trip.
    const a = [() => cmd('DEL', 'k'), () => restore('k')];
    const b = [() => restore('k'), () => cmd('DEL', 'k')];
    const orders = [['a', 'b', 'a', 'b'], ['a', 'b', 'b', 'a'], ['b', 'a', 'a', 'b'], ['b', 'a', 'b', 'a'], ['b', 'b', 'a', 'a']];
    for (const order of orders) {
      const g = new MigrationGuard();
      let exists = true; // the key on the target, starting with A's copy
      const at = { a: 0, b: 0 };
      for (const s of order as Array<'a' | 'b'>) {
        const c = (s === 'a' ? a : b)[at[s]++]!();
        const out = fwd(g.apply(c, s === 'a' ? 'A' : 'B'));
        if (out?.[0] === 'DEL') exists = false;
        if (out?.[0] === 'RESTORE-ASKING') {
          expect(out.includes('REPLACE') || !exists, `order ${order.join('')}: a RESTORE over an existing key needs REPLACE`).toBe(true);
          exists = true;
        }
      }
      expect(exists, `order ${order.join('')}`).toBe(true);
    }
  });

  it('sweep releases the entries tracked before a mark, oldest first', () => {
    const g = new MigrationGuard();
    g.apply(restore('old1'), 'B');
    g.apply(restore('old2'), 'B');
    const m = g.mark();
    g.apply(restore('young'), 'B');
    g.apply(restore('old1'), 'C'); // tracked again: young now
    expect(g.sweep(m)).toBe(1);
    expect(g.ownerOf(Buffer.from('old2'))).toBeUndefined();
    expect(g.ownerOf(Buffer.from('old1'))).toBe('C');
    // Released: the DEL that never came (or came first) no longer matters.
    const del = cmd('DEL', 'old2');
    expect(g.apply(del, 'A')).toBe(del.raw);
    expect(g.apply(cmd('DEL', 'young'), 'A')).toBeNull();
    expect(g.sweep(g.mark())).toBe(1);
    expect(g.size).toBe(0);
  });

  it('caps the entries: the oldest go, with one warning until the next sweep', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
    const g = new MigrationGuard({ maxEntries: 3, logger: pino({ level: 'warn' }, sink) });
    for (const k of ['a', 'b', 'c', 'd', 'e']) g.apply(restore(k), 'B');
    expect(g.size).toBe(3);
    expect(g.evicted).toBe(2);
    expect(g.ownerOf(Buffer.from('a'))).toBeUndefined();
    expect(g.ownerOf(Buffer.from('c'))).toBe('B');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, maxEntries: 3, evicted: 1 });
    g.sweep(0);
    g.apply(restore('f'), 'B');
    expect(lines).toHaveLength(2);
  });

  it('noteSnapshotKey guards a key written by a snapshot like a restored one', () => {
    const g = new MigrationGuard();
    g.noteSnapshotKey(Buffer.from('s'), 'B');
    expect(g.apply(cmd('DEL', 's'), 'A')).toBeNull();
  });

  it('matches binary keys byte for byte', () => {
    const g = new MigrationGuard();
    const k = Buffer.from([0xff, 0x00, 0x80, 0x7b]);
    g.apply(cmd('RESTORE-ASKING', k, '0', Buffer.from('payload')), 'B');
    expect(g.apply(cmd('DEL', Buffer.from([0xff, 0x00, 0x80, 0x7c])), 'A')).not.toBeNull();
    expect(g.apply(cmd('DEL', k), 'A')).toBeNull();
  });

  describe('SweepRounds', () => {
    it('sweeps, once every shard applied its sampled offset, only entries older than the grace before the sample', () => {
      const g = new MigrationGuard();
      let now = 1000;
      const rounds = new SweepRounds(g, 10_000, () => now);
      g.apply(restore('early'), 'B');
      rounds.begin(new Map([['A', 100], ['B', 50]]), now); // round 1: mark after 'early'
      now += 5_000;
      g.apply(restore('late'), 'B');
      expect(rounds.applied('A', 100)).toBe(0);
      expect(rounds.applied('B', 49)).toBe(0);
      // Round 1 complete, but its mark is not older than the grace before its own sample.
      expect(rounds.applied('B', 50)).toBe(0);
      expect(g.size).toBe(2);
      now += 6_000; // 11 s after round 1's mark
      rounds.begin(new Map([['A', 200], ['B', 300]]), now);
      expect(rounds.applied('B', 400)).toBe(0);
      expect(rounds.applied('C', 999)).toBe(0); // not part of the round
      expect(rounds.applied('A', 200)).toBe(1); // sweeps with round 1's mark: 'early' only
      expect(g.ownerOf(Buffer.from('early'))).toBeUndefined();
      expect(g.ownerOf(Buffer.from('late'))).toBe('B');
      expect(rounds.applied('A', 300)).toBe(0); // no round pending
    });

    it('a new round replaces a pending one (a shard that left would hold it forever)', () => {
      const g = new MigrationGuard();
      let now = 0;
      const rounds = new SweepRounds(g, 1_000, () => now);
      g.apply(restore('k'), 'B');
      rounds.begin(new Map([['A', 10], ['gone', 10]]), now);
      now = 5_000;
      rounds.begin(new Map([['A', 20]]), now);
      expect(rounds.applied('A', 20)).toBe(0); // completes round 2: its own mark is too young
      now = 10_000;
      rounds.begin(new Map(), now); // no shard to wait for: completes at once, sweeps round 2's mark
      expect(g.size).toBe(0);
    });
  });
});

describe('MigrationGuard: a RESTORE is ordered after what other shards sent before it (restore-order.ts)', () => {
  /** A command ending at `offset` in its shard's stream. */
  const at = (offset: number, ...args: Arg[]): StreamCommand => new ReplicationStreamParser(offset - encodeCommand(args).length).push(encodeCommand(args))[0]!;

  it("the exporting shard's DEL seen first but not applied yet: the RESTORE waits until it is applied", async () => {
    const g = new MigrationGuard();
    g.order.begin('A', 100);
    g.order.begin('B', 500);
    const del = at(130, 'DEL', 'k');
    expect(g.apply(del, 'A')).toBe(del.raw);
    const r = restore('k');
    expect(g.order.mustWait('B')).toBe(true);
    expect(g.order.mustWait('A')).toBe(false);
    g.apply(r, 'B');
    let released = false;
    const waiting = g.order.wait('B').then(() => (released = true));
    await Promise.resolve();
    g.order.applied('A', 120);
    await Promise.resolve();
    expect(released).toBe(false);
    g.order.applied('A', 130);
    await waiting;
    expect(g.order.held).toBe(1);
    // Nothing in flight any more: the next RESTORE does not wait.
    expect(g.order.mustWait('B')).toBe(false);
  });

  it('a wait is released when the other shard\'s stream ends (what it sent is applied or will come again), and never taken twice', async () => {
    const g = new MigrationGuard();
    g.order.begin('A', 0);
    g.order.begin('B', 0);
    g.apply(at(50, 'INCR', 'k'), 'A');
    g.apply(restore('k'), 'B');
    const waiting = g.order.wait('B');
    g.order.end('A');
    await waiting;
    await g.order.wait('B');
    expect(g.order.held).toBe(1);
  });

  it('nothing sent by other shards, or no lanes (the guard used alone): no wait', async () => {
    const g = new MigrationGuard();
    g.apply(restore('k'), 'B');
    await g.order.wait('B');
    g.order.begin('A', 10);
    g.order.begin('B', 10);
    expect(g.order.mustWait('B')).toBe(false);
    g.apply(restore('j'), 'B');
    await g.order.wait('B');
    expect(g.order.held).toBe(0);
  });
});
