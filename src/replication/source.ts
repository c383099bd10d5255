/**
 * Where the source is: a fixed `redis://` endpoint, or a master found through Redis Sentinel
 * (`sentinel://[user:pass@]host:port[,host:port...]/master-name`; the credentials are those of
 * the data nodes; `?sentinelPassword=...` authenticates to the sentinels).
 *
 * A sentinel source is resolved again before every connection, so after a failover Replicant
 * reconnects to the promoted replica and resumes with PSYNC (PSYNC2 keeps the old replication
 * id as replid2, so the promoted node answers +CONTINUE). `watch()` reports `+switch-master`
 * so the link can move at once instead of waiting for the old master to drop it.
 *
 * `sentinels://` is the TLS form: the sentinels and the data nodes are all reached over TLS
 * with the same settings (a deployment with TLS on one and not the other is not supported).
 */
import type { Redis } from 'ioredis';
import { SourceError, UsageError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { redactUrl } from '../observe/redact.js';
import { tlsConnectOptions, type TlsSettings } from '../net/tls.js';
import { describeTlsError } from '../net/tls-errors.js';
import { ReplicationSourceError } from './errors.js';
import { DEFAULT_REDIS_PORT, endpointLabel, isSentinelUrl, parseRedisUrl, type SourceEndpoint } from './url.js';

export interface SentinelSpec {
  sentinels: { host: string; port: number }[];
  masterName: string;
  username?: string;
  password?: string;
  sentinelPassword?: string;
  /** Present (`sentinels://`): TLS to the sentinels and to the master they name. */
  tls?: TlsSettings;
}

/** One shard of a cluster source, resolved from the cluster's current topology (cluster-source.ts). */
export interface ShardSourceRef {
  readonly key: string;
  describe(): string;
  resolve(logger: Logger): Promise<SourceEndpoint>;
}

export type SourceSpec = { kind: 'direct'; endpoint: SourceEndpoint } | { kind: 'sentinel'; sentinel: SentinelSpec } | { kind: 'cluster-shard'; shard: ShardSourceRef };

/** `tls`: the settings for a `rediss://` or `sentinels://` URL (refused for a plain one). */
export function parseSourceUrl(url: string, tls?: TlsSettings): SourceSpec {
  if (!isSentinelUrl(url)) return { kind: 'direct', endpoint: parseRedisUrl(url, tls) };
  const shown = redactUrl(url);
  const secure = url.startsWith('sentinels://');
  if (!secure && tls !== undefined) throw new UsageError(`TLS options given for ${shown}, which is plain TCP: use sentinels://`);
  const m = /^sentinels?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)\/([^/?]+)(?:\?(.*))?$/.exec(url);
  if (!m) throw new UsageError(`invalid sentinel URL ${JSON.stringify(shown)}: expected sentinel[s]://[user:pass@]host:port[,host:port]/master-name`);
  const sentinels = m[3]!.split(',').map((hp) => {
    const [, host, port] = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(hp) ?? [];
    const p = port === undefined ? 26379 : Number(port);
    if (!host || !Number.isInteger(p) || p < 1 || p > 65535) throw new UsageError(`invalid sentinel address ${JSON.stringify(hp)} in ${shown}`);
    return { host, port: p };
  });
  const spec: SentinelSpec = { sentinels, masterName: decodeURIComponent(m[4]!) };
  if (secure) spec.tls = tls ?? {};
  if (m[1]) spec.username = decodeURIComponent(m[1]);
  if (m[2]) spec.password = decodeURIComponent(m[2]);
  if (m[5]) {
    const q = new URLSearchParams(m[5]);
    for (const k of q.keys()) if (k !== 'sentinelPassword') throw new UsageError(`unknown parameter ${JSON.stringify(k)} in ${shown}`);
    const sp = q.get('sentinelPassword');
    if (sp) spec.sentinelPassword = sp;
  }
  return spec.sentinels.length > 0 ? { kind: 'sentinel', sentinel: spec } : { kind: 'direct', endpoint: { host: '127.0.0.1', port: DEFAULT_REDIS_PORT } };
}

export function describeSource(spec: SourceSpec): string {
  switch (spec.kind) {
    case 'direct':
      return endpointLabel(spec.endpoint);
    case 'sentinel':
      return `sentinel ${spec.sentinel.sentinels.map(endpointLabel).join(',')} master "${spec.sentinel.masterName}"`;
    case 'cluster-shard':
      return spec.shard.describe();
  }
}

/** ioredis is loaded only for sentinel sources (it costs ~0.15 s of startup). */
async function sentinelClient(s: SentinelSpec, at: { host: string; port: number }): Promise<Redis> {
  const { Redis } = await import('ioredis');
  // No `password` here: ioredis turns a refused AUTH into "Connection is closed."; connectSentinel sends AUTH itself.
  const c = new Redis({
    host: at.host,
    port: at.port,
    lazyConnect: true,
    // Its INFO would be refused before AUTH and end the connection as "Connection is closed.".
    enableReadyCheck: false,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    ...(s.tls === undefined ? {} : { tls: tlsConnectOptions(at.host, s.tls) }),
  });
  c.on('error', () => {});
  return c;
}

