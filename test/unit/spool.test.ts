import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool } from '../../src/spool/spool.js';

/** Deterministic pseudo-random numbers (xorshift32), so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Chunk i of a deterministic byte stream: byte at absolute position p is (p * 31 + 7) & 0xff. */
function makeChunk(start: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = ((start + i) * 31 + 7) & 0xff;
  return b;
}

function checkChunk(chunk: Buffer, start: number): void {
  for (let i = 0; i < chunk.length; i++) {
    if (chunk[i] !== (((start + i) * 31 + 7) & 0xff)) throw new Error(`byte ${start + i} differs`);
  }
}

let parent: string;
beforeEach(() => {
  parent = mkdtempSync(join(tmpdir(), 'replicant-spool-test-'));
});
afterEach(() => {
  rmSync(parent, { recursive: true, force: true });
});

/** Reads until the end, checking every byte from stream position `from`; returns the position reached. */
async function readChecked(spool: Spool, from = 0): Promise<number> {
  let got = from;
  for (let c = await spool.read(); c !== null; c = await spool.read()) {
    checkChunk(c, got);
    got += c.length;
  }
  return got;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('Spool', () => {
  it('creates its own directory with a lock file and removes only its own files', async () => {
    writeFileSync(join(parent, 'precious.txt'), 'keep me');
    const spool = await Spool.open({ dir: parent, memoryBudget: 0, segmentSize: 100 });
    expect(spool.path.startsWith(join(parent, `replicant-${process.pid}-`))).toBe(true);
    expect(readdirSync(spool.path)).toContain('lock');
    for (let i = 0; i < 10; i++) {
      spool.append(makeChunk(i * 50, 50));
      while (spool.memoryBytes > 0) await tick();
    }
    expect(spool.diskBytes).toBe(500);
    expect(readdirSync(spool.path).filter((f) => f.endsWith('.spool')).length).toBeGreaterThan(1);
    await spool.close();
    expect(existsSync(spool.path)).toBe(false);
    expect(readdirSync(parent)).toEqual(['precious.txt']);
  });

  it('does not delete a file it did not create in its directory', async () => {
    const spool = await Spool.open({ dir: parent });
    writeFileSync(join(spool.path, 'foreign'), 'x');
    await spool.close();
    // The directory could not be removed (not empty); the foreign file is still there.
    expect(readdirSync(spool.path)).toEqual(['foreign']);
  });

  it('keeps order across memory -> disk -> memory transitions with random chunk sizes', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const r = rng(seed);
      const spool = await Spool.open({ dir: parent, memoryBudget: 4096, diskBudget: 1 << 30, segmentSize: 8192, readChunkSize: 1000 });
      const total = 400_000;
      let sawDisk = false;
      const producer = (async () => {
        let pos = 0;
        while (pos < total) {
          const n = Math.min(total - pos, 1 + Math.floor(r() * (r() < 0.1 ? 20000 : 700)));
          spool.append(makeChunk(pos, n));
          pos += n;
          if (spool.diskBytes > 0 || spool.memoryBytes > 4096) sawDisk = true;
          // Bursts then pauses, so the reader catches up sometimes and memory mode returns.
          if (r() < 0.05) await new Promise((res) => setTimeout(res, 2));
          else if (r() < 0.3) await tick();
        }
        spool.end();
      })();
      let got = 0;
      for (;;) {
        const chunk = await spool.read();
        if (chunk === null) break;
        checkChunk(chunk, got);
        got += chunk.length;
        if (r() < 0.02) await new Promise((res) => setTimeout(res, 1));
      }
      await producer;
      expect(got).toBe(total);
      expect(spool.bufferedBytes).toBe(0);
      expect(sawDisk).toBe(true);
      expect(readdirSync(spool.path).filter((f) => f.endsWith('.spool'))).toEqual([]);
      await spool.close();
      expect(existsSync(spool.path)).toBe(false);
    }
  });

  it('goes memory -> disk -> memory -> disk in order, deterministically', async () => {
    const spool = await Spool.open({ dir: parent, memoryBudget: 1000, segmentSize: 700, readChunkSize: 333 });
    let pos = 0;
    let got = 0;
    const put = async (n: number) => {
      spool.append(makeChunk(pos, n));
      pos += n;
      while (spool.pendingWriteBytes > 0) await tick();
    };
    const take = async (upTo: number) => {
      while (got < upTo) {
        const c = (await spool.read())!;
        checkChunk(c, got);
        got += c.length;
      }
      expect(got).toBe(upTo);
    };
    for (let i = 0; i < 4; i++) await put(200); // memory
    expect(spool.diskBytes).toBe(0);
    for (let i = 0; i < 10; i++) await put(300); // 800 + 300 > 1000: disk from now on
    expect(spool.diskBytes).toBe(3000);
    expect(spool.memoryBytes).toBe(800);
    await take(800); // the memory part only
    await put(50); // memory is free, but this must go behind the disk data
    expect(spool.diskBytes).toBe(3050);
    expect(spool.memoryBytes).toBe(0);
    await take(pos);
    while (spool.diskBytes > 0) {
      const pending = spool.read(); // drops the fully read segment, then waits
      await tick();
      spool.append(makeChunk(pos, 10));
      pos += 10;
      checkChunk((await pending)!, got);
      got += 10;
    }
    await put(900); // caught up: memory again
    expect(spool.diskBytes).toBe(0);
    expect(spool.memoryBytes).toBe(900);
    await put(900); // over the budget: disk again
    expect(spool.diskBytes).toBe(900);
    spool.end();
    got = await readChecked(spool, got);
    expect(got).toBe(pos);
    expect(readdirSync(spool.path)).toEqual(['lock']);
    await spool.close();
  });

  it('never holds more than the memory budget in memory while the reader is away', async () => {
    const spool = await Spool.open({ dir: parent, memoryBudget: 10_000, segmentSize: 1 << 20 });
    for (let i = 0; i < 100; i++) {
      spool.append(makeChunk(i * 1000, 1000));
      await tick();
    }
    while (spool.memoryBytes > 10_000) await tick();
    expect(spool.bufferedBytes).toBe(100_000);
    expect(spool.diskBytes).toBe(90_000);
    spool.end();
    expect(await readChecked(spool)).toBe(100_000);
    await spool.close();
  });

  it('keeps memory chunks and writes waiting for the disk together near the memory budget', async () => {
    const spool = await Spool.open({ dir: parent, memoryBudget: 3000, diskBudget: 1 << 30, segmentSize: 1000 });
    let pos = 0;
    // No awaits: nothing can be written, so every byte past memory waits for the disk.
    while (spool.append(makeChunk(pos, 500))) pos += 500;
    pos += 500;
    // 3000 in memory, then at most the segment size queued (what the budget leaves is 0).
    expect(spool.memoryBytes - spool.pendingWriteBytes).toBe(3000);
    expect(spool.pendingWriteBytes).toBeLessThanOrEqual(1500);
    spool.end();
    const got = await readChecked(spool);
    expect(got).toBe(pos);
    await spool.close();
  });

  it('a lowered memory budget sends later appends to disk, in order; a raised one brings them back', async () => {
    const spool = await Spool.open({ dir: parent, memoryBudget: 100_000, segmentSize: 1 << 20 });
    expect(() => spool.setMemoryBudget(-1)).toThrow(RangeError);
    spool.append(makeChunk(0, 5000));
    spool.setMemoryBudget(1000);
    expect(spool.memoryBudgetBytes).toBe(1000);
    let pos = 5000;
    for (let i = 0; i < 10; i++, pos += 1000) spool.append(makeChunk(pos, 1000));
    // What memory held stays there (read first); the rest went to disk.
    expect(spool.memoryBytes - spool.pendingWriteBytes).toBe(5000);
    while (spool.pendingWriteBytes > 0) await tick();
    expect(spool.diskBytes).toBe(10_000);
    let got = 0;
    while (got < pos) {
      const c = (await spool.read())!;
      checkChunk(c, got);
      got += c.length;
    }
    spool.setMemoryBudget(100_000);
    spool.append(makeChunk(pos, 2000));
    // Everything on disk was read: appends fit in memory again.
    expect(spool.pendingWriteBytes).toBe(0);
    expect(spool.memoryBytes).toBe(2000);
    spool.end();
    got = await readChecked(spool, got);
    expect(got).toBe(pos + 2000);
    await spool.close();
  });

  it('returns false when the disk cannot keep up with appends (write lag)', async () => {
    const spool = await Spool.open({ dir: parent, memoryBudget: 1000, diskBudget: 1 << 30, segmentSize: 1000 });
    let pos = 0;
    // No awaits: nothing can be written yet, so the queued bytes pass the lag limit.
    while (spool.append(makeChunk(pos, 300))) pos += 300;
    pos += 300;
    expect(pos).toBeLessThan(3000);
    await spool.waitForSpace();
    expect(spool.isFull).toBe(false);
    spool.end();
    const got = await readChecked(spool);
    expect(got).toBe(pos);
    await spool.close();
  });

  it('returns false over the disk budget, resumes after reading, and never drops bytes', async () => {
    const spool = await Spool.open({ dir: parent, memoryBudget: 0, diskBudget: 10_000, segmentSize: 2_000 });
    let pos = 0;
    let accepted = true;
    while (accepted) {
      accepted = spool.append(makeChunk(pos, 700));
      pos += 700;
      // Let the write land, so the disk budget (not the write lag) is what stops us.
      while (spool.memoryBytes > 0) await tick();
      expect(pos).toBeLessThan(20_000);
    }
    expect(pos).toBeGreaterThan(10_000);
    expect(spool.isFull).toBe(true);
    let resumed = false;
    const space = spool.waitForSpace().then(() => (resumed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(resumed).toBe(false);
    // Everything appended is readable, including the chunk that crossed the budget.
    let got = 0;
    while (!resumed) {
      const c = await spool.read();
      checkChunk(c!, got);
      got += c!.length;
      await tick();
    }
    await space;
    expect(spool.isFull).toBe(false);
    expect(spool.diskBytes + spool.memoryBytes).toBeLessThanOrEqual(10_000);
    spool.end();
    got = await readChecked(spool, got);
    expect(got).toBe(pos);
    await spool.close();
  });

  it('waits while empty and returns null after end', async () => {
    const spool = await Spool.open({ dir: parent });
    const pending = spool.read();
    let settled = false;
    void pending.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    spool.append(Buffer.from('abc'));
    expect((await pending)?.toString()).toBe('abc');
    const last = spool.read();
    spool.end();
    expect(await last).toBeNull();
    expect(() => spool.append(Buffer.from('x'))).toThrow(/after end/);
    await spool.close();
  });

  it('rejects a concurrent read and a read after close', async () => {
    const spool = await Spool.open({ dir: parent });
    const first = expect(spool.read()).rejects.toThrow(/closed/);
    await expect(spool.read()).rejects.toThrow(/pending/);
    await spool.close();
    await first;
    await expect(spool.read()).rejects.toThrow(/closed/);
  });
});
