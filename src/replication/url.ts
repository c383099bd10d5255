/**
 * `redis[s]://[user:password@]host[:port][/db]` parsing, shared by the source and the target.
 * Percent-escapes in user and password are decoded. `rediss://` connects with TLS, using the
 * given settings (CA, client certificate) or, without them, the system CAs.
 */
import { UsageError } from '../errors.js';
import type { TlsSettings } from '../net/tls.js';
import { redactUrl } from '../observe/redact.js';

/** `sentinel://` or its TLS form `sentinels://`. */
export function isSentinelUrl(url: string): boolean {
  return /^sentinels?:\/\//.test(url);
}

export interface SourceEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** Present: TLS (`rediss://`). */
  tls?: TlsSettings;
}

export const DEFAULT_REDIS_PORT = 6379;

/** `tls`: the settings for a `rediss://` URL; refused for a plain `redis://` one (they would be ignored). */
export function parseRedisUrl(url: string, tls?: TlsSettings): SourceEndpoint & { db?: number } {
  const shown = redactUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`invalid Redis URL ${JSON.stringify(shown)}: expected redis[s]://[user:password@]host[:port][/db]`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UsageError(`unsupported URL scheme ${JSON.stringify(u.protocol)} in ${shown}: expected redis:// or rediss:// (TLS)`);
  const secure = u.protocol === 'rediss:';
  if (!secure && tls !== undefined) throw new UsageError(`TLS options given for ${shown}, which is plain TCP: use rediss://`);
  if (u.search !== '' || u.hash !== '') throw new UsageError(`unexpected query or fragment in Redis URL ${shown}`);
  let host = u.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') throw new UsageError(`missing host in Redis URL ${shown}`);
  const port = u.port === '' ? DEFAULT_REDIS_PORT : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`invalid port in Redis URL ${shown}`);
  const out: SourceEndpoint & { db?: number } = { host, port };
  if (secure) out.tls = tls ?? {};
  if (u.username !== '') out.username = decode(u.username, shown);
  if (u.password !== '') out.password = decode(u.password, shown);
  const path = u.pathname;
  if (path !== '' && path !== '/') {
    const m = /^\/(\d{1,5})\/?$/.exec(path);
    if (!m) throw new UsageError(`invalid database in Redis URL ${shown}: expected /<number>`);
    out.db = Number(m[1]);
  }
  return out;
}

function decode(s: string, shown: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new UsageError(`bad percent-escape in the credentials of Redis URL ${shown}`);
  }
}

/** `host:port` for messages (IPv6 in brackets). */
export function endpointLabel(e: { host: string; port: number }): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
