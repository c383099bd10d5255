/** Target capability probe: INFO server/keyspace/modules/cluster and CONFIG GET databases, parsed into TargetInfo. */
import type { Logger } from '../observe/logger.js';
import { TargetCommandError, TargetError } from './errors.js';
import type { TargetInfo } from './types.js';
import { keyspaceTotal, parseInfo } from '../commands/info.js';

/**
 * The newest RDB version a server of this version writes and loads (see redis-internals.md §2.2).
 * Unknown newer versions map to the newest version we know, never higher: a lower figure only
 * makes the caller choose plain commands over RESTORE, which is always safe.
 */
export function rdbVersionFor(major: number, minor: number, valkey: boolean): number {
  if (valkey) {
    if (major >= 9) return 80;
    return 11; // Valkey 7.2, 8.0, 8.1 write REDIS0011
  }
  const v = major * 100 + minor;
  if (v >= 808) return 14;
  if (v >= 806) return 13;
  if (v >= 704) return 12;
  if (v >= 702) return 11;
  if (v >= 700) return 10;
  if (v >= 500) return 9;
  if (v >= 400) return 8;
  if (v >= 302) return 7;
  if (v >= 206) return 6;
  if (v >= 204) return 2;
  return 1;
}

/** Module names from INFO modules (`module:name=search,ver=...`). */
export function moduleNames(raw: string): string[] {
  const out: string[] = [];
  for (const line of raw.split('\r\n')) {
    const m = /^module:name=([^,]+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

export interface ProbeReplies {
  server: string;
  keyspace: string;
  modules: string;
  cluster: string;
  /** INFO replication ('' when refused). */
  replication?: string;
  /** CONFIG GET databases reply, or undefined when the target refused it. */
  databases: number | undefined;
}

export function buildTargetInfo(r: ProbeReplies): TargetInfo {
  const server = parseInfo(r.server);
  const valkeyVersion = server.get('valkey_version');
  const valkey = valkeyVersion !== undefined || server.get('server_name') === 'valkey';
  const version = valkeyVersion ?? server.get('redis_version') ?? '0.0.0';
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10) || 0);
  return {
    runId: server.get('run_id') ?? '',
    replid: parseInfo(r.replication ?? '').get('master_replid') ?? '',
    version,
    major,
    minor,
    rdbVersion: rdbVersionFor(major, minor, valkey),
    valkey,
    cluster: parseInfo(r.cluster).get('cluster_enabled') === '1',
    dbsize: keyspaceTotal(parseInfo(r.keyspace)),
    databases: r.databases ?? 16,
    databasesKnown: r.databases !== undefined,
    modules: moduleNames(r.modules),
  };
}

/**
 * Probes a connected target through `call`. INFO server is required; the other sections and
 * CONFIG GET databases are tolerated to fail (restricted ACLs, renamed commands).
 */
export async function probeTarget(call: (args: string[]) => Promise<unknown>, address: string, log: Logger): Promise<TargetInfo> {
  const section = async (name: string): Promise<string> => {
    try {
      return String(await call(['INFO', name]));
    } catch (e) {
      if (name === 'server') {
        // A lost connection already names the target and says why (TLS refusal, reset...).
        if (e instanceof TargetError && !(e instanceof TargetCommandError)) throw e;
        const msg = (e as Error).message;
        // The first command is where a missing password shows: say how to give one.
        const hint = /\bNOAUTH\b/.test(msg) ? ' (it requires a password: redis://[user]:PASSWORD@host:port, --target-password-file, or REPLICANT_TARGET_PASSWORD)' : '';
        throw new TargetError(`target ${address}: INFO server failed: ${msg}${hint}`);
      }
      log.debug({ section: name, err: (e as Error).message }, 'target INFO section unavailable');
      return '';
    }
  };
  const [server, keyspace, modules, cluster, replication] = await Promise.all([section('server'), section('keyspace'), section('modules'), section('cluster'), section('replication')]);
  let databases: number | undefined;
  try {
    const r = await call(['CONFIG', 'GET', 'databases']);
    if (Array.isArray(r) && r.length >= 2) databases = Number(r[1]) || undefined;
  } catch (e) {
    log.debug({ err: (e as Error).message }, 'CONFIG GET databases refused; assuming 16');
  }
  return buildTargetInfo({ server, keyspace, modules, cluster, replication, databases });
}
