/**
 * The end-to-end lag probe of `replicant bench` (src/bench/probe.ts, from the build in dist/),
 * with clients to two loopback ports: the method is described there.
 */
import { Redis } from 'ioredis';
import { LagProbe as Probe } from '../../dist/bench/probe.js';

export const PROBE_KEY = 'bench:probe';

export class LagProbe extends Probe {
  constructor(sourcePort, targetPort, { everyMs = 10 } = {}) {
    const src = new Redis({ port: sourcePort, host: '127.0.0.1', enableAutoPipelining: false });
    const dst = new Redis({ port: targetPort, host: '127.0.0.1', enableAutoPipelining: false });
    src.on('error', () => {});
    dst.on('error', () => {});
    super(src, dst, PROBE_KEY, everyMs);
    this.clients = [src, dst];
  }

  async close() {
    await super.close();
    for (const c of this.clients) c.disconnect();
  }
}
