/**
 * End-to-end replication lag, measured the same way for any replica (native or Replicant):
 *
 * every `everyMs` the prober SETs `bench:probe` to a sequence number on the source, noting the
 * send time; a second connection polls GET `bench:probe` on the replica/target back to back
 * (1 ms pause between polls). When the poll sees sequence n, every probe ≤ n not seen yet is
 * resolved: lag = time seen − time sent. The probe travels the same stream as the load, so this
 * is what an application would observe (source queueing + propagation + apply + one poll
 * interval), not what the tool says about itself.
 */
import { Redis } from 'ioredis';

export const PROBE_KEY = 'bench:probe';

export class LagProbe {
  constructor(sourcePort, targetPort, { everyMs = 10 } = {}) {
    this.src = new Redis({ port: sourcePort, host: '127.0.0.1', enableAutoPipelining: false });
    this.dst = new Redis({ port: targetPort, host: '127.0.0.1', enableAutoPipelining: false });
    this.src.on('error', () => {});
    this.dst.on('error', () => {});
    this.everyMs = everyMs;
    this.seq = 0;
    this.sentAt = [0];
    this.lagMs = [0];
    this.seen = 0;
    this.polls = 0;
    this.writer = null;
    this.polling = false;
    this.pollLoop = null;
  }

  start() {
    this.polling = true;
    this.writer = setInterval(() => this.sendOne(), this.everyMs);
    this.pollLoop = this.poll();
  }

  sendOne() {
    const n = ++this.seq;
    this.sentAt[n] = performance.now();
    this.src.set(PROBE_KEY, String(n)).catch(() => {});
    return n;
  }

  async poll() {
    while (this.polling) {
      const v = await this.dst.get(PROBE_KEY).catch(() => null);
      this.polls++;
      const n = v === null ? 0 : Number(v);
      if (n > this.seen) {
        const now = performance.now();
        for (let s = this.seen + 1; s <= n; s++) this.lagMs[s] = now - this.sentAt[s];
        this.seen = n;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Stop writing; one last probe; wait (up to timeoutMs) until the target shows it. Returns ms waited or null. */
  async drain(timeoutMs = 60_000) {
    clearInterval(this.writer);
    const last = this.sendOne();
    const t0 = performance.now();
    while (this.seen < last) {
      if (performance.now() - t0 > timeoutMs) return null;
      await new Promise((r) => setTimeout(r, 5));
    }
    return performance.now() - t0;
  }

  /** Lags (ms) of the probes sent in [from, to) (performance.now() times); unseen ones count as Infinity. */
  lagsBetween(from, to) {
    const out = [];
    for (let s = 1; s <= this.seq; s++) {
      const t = this.sentAt[s];
      if (t >= from && t < to) out.push(this.lagMs[s] ?? Infinity);
    }
    return out;
  }

  /** Max lag per `bucketMs` of send time over [from, to): a compact timeline for the result file. */
  timeline(from, to, bucketMs = 250) {
    const out = [];
    for (let s = 1; s <= this.seq; s++) {
      const t = this.sentAt[s];
      if (t < from || t >= to) continue;
      const b = Math.floor((t - from) / bucketMs);
      const lag = this.lagMs[s] ?? Infinity;
      out[b] = Math.max(out[b] ?? 0, lag);
    }
    return Array.from(out, (v) => (v === undefined ? null : Math.round(v)));
  }

  async close() {
    clearInterval(this.writer);
    this.polling = false;
    await this.pollLoop;
    this.src.disconnect();
    this.dst.disconnect();
  }
}
