/**
 * Passwords kept out of argv (where `ps` and /proc/<pid>/cmdline show them to every user):
 * `--source-password-file` / `--target-password-file` / `--sentinel-password-file`, or the
 * environment variables REPLICANT_SOURCE_PASSWORD, REPLICANT_TARGET_PASSWORD and
 * REPLICANT_SENTINEL_PASSWORD (as redis-cli's REDISCLI_AUTH). The password is put into the
 * URL in memory only, so everything downstream (parsing, redaction) has one path.
 *
 * Precedence: a password in the URL, else the file, else the environment. A URL password
 * and a file for the same server are refused as ambiguous.
 */
import { statSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { isSentinelUrl } from '../replication/url.js';

export const PASSWORD_ENV = {
  source: 'REPLICANT_SOURCE_PASSWORD',
  target: 'REPLICANT_TARGET_PASSWORD',
  sentinel: 'REPLICANT_SENTINEL_PASSWORD',
} as const;

export interface PasswordFileOptions {
  sourcePasswordFile?: string;
  targetPasswordFile?: string;
  sentinelPasswordFile?: string;
}

/** Adds the three `--*-password-file` options to a command that takes --source and --target. */
export function addPasswordOptions(cmd: Command): Command {
  return cmd
    .option('--source-password-file <path>', `file holding the source password (one line; not readable by group/others); or set ${PASSWORD_ENV.source}`)
    .option('--target-password-file <path>', `file holding the target password; or set ${PASSWORD_ENV.target}`)
    .option('--sentinel-password-file <path>', `file holding the password of the sentinels of a sentinel:// source; or set ${PASSWORD_ENV.sentinel}`);
}

/** The password in a file: one line, its line break stripped; refused when group or others may read it. */
export function readPasswordFile(path: string, option: string): string {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`${option} ${path}: not a regular file`);
    if (process.platform !== 'win32' && (st.mode & 0o044) !== 0) {
      throw new UsageError(`${option} ${path}: readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`);
    }
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${option} ${path}: ${(e as Error).message}`);
  }
  const pw = text.replace(/\r?\n$/, '');
  if (pw === '') throw new UsageError(`${option} ${path}: the file is empty`);
  if (/[\r\n]/.test(pw)) throw new UsageError(`${option} ${path}: expected one line (the password), found several`);
  return pw;
}

interface UserInfo {
  scheme: string;
  user: string;
  password: string | undefined;
  rest: string;
}

/** Splits `scheme://[user[:password]@]rest`; null for anything else (the URL parsers report it). */
function splitUserInfo(url: string): UserInfo | null {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(?:([^:@/]*)(?::([^@/]*))?@)?(.*)$/is.exec(url);
  if (m === null) return null;
  return { scheme: m[1]!, user: m[2] ?? '', password: m[3], rest: m[4]! };
}

function pick(urlHas: boolean, file: string | undefined, option: string, envName: string, env: NodeJS.ProcessEnv, what: string): string | undefined {
  if (file !== undefined) {
    if (urlHas) throw new UsageError(`the ${what} password is given both in the URL and by ${option}: keep one (prefer the file)`);
    return readPasswordFile(file, option);
  }
  if (urlHas) return undefined;
  const v = env[envName];
  return v === undefined || v === '' ? undefined : v;
}

/** The URL with the password from `--<side>-password-file` or the environment, when the URL has none. */
export function withPassword(url: string, side: 'source' | 'target', file: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const u = splitUserInfo(url);
  if (u === null) return url;
  const pw = pick(u.password !== undefined && u.password !== '', file, `--${side}-password-file`, PASSWORD_ENV[side], env, side);
  if (pw === undefined) return url;
  return `${u.scheme}${u.user}:${encodeURIComponent(pw)}@${u.rest}`;
}

/**
 * The URL without its password, and the password apart: for a child process, which gets the
 * password through its environment (REPLICANT_*_PASSWORD), never its argv.
 */
export function withoutPassword(url: string): { url: string; password: string | undefined } {
  const u = splitUserInfo(url);
  if (u === null || u.password === undefined || u.password === '') return { url, password: undefined };
  return { url: `${u.scheme}${u.user ? `${u.user}@` : ''}${u.rest}`, password: decodeURIComponent(u.password) };
}

/** A `sentinel[s]://` URL with `sentinelPassword` from the file or the environment, when the URL has none. */
export function withSentinelPassword(url: string, file: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const isSentinel = isSentinelUrl(url);
  if (!isSentinel) {
    if (file !== undefined) throw new UsageError('--sentinel-password-file needs a sentinel:// source');
    return url;
  }
  const q = url.indexOf('?');
  const has = q >= 0 && new URLSearchParams(url.slice(q + 1)).get('sentinelPassword');
  const pw = pick(Boolean(has), file, '--sentinel-password-file', PASSWORD_ENV.sentinel, env, 'sentinel');
  if (pw === undefined) return url;
  return `${url}${q >= 0 ? '&' : '?'}sentinelPassword=${encodeURIComponent(pw)}`;
}

/** --source / --target with the passwords from files or the environment applied. */
export function resolvePasswords(o: { source: string; target: string } & PasswordFileOptions, env: NodeJS.ProcessEnv = process.env): { source: string; target: string } {
  const source = withSentinelPassword(withPassword(o.source, 'source', o.sourcePasswordFile, env), o.sentinelPasswordFile, env);
  return { source, target: withPassword(o.target, 'target', o.targetPasswordFile, env) };
}
