/**
 * pino logger: JSON lines on stderr, pretty only when stderr is a TTY.
 * Secrets never reach the log: known fields are redacted and URLs are scrubbed by `redactUrl`.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Force pretty (true) or JSON (false); default: pretty when stderr is a TTY. */
  pretty?: boolean;
}

const REDACT = ['password', 'pass', 'auth', 'sentinelPassword', '*.password', '*.pass', '*.sentinelPassword', 'source.password', 'target.password', 'args'];

export function createLogger(opts: LoggerOptions = {}): Logger {
  const pretty = opts.pretty ?? process.stderr.isTTY === true;
  const level = opts.level ?? process.env['REPLICANT_LOG_LEVEL'] ?? 'info';
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: undefined };
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/** A silent logger for library use and tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Query parameters whose values are secrets (`sentinel://...?sentinelPassword=...`). */
const SECRET_PARAM = /([?&](?:[a-z]*pass(?:word)?|auth)=)[^&#]*/gi;

/**
 * `redis://user:secret@host:1` -> `redis://user:***@host:1`, and
 * `sentinel://h:26379/m?sentinelPassword=x` -> `...?sentinelPassword=***`.
 * The userinfo ends at the last `@` of the authority, so an unescaped `@` in a password is
 * still hidden.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  const head = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q).replace(SECRET_PARAM, '$1***');
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(head)?.[0];
  if (scheme === undefined) return head + query;
  const slash = head.indexOf('/', scheme.length);
  const authority = head.slice(scheme.length, slash < 0 ? head.length : slash);
  const at = authority.lastIndexOf('@');
  if (at < 0) return head + query;
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(':');
  const shown = colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:***`;
  return `${scheme}${shown}${head.slice(scheme.length + at)}${query}`;
}
