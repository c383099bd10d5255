/**
 * The exactly-once claim, proven without timing: the units the streaming step hands to a
 * recording writer carry their checkpoint write inside the same transaction as the batch, and
 * the GETSET proof detects a target that lost what it applied. (The writer wraps an atomic unit
 * in MULTI … EXEC; test/integration/target-writer.test.ts checks that on a real server.)
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { parseCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { FileCheckpointStore, TargetCheckpointStore } from '../../src/checkpoint/store.js';
import { encodeCommand, encodeCommands, type Arg } from '../../src/resp/encode.js';
import { splitCommands } from '../../src/resp/request-decoder.js';
import type { StreamUnit } from '../../src/sync/relay/batcher.js';
import { submitStreamUnit } from '../../src/sync/steps/streaming.js';
import { createSyncContext } from '../../src/sync/wiring.js';
import type { SyncContext } from '../../src/sync/context.js';
import type { TargetInfo, UnitWriter, WriteUnit } from '../../src/writer/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Recorded {
  commands: string[][];
  atomic: boolean;
  offset: number | undefined;
}

/**
 * A writer that records every unit and answers like a target would: GETSET returns the key's
 * previous value, everything else +OK; the 'applied' event follows, in order.
 */
class RecordingWriter extends EventEmitter implements UnitWriter {
  readonly units: Recorded[] = [];
  readonly keys = new Map<string, string>();
  readonly info = { cluster: false, databases: 16, runId: 'recording' } as TargetInfo;
  readonly stats = { commands: 0, units: 0, errors: 0, bytes: 0 };
  readonly masters = ['recording:0'];
  pendingUnits = 0;

  submit(unit: WriteUnit): boolean {
    const cmds = splitCommands(unit.payload)!.map((c) => c.args.map((a) => a.toString('latin1')));
    expect(cmds).toHaveLength(unit.count);
    this.units.push({ commands: cmds, atomic: unit.atomic === true, offset: unit.offset });
    const replies = cmds.map((c) => {
      if (c[0] !== 'GETSET') return 'OK';
      const prev = this.keys.get(c[1]!) ?? null;
      this.keys.set(c[1]!, c[2]!);
      return prev;
    });
    unit.onExecReply?.(replies);
    if (unit.offset !== undefined) this.emit('applied', unit.offset);
    return true;
  }
  async waitDrain(): Promise<void> {}
  async flush(): Promise<void> {}
  async call(): Promise<unknown> {
    return 'OK';
  }
  nodeCalls() {
    return [];
  }
  masterSlots() {
    return [];
  }
  openStreamed(): never {
    throw new Error('not used here');
  }
  atomicSlot(): number {
    return 0;
  }
  setMaxInflight(): void {}
  async close(): Promise<void> {}
  destroy(): void {}
}

function context(): { ctx: SyncContext; writer: RecordingWriter; applied: number[] } {
  const applied: number[] = [];
  const ctx = createSyncContext({ source: 'redis://127.0.0.1:1', target: 'redis://127.0.0.1:2', name: 'rec' }, { phase: () => {}, fullSyncDone: () => {}, applied: (o) => applied.push(o) });
  const writer = new RecordingWriter();
  writer.on('applied', (offset: number) => ctx.units.onApplied(offset));
  ctx.target.writer = writer;
  ctx.run.state = 'streaming';
  ctx.run.phase = 'streaming';
  ctx.tracker.replid = 'a'.repeat(40);
  return { ctx, writer, applied };
}

function targetStore(ctx: SyncContext): TargetCheckpointStore {
  return new TargetCheckpointStore(
    {
      runAtomic: async (commands: Arg[][]) => {
        let replies: unknown[] = [];
        await ctx.units.submit([encodeCommands(commands)], commands.length, true, undefined, ctx.units.db, undefined, (r) => (replies = r));
        return replies;
      },
      get: async () => null,
    },
    ctx.identity.checkpointKey,
    0,
  );
}

const unit = (offset: number, ...cmds: Arg[][]): StreamUnit => {
  const commands = cmds.map((c) => encodeCommand(c));
  return { commands, atomic: true, offset, dbAfter: 0, bytes: commands.reduce((n, b) => n + b.length, 0) };
};

