/**
 * The end-to-end lag probe of `replicant bench` (src/bench/probe.ts, from the build in dist/),
 * with clients to two loopback servers: the method is described there. Each side is a port, or
 * ioredis connection options (e.g. a bench server's clientOptions(), with `tls` for a TLS server).
 */
import { Redis } from 'ioredis';
import { LagProbe as Probe } from '../../dist/bench/probe.js';

export const PROBE_KEY = 'bench:probe';

export class LagProbe extends Probe {
  constructor(source, target, { everyMs = 10 } = {}) {
    const conn = (s) => (typeof s === 'number' ? { port: s, host: '127.0.0.1' } : s);
    const src = new Redis({ ...conn(source), enableAutoPipelining: false });
    const dst = new Redis({ ...conn(target), enableAutoPipelining: false });
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
