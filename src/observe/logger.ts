/**
 * pino logger: JSON lines on stderr, pretty only when stderr is a TTY.
 * Secrets never reach the log: known fields are redacted and URLs are scrubbed by `redactUrl`
 * (./redact.ts).
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
