/**
 * End-to-end replication lag, measured the same way for any replica (native or Replicant):
 *
 * every `everyMs` the prober SETs the probe key to a sequence number on the source, noting the
 * send time; a second connection polls GET on the replica/target back to back (1 ms pause
 * between polls). When a poll sees sequence n, every probe ≤ n not seen yet is resolved:
 * lag = time seen − time sent. The probe travels the same stream as the load, so this is what
 * an application would observe (source queueing + propagation + apply + one poll interval),
 * not what the tool says about itself.
 */
import type { Redis } from 'ioredis';

export class LagProbe {
  private seq = 0;
  private readonly sentAt: number[] = [0];
  private readonly lagMs: number[] = [0];
  private seen = 0;
  polls = 0;
  private writer: NodeJS.Timeout | null = null;
  private polling = false;
  private pollLoop: Promise<void> | null = null;

  constructor(
    private readonly src: Redis,
    private readonly dst: Redis,
    readonly key: string,
    private readonly everyMs = 10,
  ) {}

  start(): void {
    this.polling = true;
    this.writer = setInterval(() => this.sendOne(), this.everyMs);
    this.pollLoop = this.poll();
  }

  private sendOne(): number {
    const n = ++this.seq;
    this.sentAt[n] = performance.now();
    this.src.set(this.key, String(n)).catch(() => {});
    return n;
  }

  private async poll(): Promise<void> {
    while (this.polling) {
      const v = await this.dst.get(this.key).catch(() => null);
      this.polls++;
      const n = v === null ? 0 : Number(v);
      if (n > this.seen) {
        const now = performance.now();
        for (let s = this.seen + 1; s <= n; s++) this.lagMs[s] = now - this.sentAt[s]!;
        this.seen = n;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Stop writing; one last probe; wait (up to timeoutMs) until the target shows it. Returns ms waited or null. */
  async drain(timeoutMs = 60_000): Promise<number | null> {
    if (this.writer !== null) clearInterval(this.writer);
    const last = this.sendOne();
    const t0 = performance.now();
    while (this.seen < last) {
      if (performance.now() - t0 > timeoutMs) return null;
      await new Promise((r) => setTimeout(r, 5));
    }
    return performance.now() - t0;
  }

  /** Lags (ms) of the probes sent in [from, to) (performance.now() times); unseen ones count as Infinity. */
  lagsBetween(from: number, to: number): number[] {
    const out: number[] = [];
    for (let s = 1; s <= this.seq; s++) {
      const t = this.sentAt[s]!;
      if (t >= from && t < to) out.push(this.lagMs[s] ?? Infinity);
    }
    return out;
  }

  /** Max lag per `bucketMs` of send time over [from, to): a compact timeline. */
  timeline(from: number, to: number, bucketMs = 250): (number | null)[] {
    const out: number[] = [];
    for (let s = 1; s <= this.seq; s++) {
      const t = this.sentAt[s]!;
      if (t < from || t >= to) continue;
      const b = Math.floor((t - from) / bucketMs);
      out[b] = Math.max(out[b] ?? 0, this.lagMs[s] ?? Infinity);
    }
    return Array.from(out, (v) => (v === undefined ? null : Math.round(v)));
  }

  async close(): Promise<void> {
    if (this.writer !== null) clearInterval(this.writer);
    this.polling = false;
    await this.pollLoop;
  }
}
