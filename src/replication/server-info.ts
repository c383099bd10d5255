/**
 * A server's INFO over a plain (control-plane) connection, apart from the replication link:
 * identity (run_id, replication ids), role, memory and keyspace. Used before the first PSYNC
 * to check the target against the source, and to bound the first connection to the source.
 */
import { SourceError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { parseInfo } from '../target/probe.js';
import { describeSource, resolveSource, type SourceSpec } from './source.js';
import type { SourceEndpoint } from './url.js';

export interface ServerInfo {
  /** Every `field:value` of the reply. */
  fields: Map<string, string>;
  runId: string;
  /** `master` or `slave` (INFO's spelling). */
  role: string;
  masterReplid: string;
  masterReplid2: string;
  masterReplOffset: number;
  /** For a replica: the master it follows (`host:port`), else undefined. */
  masterAddress: string | undefined;
  usedMemory: number;
  /** 0 = no limit. */
  maxmemory: number;
  maxmemoryPolicy: string;
  version: string;
  major: number;
  minor: number;
  /** Keys per db number (dbs without keys are absent). */
  keys: Map<number, number>;
  /** Function libraries loaded (Redis 7+; 0 before). */
  functionLibraries: number;
  /** Lua scripts in the script cache. */
  cachedScripts: number;
}

function num(fields: Map<string, string>, name: string): number {
  const v = Number(fields.get(name));
  return Number.isFinite(v) ? v : 0;
}

/** The typed subset of a full INFO reply. */
export function parseServerInfo(text: string): ServerInfo {
  const f = parseInfo(text);
  const version = f.get('valkey_version') ?? f.get('redis_version') ?? '0.0.0';
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const keys = new Map<number, number>();
  for (const [k, v] of f) {
    const db = /^db(\d+)$/.exec(k);
    const n = /(?:^|,)keys=(\d+)/.exec(v);
    if (db && n) keys.set(Number(db[1]), Number(n[1]));
  }
  const masterHost = f.get('master_host');
  return {
    fields: f,
    runId: f.get('run_id') ?? '',
    role: f.get('role') ?? 'master',
    masterReplid: f.get('master_replid') ?? '',
    masterReplid2: f.get('master_replid2') ?? '',
    masterReplOffset: num(f, 'master_repl_offset'),
    masterAddress: masterHost === undefined ? undefined : `${masterHost}:${f.get('master_port') ?? '?'}`,
    usedMemory: num(f, 'used_memory'),
    maxmemory: num(f, 'maxmemory'),
    maxmemoryPolicy: f.get('maxmemory_policy') ?? 'noeviction',
    version,
    major,
    minor,
    keys,
    functionLibraries: num(f, 'number_of_libraries'),
    cachedScripts: num(f, 'number_of_cached_scripts'),
  };
}

/** INFO (default sections: server, memory, replication, keyspace...) of one server; SourceError when it cannot be read. */
export async function readServerInfo(endpoint: SourceEndpoint, logger: Logger): Promise<ServerInfo> {
  // Loaded on use: ioredis costs startup time that commands without a control connection skip.
  const { VerifySide } = await import('../verify/side.js');
  const side = new VerifySide('source', endpoint, logger);
  try {
    return parseServerInfo(String(await side.call(0, ['INFO'])));
  } finally {
    side.close();
  }
}

/**
 * The source's INFO, retrying a source that cannot be reached for up to `timeoutMs` (start-up
 * only: a source that never answered is more likely a wrong address than an outage). Logs the
 * first failure once, then exits with a SourceError (exit 4) naming the source.
 */
export async function readSourceInfoWithin(spec: SourceSpec, timeoutMs: number, logger: Logger, shouldStop: () => boolean = () => false): Promise<ServerInfo> {
  const deadline = Date.now() + timeoutMs;
  let delay = 200;
  let attempts = 0;
  for (;;) {
    attempts++;
    let err: Error;
    try {
      return await readServerInfo(await resolveSource(spec, logger), logger);
    } catch (e) {
      err = e as Error;
      // A reply error (wrong password, NOPERM...) will not fix itself by waiting.
      if (isReply(err)) throw err instanceof SourceError ? err : new SourceError(`source ${describeSource(spec)}: ${err.message}`, { cause: err });
    }
    const left = deadline - Date.now();
    if (left <= 0 || shouldStop()) {
      throw new SourceError(`source ${describeSource(spec)} unreachable for ${Math.round(timeoutMs / 100) / 10} s (${attempts} attempts; last error: ${lastLine(err)}); check the address or raise --connect-timeout`, { cause: err });
    }
    if (attempts === 1) logger.warn({ source: describeSource(spec), err: lastLine(err), retryForMs: timeoutMs }, 'source unreachable; retrying until --connect-timeout');
    else logger.debug({ err: lastLine(err), attempt: attempts }, 'source still unreachable');
    await new Promise((r) => setTimeout(r, Math.min(delay, left)).unref());
    delay = Math.min(delay * 2, 2000);
  }
}

function isReply(e: Error): boolean {
  const cause = e.cause;
  return e.name === 'ServerReply' || e.name === 'ReplyError' || (cause instanceof Error && (cause.name === 'ReplyError' || cause.name === 'ServerReply'));
}

/** The reason without the "source host:port: connect failed:" prefixes VerifySide adds. */
function lastLine(e: Error): string {
  const m = e.message;
  const i = m.lastIndexOf(' failed: ');
  return i >= 0 ? m.slice(i + ' failed: '.length) : m;
}
