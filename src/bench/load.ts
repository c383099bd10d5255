/**
 * The benchmark's load: a dataset of strings under a reserved prefix, and a writer that SETs
 * those keys at a target rate (or as fast as the source takes them) over several connections.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export const BENCH_PREFIX = 'replicant-bench:';

/** Values cut from random bytes (hex), so the RDB's LZF compression does not flatter the MB/s. */
function valuePool(size: number): string {
  return randomBytes(Math.max(64, size * 2)).toString('hex');
}

function valueAt(pool: string, size: number, i: number): string {
  const start = (i * 7) % (pool.length - size);
  return pool.slice(start, start + size);
}

/** `keys` strings of `valueSize` bytes, pipelined; `onProgress` gets the count written so far. */
export async function fillDataset(c: Redis, keys: number, valueSize: number, onProgress: (n: number) => void): Promise<void> {
  const pool = valuePool(valueSize);
  const batch = 1000;
  for (let i = 0; i < keys; i += batch) {
    const p = c.pipeline();
    for (let j = i; j < Math.min(keys, i + batch); j++) p.set(`${BENCH_PREFIX}key:${j}`, valueAt(pool, valueSize, j));
    await p.exec();
    onProgress(Math.min(keys, i + batch));
  }
}

const TICK_MS = 10;
const FLAT_OUT_BATCH = 100;

/** SETs over `clients`: `rate` per second (paced every 10 ms), or flat out when rate is 0. */
export class LoadWriter {
  /** Writes the source acknowledged. */
  acked = 0;
  private sent = 0;
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly pool: string;

  constructor(
    private readonly clients: Redis[],
    private readonly rate: number,
    private readonly keys: number,
    private readonly valueSize: number,
  ) {
    this.pool = valuePool(valueSize);
  }

  start(): void {
    this.running = true;
    this.loops = this.rate > 0 ? [this.paced()] : this.clients.map((c) => this.flatOut(c));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private send(c: Redis, n: number): Promise<void> {
    const p = c.pipeline();
    for (let k = 0; k < n; k++) {
      const i = this.sent++;
      p.set(`${BENCH_PREFIX}key:${i % this.keys}`, valueAt(this.pool, this.valueSize, i));
    }
    return p.exec().then((res) => {
      this.acked += (res ?? []).filter(([err]) => err === null).length;
    });
  }

  private async flatOut(c: Redis): Promise<void> {
    while (this.running) await this.send(c, FLAT_OUT_BATCH);
  }

  private async paced(): Promise<void> {
    const started = performance.now();
    const inFlight = new Set<Promise<void>>();
    let next = 0;
    while (this.running) {
      const due = Math.floor((this.rate * (performance.now() - started)) / 1000) - this.sent;
      // More than a second of writes unanswered: the source cannot keep up; do not pile on.
      if (due > 0 && this.sent - this.acked < this.rate) {
        const per = Math.ceil(due / this.clients.length);
        for (let left = due; left > 0; left -= per) {
          const p = this.send(this.clients[next++ % this.clients.length]!, Math.min(per, left));
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
      }
      await new Promise((r) => setTimeout(r, TICK_MS));
    }
    await Promise.all(inFlight);
  }
}
