/**
 * Cluster topology: the CLUSTER SLOTS reply as a flat slot → master table, and the parsing of
 * -MOVED / -ASK redirections. Everything the server sends is validated before use as an index.
 */
import { TargetError } from '../errors.js';
import { SLOT_COUNT } from '../../commands/slot.js';

/** Marks a slot no master serves. */
export const NO_NODE = 0xffff;

export interface SlotTable {
  /** slot → index into `masters`, NO_NODE when unassigned. */
  slots: Uint16Array;
  /** "host:port" of each master, in first-seen order. */
  masters: string[];
}

/** "host:port" → endpoint parts (IPv6 hosts keep their colons). */
export function splitAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

function endpointOf(node: unknown, fallbackHost: string, where: string): string {
  if (!Array.isArray(node) || node.length < 2) throw new TargetError(`cluster target: CLUSTER SLOTS ${where}: expected [host, port, ...], got ${JSON.stringify(node)}`);
  const [rawHost, port] = node as [unknown, unknown];
  if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new TargetError(`cluster target: CLUSTER SLOTS ${where}: bad port ${JSON.stringify(port)}`);
  }
  // Redis sends "" (or "?") when it does not know the endpoint: the host we reached it through.
  const host = typeof rawHost === 'string' && rawHost !== '' && rawHost !== '?' ? rawHost : fallbackHost;
  return `${host}:${port}`;
}

/**
 * Builds the slot table from a CLUSTER SLOTS reply: `[[start, end, [host, port, id, ...], replica...], ...]`.
 * `fallbackHost` replaces an empty/unknown host. Throws TargetError when a slot has no master.
 */
export function parseClusterSlots(reply: unknown, fallbackHost: string, requireFullCoverage = true): SlotTable {
  if (!Array.isArray(reply)) throw new TargetError(`cluster target: CLUSTER SLOTS returned ${typeof reply}, expected an array`);
  const slots = new Uint16Array(SLOT_COUNT).fill(NO_NODE);
  const masters: string[] = [];
  for (const [n, range] of reply.entries()) {
    if (!Array.isArray(range) || range.length < 3) throw new TargetError(`cluster target: CLUSTER SLOTS entry ${n}: expected [start, end, master, ...]`);
    const [start, end] = range as [unknown, unknown];
    if (typeof start !== 'number' || typeof end !== 'number' || !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end >= SLOT_COUNT || start > end) {
      throw new TargetError(`cluster target: CLUSTER SLOTS entry ${n}: bad slot range ${JSON.stringify(start)}-${JSON.stringify(end)}`);
    }
    const addr = endpointOf(range[2], fallbackHost, `entry ${n}`);
    let idx = masters.indexOf(addr);
    if (idx < 0) idx = masters.push(addr) - 1;
    slots.fill(idx, start, end + 1);
  }
  if (requireFullCoverage) {
    const hole = slots.indexOf(NO_NODE);
    if (hole >= 0) {
      let last = hole;
      while (last + 1 < SLOT_COUNT && slots[last + 1] === NO_NODE) last++;
      throw new TargetError(`cluster target: slots ${hole}-${last} are served by no master (CLUSTER SLOTS); the cluster must cover all 16384 slots`);
    }
  }
  return { slots, masters };
}

export interface Redirect {
  kind: 'MOVED' | 'ASK';
  slot: number;
  /** "host:port" of the node to send the command to. */
  addr: string;
}

/** Parses "MOVED 3999 127.0.0.1:6381" / "ASK 3999 :6381"; undefined for any other error or a malformed one. */
export function parseRedirect(reply: string, fallbackHost: string): Redirect | undefined {
  const m = /^(MOVED|ASK) (\d{1,5}) (\S*):(\d{1,5})$/.exec(reply);
  if (!m) return undefined;
  const slot = Number(m[2]);
  const port = Number(m[4]);
  if (slot >= SLOT_COUNT || port <= 0 || port > 65535) return undefined;
  const host = m[3] === '' || m[3] === '?' ? fallbackHost : m[3]!;
  return { kind: m[1] as 'MOVED' | 'ASK', slot, addr: `${host}:${port}` };
}
