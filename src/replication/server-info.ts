/**
 * A server's INFO over a plain (control-plane) connection, apart from the replication link:
 * identity (run_id, replication ids), role, memory and keyspace. Used before the first PSYNC
 * to check the target against the source, and to bound the first connection to the source.
 */
import { ProtocolError, SourceError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { encodeCommands, type Arg } from '../resp/encode.js';
import { parseInfo } from '../commands/info.js';
import { connectSocket } from '../net/tls.js';
import { handshakeTimeoutHint } from '../net/tls-errors.js';
import { ReplicationSourceError, isRetryable, sourceSocketError } from './errors.js';
import { LineReader } from './line-reader.js';
import { checkAuthReply } from './replies.js';
import { describeSource, resolveSource, type SourceSpec } from './source.js';
import { endpointLabel, type SourceEndpoint } from './url.js';

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

const INFO_TIMEOUT_MS = 5_000;

/**
 * INFO (default sections: server, memory, replication, keyspace...) over a plain socket, with
 * AUTH when the endpoint has a password: no client library, so a source that only speaks the
 * replication handshake (a restricted ACL user) still gets this far. Returns null when the
 * server refuses INFO; throws a ReplicationSourceError (retryable unless authentication failed).
 */
export async function readServerInfo(endpoint: SourceEndpoint, timeoutMs = INFO_TIMEOUT_MS): Promise<ServerInfo | null> {
  const text = await readServerText(endpoint, ['INFO'], timeoutMs);
  return text === null ? null : parseServerInfo(text);
}

/**
 * One command whose reply is a bulk string of CRLF-terminated lines (INFO, CLUSTER NODES) on a
 * new connection, AUTH first when the endpoint has a password. Null when the server answers
 * with an error; throws a ReplicationSourceError (retryable unless authentication failed).
 */
export async function readServerText(endpoint: SourceEndpoint, command: Arg[], timeoutMs = INFO_TIMEOUT_MS): Promise<string | null> {
  return readServerReply(endpoint, command, timeoutMs, 'bulk');
}

/** A config parameter's value (`CONFIG GET name`), or null when the server refuses CONFIG (a managed service, an ACL). */
export async function readServerConfig(endpoint: SourceEndpoint, name: string, timeoutMs = INFO_TIMEOUT_MS): Promise<string | null> {
  return readServerReply(endpoint, ['CONFIG', 'GET', name], timeoutMs, 'pair');
}

/** A bulk string made of lines, or the value of a `*2 name value` array (single-line strings). */
async function readServerReply(endpoint: SourceEndpoint, command: Arg[], timeoutMs: number, shape: 'bulk' | 'pair'): Promise<string | null> {
  const label = endpointLabel(endpoint);
  const what = command.map(String).join(' ');
  const lines = new LineReader();
  // Written at once: a TLS socket holds the commands until the handshake is done.
  const socket = connectSocket(endpoint, () => {});
  const timer = setTimeout(() => lines.fail(new ReplicationSourceError(`${label}: no answer within ${timeoutMs} ms${handshakeTimeoutHint(socket, endpoint)}`, true)), timeoutMs);
  let gotData = false;
  socket.on('data', (d: Buffer) => {
    gotData = true;
    lines.push(d);
  });
  // Start-up only: a TLS connection closed before any reply fails at once, as a refused certificate.
  socket.on('error', (e: NodeJS.ErrnoException) => lines.fail(sourceSocketError(e, label, endpoint, gotData ? undefined : 'fatal')));
  socket.on('close', () => lines.fail(sourceSocketError(null, label, endpoint, gotData ? undefined : 'fatal')));
  try {
    const { username, password } = endpoint;
    const commands: Arg[][] = password === undefined ? [] : [username !== undefined ? ['AUTH', username, password] : ['AUTH', password]];
    commands.push(command);
    socket.write(encodeCommands(commands));
    if (password !== undefined) checkAuthReply(await lines.line(), username, label);
    const head = await lines.line();
    if (head.startsWith('-')) return null;
    if (shape === 'pair') {
      // Empty (*0): no such parameter; else name, then value, each one line.
      if (!/^\*2$/.test(head)) return null;
      await lines.line();
      await lines.line();
      await lines.line();
      return await lines.line();
    }
    const m = /^\$(\d+)$/.exec(head);
    if (!m) throw new ProtocolError(`unexpected reply to ${what} from ${label}: ${JSON.stringify(head.slice(0, 100))}`);
    // The reply is made of CRLF-terminated lines: read lines until the announced length is covered.
    const want = Number(m[1]);
    const body: string[] = [];
    let got = 0;
    while (got < want) {
      const line = await lines.line();
      body.push(line);
      got += Buffer.byteLength(line, 'latin1') + 2;
    }
    return body.join('\r\n');
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/**
 * The source's INFO, retrying a source that cannot be reached for up to `timeoutMs` (start-up
 * only: a source that never answered is more likely a wrong address than an outage). Logs the
 * first failure once, then fails with a SourceError (exit 4) naming the source. Null when the
 * source answers but refuses INFO (its user may be limited to replication).
 */
export async function readSourceInfoWithin(spec: SourceSpec, timeoutMs: number, logger: Logger, shouldStop: () => boolean = () => false): Promise<ServerInfo | null> {
  const deadline = Date.now() + timeoutMs;
  let delay = 200;
  let attempts = 0;
  for (;;) {
    attempts++;
    let err: Error;
    try {
      const info = await readServerInfo(await resolveSource(spec, logger), Math.max(1000, Math.min(INFO_TIMEOUT_MS, deadline - Date.now())));
      if (info === null) logger.warn({ source: describeSource(spec) }, 'the source refuses INFO: the checks that need its figures are skipped');
      return info;
    } catch (e) {
      err = e as Error;
      // Wrong credentials or a protocol error will not fix themselves by waiting.
      if (!isRetryable(e)) throw e instanceof SourceError ? e : new SourceError(`source ${describeSource(spec)}: ${err.message}`, { cause: e });
    }
    const left = deadline - Date.now();
    // The address is named once, by describeSource.
    const reason = err.message.replace(/^[^ ]+:\d+: /, '');
    if (left <= 0 || shouldStop()) {
      throw new SourceError(`source ${describeSource(spec)} unreachable for ${Math.round(timeoutMs / 100) / 10} s (${attempts} attempts; last error: ${reason}); check the address or raise --connect-timeout`, { cause: err });
    }
    if (attempts === 1) logger.warn({ source: describeSource(spec), err: reason, retryForMs: timeoutMs }, 'source unreachable; retrying until --connect-timeout');
    else logger.debug({ err: reason, attempt: attempts }, 'source still unreachable');
    await new Promise((r) => setTimeout(r, Math.min(delay, left)).unref());
    delay = Math.min(delay * 2, 2000);
  }
}