describe('the checkpoint of each unit (recording writer)', () => {
  it('is written inside the transaction of the batch it covers, by GETSET, with the offset of the batch', async () => {
    const { ctx, writer, applied } = context();
    ctx.store = targetStore(ctx);
    // The streaming checkpoint the full sync stored (what the first unit's GETSET must find).
    await ctx.store.write(ctx.tracker.current('streaming', 100, 0), 0);
    ctx.tracker.expect(100);
    writer.units.length = 0;
    await submitStreamUnit(ctx, unit(130, ['INCR', 'a'], ['SET', 'b', '1']));
    await submitStreamUnit(ctx, unit(170, ['LPUSH', 'l', 'x']));
    expect(writer.units).toHaveLength(2);
    for (const [i, u] of writer.units.entries()) {
      // One transaction: the source's commands, then the checkpoint write, nothing after it.
      expect(u.atomic).toBe(true);
      const last = u.commands[u.commands.length - 1]!;
      expect(last[0]).toBe('GETSET');
      expect(last[1]).toBe('__replicant:checkpoint:rec');
      const cp = parseCheckpoint(last[2]!)!;
      expect(cp.offset).toBe(u.offset);
      expect(cp.state).toBe('streaming');
      expect(u.commands.slice(0, -1).map((c) => c[0])).toEqual(i === 0 ? ['INCR', 'SET'] : ['LPUSH']);
    }
    expect(applied).toEqual([130, 170]);
    expect(ctx.units.applied).toBe(170);
    expect(ctx.run.copyLost).toBeNull();
  });

  it('a GETSET that finds another checkpoint than the previous unit\'s means the target lost what it applied', async () => {
    const { ctx, writer } = context();
    ctx.store = targetStore(ctx);
    await ctx.store.write(ctx.tracker.current('streaming', 100, 0), 0);
    ctx.tracker.expect(100);
    await submitStreamUnit(ctx, unit(130, ['INCR', 'a']));
    expect(ctx.run.copyLost).toBeNull();
    // The target is flushed behind our back (FLUSHALL by someone, an empty restart).
    writer.keys.clear();
    await submitStreamUnit(ctx, unit(170, ['INCR', 'a']));
    expect(ctx.run.copyLost).toMatch(/applying offset 170 found no checkpoint where offset 130 was/);
  });

  it('a source FLUSHALL in the unit: Replicant\'s lease and registration are put back inside the same transaction, before the checkpoint', async () => {
    const { ctx, writer } = context();
    ctx.store = targetStore(ctx);
    ctx.tracker.expect(100);
    ctx.owner.registration = { source: 'src', sourceRunId: null, upstream: [], checkpointKey: ctx.identity.checkpointKey, leaseKey: ctx.identity.leaseKey, since: 0 };
    const u = unit(130, ['SET', 'a', '1'], ['FLUSHALL']);
    u.reservedReset = { kind: 'flush' };
    await submitStreamUnit(ctx, u);
    const names = writer.units[0]!.commands.map((c) => `${c[0]} ${c[1] ?? ''}`.trim());
    expect(writer.units[0]!.atomic).toBe(true);
    expect(names).toEqual(['SET a', 'FLUSHALL', 'SELECT 0', 'SET __replicant:lease:rec', 'HSET __replicant:syncs', 'SELECT 0', 'GETSET __replicant:checkpoint:rec']);
    // A flush empties the key the GETSET reads: no false alarm.
    expect(ctx.run.copyLost).toBeNull();
  });

  it('a copy that began clean: the foreign-writes ledger opens the transaction and closes it before the checkpoint; a FLUSHALL starts a new one', async () => {
    const { ctx, writer } = context();
    ctx.store = targetStore(ctx);
    ctx.tracker.cleanStart = true;
    ctx.tracker.expect(100);
    ctx.lease.lapses = 1;
    await submitStreamUnit(ctx, unit(130, ['SET', 'a', '1']));
    const u = unit(170, ['SET', 'b', '1'], ['FLUSHALL']);
    u.reservedReset = { kind: 'flush', all: true };
    await submitStreamUnit(ctx, u);
    const shape = (c: string[]) => (c[0] === 'EVAL' ? `EVAL ${c[c.length - 4]} ${c[c.length - 2]}` : `${c[0]} ${c[1] ?? ''}`.trim());
    expect(writer.units[0]!.commands.map(shape)).toEqual(['EVAL begin 1', 'SET a', 'EVAL end 0', 'GETSET __replicant:checkpoint:rec']);
    // The lease's lapse went with the first unit's opening script only.
    expect(ctx.lease.lapses).toBe(0);
    expect(writer.units[1]!.commands.map(shape)).toEqual(['EVAL begin 0', 'SET b', 'FLUSHALL', 'SELECT 0', 'SET __replicant:lease:rec', 'SELECT 0', 'EVAL reset 0', 'GETSET __replicant:checkpoint:rec']);
    // Its own keys include the ledger, last.
    expect(writer.units[0]!.commands[0]!.slice(3, 8)).toEqual(['__replicant:lease:rec', '__replicant:syncs', '__replicant:checkpoint:rec', '__replicant:preflight', '__replicant:ledger:rec']);
    expect(ctx.units.pending).toEqual([]);
  });

  it('with the checkpoint in a file, units are not wrapped and carry no checkpoint write (at-least-once)', async () => {
    const { ctx, writer } = context();
    ctx.store = new FileCheckpointStore(join(mkdtempSync(join(tmpdir(), 'replicant-cp-')), 'cp.json'));
    const u = unit(130, ['INCR', 'a']);
    u.atomic = false;
    await submitStreamUnit(ctx, u);
    expect(writer.units).toEqual([{ commands: [['INCR', 'a']], atomic: false, offset: 130 }]);
    await ctx.store.flush();
    expect((await ctx.store.load())?.offset).toBe(130);
  });
});