/** A sentinel's refusal of our credentials (or of their absence): retrying cannot fix it. */
export class SentinelAuthError extends Error {}

const SENTINEL_PASSWORD_HINT = 'give the sentinels\' password with ?sentinelPassword=... in the URL, --sentinel-password-file, or REPLICANT_SENTINEL_PASSWORD (the password in the URL\'s user part is the data nodes\')';

/** Connects and authenticates to one sentinel; SentinelAuthError when it refuses the password or wants one. */
async function connectSentinel(s: SentinelSpec, at: { host: string; port: number }): Promise<Redis> {
  const c = await sentinelClient(s, at);
  try {
    await c.connect();
    if (s.sentinelPassword !== undefined) {
      try {
        await c.call('AUTH', s.sentinelPassword);
      } catch (e) {
        throw new SentinelAuthError(`sentinel ${endpointLabel(at)}: authentication failed (${(e as Error).message}): check the sentinel password; ${SENTINEL_PASSWORD_HINT}`);
      }
    }
    return c;
  } catch (e) {
    c.disconnect();
    throw e;
  }
}

/** A command's error from a sentinel, said as what it means: a missing password is an authentication failure. */
function sentinelCommandError(e: unknown, at: { host: string; port: number }): Error {
  const m = (e as Error).message;
  if (/^NOAUTH/.test(m)) return new SentinelAuthError(`sentinel ${endpointLabel(at)}: authentication failed: it requires a password (${m}); ${SENTINEL_PASSWORD_HINT}`);
  return e as Error;
}

/** The endpoint to connect to now: the fixed one, the master the sentinels name, or the cluster shard's node. */
export async function resolveSource(spec: SourceSpec, logger: Logger): Promise<SourceEndpoint> {
  if (spec.kind === 'direct') return spec.endpoint;
  if (spec.kind === 'cluster-shard') return spec.shard.resolve(logger);
  const s = spec.sentinel;
  const failures: string[] = [];
  let tlsFailures = 0;
  let authFailures = 0;
  for (const at of s.sentinels) {
    let c: Redis | null = null;
    try {
      c = await connectSentinel(s, at);
      const reply = (await c.call('SENTINEL', 'get-master-addr-by-name', s.masterName).catch((e: unknown) => Promise.reject(sentinelCommandError(e, at)))) as [string, string] | null;
      if (reply === null) throw new Error(`no master named "${s.masterName}"`);
      const endpoint: SourceEndpoint = { host: reply[0], port: Number(reply[1]) };
      if (s.username !== undefined) endpoint.username = s.username;
      if (s.password !== undefined) endpoint.password = s.password;
      if (s.tls !== undefined) endpoint.tls = s.tls;
      logger.info({ sentinel: endpointLabel(at), master: s.masterName, address: endpointLabel(endpoint) }, 'sentinel named the source master');
      return endpoint;
    } catch (e) {
      if (e instanceof SentinelAuthError) {
        authFailures++;
        failures.push(e.message);
        continue;
      }
      const tls = describeTlsError(e, `sentinel ${endpointLabel(at)}`, { ...at, tls: s.tls });
      if (tls !== null) tlsFailures++;
      failures.push(tls ?? `${endpointLabel(at)}: ${(e as Error).message}`);
    } finally {
      c?.disconnect();
    }
  }
  // Sentinels that all refuse the handshake or the credentials will refuse them again.
  throw new ReplicationSourceError(`no sentinel could name master "${s.masterName}" (${failures.join('; ')})`, tlsFailures + authFailures < failures.length);
}

/**
 * Subscribe to `+switch-master` on the first reachable sentinel; `onSwitch` gets the new
 * master's address. Returns a function that unsubscribes.
 */
export async function watchSentinel(spec: SentinelSpec, logger: Logger, onSwitch: (to: { host: string; port: number }) => void): Promise<() => void> {
  for (const at of spec.sentinels) {
    let c: Redis | null = null;
    try {
      c = await connectSentinel(spec, at);
      await c.subscribe('+switch-master');
      c.on('message', (_channel: string, message: string) => {
        // "<name> <old-ip> <old-port> <new-ip> <new-port>"
        const parts = message.split(' ');
        if (parts[0] !== spec.masterName || parts.length < 5) return;
        logger.warn({ master: spec.masterName, from: `${parts[1]}:${parts[2]}`, to: `${parts[3]}:${parts[4]}` }, 'sentinel switched the master');
        onSwitch({ host: parts[3]!, port: Number(parts[4]) });
      });
      return () => c!.disconnect();
    } catch {
      c?.disconnect();
    }
  }
  throw new SourceError(`could not subscribe to +switch-master on any sentinel of "${spec.masterName}"`);
}
