/** Parsers for command-line option values; each throws a UsageError naming the option. */
import { InvalidArgumentError } from 'commander';

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4 };

/** `64mb`, `4GB`, `512k`, `1048576` -> bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError(`expected a size such as 64mb, 4gb or 1048576, got "${text}"`);
  return Math.round(Number(m[1]) * unit);
}

/** `500ms`, `10s`, `2m`, `1500` (ms) -> milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) throw new InvalidArgumentError(`expected a duration such as 500ms, 10s or 2m, got "${text}"`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * mult);
}

/** A duration that must be above zero (timeouts, periods): `0` would mean "always expired". */
export function parsePositiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms <= 0) throw new InvalidArgumentError(`expected a duration above zero such as 500ms or 10s, got "${text}"`);
  return ms;
}

/** The levels `--log-level` accepts (pino's, minus trace which only adds noise). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug'] as const;

export function parseNonNegativeInt(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${text}"`);
  return n;
}

/** A count that must be above zero (keys, batch sizes, connections). */
export function parsePositiveInt(text: string): number {
  const n = parseNonNegativeInt(text);
  if (n === 0) throw new InvalidArgumentError(`expected a positive integer, got "${text}"`);
  return n;
}

/** A rate or size that must be above zero, fractions allowed. */
export function parsePositiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a number above zero, got "${text}"`);
  return n;
}

export function parsePort(text: string): number {
  const n = parseNonNegativeInt(text);
  if (n > 65535) throw new InvalidArgumentError(`expected a port 0-65535, got "${text}"`);
  return n;
}
