/**
 * What a side allows and holds: DEBUG (for DIGEST / DIGEST-VALUE), PEXPIRETIME (7.0+), its
 * version, and the databases that hold keys (`INFO keyspace`, added up over a cluster's masters). Probes use a key name in
 * Replicant's reserved space, which no user key has.
 */
import { ServerReply, type VerifySide } from './side.js';

export interface SideCapabilities {
  /** DEBUG DIGEST-VALUE answered (enable-debug-command and ACLs allow it). */
  debug: boolean;
  /** PEXPIRETIME exists (Redis / Valkey 7.0+). */
  pexpiretime: boolean;
  /** `redis_version` from INFO server, or "?" when hidden. */
  version: string;
  /** db number -> keys, for every db that holds keys. */
  keyspace: Map<number, number>;
}

const PROBE_KEY = '__replicant:verify:probe';

export async function probeSide(side: VerifySide): Promise<SideCapabilities> {
  const [debug, pexpiretime, server, keyspace] = await Promise.all([
    side.tryCall(0, ['DEBUG', 'DIGEST-VALUE', PROBE_KEY]),
    side.tryCall(0, ['PEXPIRETIME', PROBE_KEY]),
    side.tryCall(0, ['INFO', 'server']),
    readKeyspace(side),
  ]);
  const version = server instanceof ServerReply ? '?' : (/^redis_version:(\S+)/m.exec(String(server))?.[1] ?? '?');
  return {
    debug: Array.isArray(debug),
    pexpiretime: typeof pexpiretime === 'number',
    version,
    keyspace,
  };
}

/** db number -> keys (INFO keyspace); on a cluster, every master's keys added up. */
export async function readKeyspace(side: VerifySide): Promise<Map<number, number>> {
  const replies = await side.everyNode(0, ['INFO', 'keyspace']);
  const out = new Map<number, number>();
  for (const r of replies) {
    if (r instanceof ServerReply) throw side.fail(r, 'INFO keyspace');
    for (const [db, n] of parseKeyspace(String(r))) out.set(db, (out.get(db) ?? 0) + n);
  }
  return out;
}

/** `db0:keys=2,expires=1,avg_ttl=0` lines -> db -> keys. */
export function parseKeyspace(info: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of info.matchAll(/^db(\d+):keys=(\d+)/gm)) out.set(Number(m[1]), Number(m[2]));
  return out;
}
