/**
 * TLS options of the commands that connect to a source and a target (sync, verify).
 *
 * TLS itself is chosen by the URL (`rediss://`, `sentinels://`); these options only say how to
 * verify the server and which client certificate to show:
 *   --tls-ca / --tls-cert / --tls-key / --tls-insecure          both sides
 *   --source-tls-ca ... / --target-tls-ca ...                    one side; overrides the shared one
 * Without a CA the system CAs are trusted. The files are read and checked here, before anything
 * connects, so a wrong path or a key that does not match its certificate is a usage error (exit 2).
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { TlsSettings } from '../net/tls.js';
import type { Logger } from '../observe/logger.js';

export interface TlsCliOptions {
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsInsecure?: boolean;
  sourceTlsCa?: string;
  sourceTlsCert?: string;
  sourceTlsKey?: string;
  sourceTlsInsecure?: boolean;
  targetTlsCa?: string;
  targetTlsCert?: string;
  targetTlsKey?: string;
  targetTlsInsecure?: boolean;
}

type Side = 'source' | 'target';

/** Adds the TLS options (shared and per side) to a command that takes --source and --target. */
export function addTlsOptions(cmd: Command): Command {
  cmd
    .option('--tls-ca <file>', 'PEM CA certificate(s) that issued the servers\' certificates, for rediss:// / sentinels:// URLs (default: the system CAs)')
    .option('--tls-cert <file>', 'PEM client certificate, for servers that require one (tls-auth-clients yes); needs --tls-key')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-insecure', 'do not verify the servers\' certificates nor their names (encrypted, but not authenticated; logs a warning)');
  for (const side of ['source', 'target'] as const) {
    cmd
      .option(`--${side}-tls-ca <file>`, `like --tls-ca, for the ${side} only`)
      .option(`--${side}-tls-cert <file>`, `like --tls-cert, for the ${side} only`)
      .option(`--${side}-tls-key <file>`, `like --tls-key, for the ${side} only`)
      .option(`--${side}-tls-insecure`, `like --tls-insecure, for the ${side} only`);
  }
  return cmd;
}

/** Whether a source / target URL asks for TLS. */
export function usesTls(url: string, side: Side): boolean {
  return side === 'source' ? /^(rediss|sentinels):\/\//i.test(url) : /^rediss:\/\//i.test(url);
}

interface SideFiles {
  ca?: { path: string; option: string };
  cert?: { path: string; option: string };
  key?: { path: string; option: string };
  insecure: boolean;
}

/** The `--<side>-tls-*` values. */
function ownOptions(o: TlsCliOptions, side: Side): { ca?: string; cert?: string; key?: string; insecure?: boolean } {
  return side === 'source'
    ? { ca: o.sourceTlsCa, cert: o.sourceTlsCert, key: o.sourceTlsKey, insecure: o.sourceTlsInsecure }
    : { ca: o.targetTlsCa, cert: o.targetTlsCert, key: o.targetTlsKey, insecure: o.targetTlsInsecure };
}

/** A side's files: its own option, else the shared one (named in messages as given). */
function sideFiles(o: TlsCliOptions, side: Side): SideFiles {
  const own = ownOptions(o, side);
  const shared = { ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey };
  const out: SideFiles = { insecure: own.insecure === true || o.tlsInsecure === true };
  for (const what of ['ca', 'cert', 'key'] as const) {
    const path = own[what] ?? shared[what];
    if (path !== undefined) out[what] = { path, option: own[what] !== undefined ? `--${side}-tls-${what}` : `--tls-${what}` };
  }
  return out;
}

/** The first `--<side>-tls-*` option given, for messages. */
function firstOwnOption(o: TlsCliOptions, side: Side): string | undefined {
  const given = Object.entries(ownOptions(o, side)).find(([, v]) => v !== undefined && v !== false);
  return given === undefined ? undefined : `--${side}-tls-${given[0]}`;
}

function readPem(f: { path: string; option: string }): Buffer {
  try {
    return readFileSync(f.path);
  } catch (e) {
    throw new UsageError(`${f.option} ${f.path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

/** Every PEM block of a CA file must be a certificate (Node ignores what it cannot parse, silently). */
function checkCa(pem: Buffer, f: { path: string; option: string }): void {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new UsageError(`${f.option} ${f.path}: no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (e) {
      throw new UsageError(`${f.option} ${f.path}: unreadable certificate (${(e as Error).message})`);
    }
  }
}

function loadSide(files: SideFiles): TlsSettings {
  const s: TlsSettings = {};
  if (files.insecure) s.insecure = true;
  if (files.ca) {
    s.ca = readPem(files.ca);
    checkCa(s.ca, files.ca);
    s.caFile = files.ca.path;
  }
  if ((files.cert === undefined) !== (files.key === undefined)) {
    const [has, lacks] = files.cert ? [files.cert.option, files.cert.option.replace(/cert$/, 'key')] : [files.key!.option, files.key!.option.replace(/key$/, 'cert')];
    throw new UsageError(`${has} needs ${lacks} (a client certificate goes with its private key)`);
  }
  if (files.cert && files.key) {
    s.cert = readPem(files.cert);
    s.key = readPem(files.key);
    try {
      createSecureContext({ cert: s.cert, key: s.key });
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH' ? 'the key does not belong to the certificate' : (e as Error).message.replace(/^error:[0-9A-F]+:/, '');
      throw new UsageError(`${files.cert.option} ${files.cert.path} / ${files.key.option} ${files.key.path}: ${why}`);
    }
  }
  return s;
}

/**
 * The TLS settings of each side that uses TLS (undefined for a plain side). TLS options for a
 * side whose URL is plain are refused: they would be ignored, and the user meant TLS.
 */
export function resolveTls(o: TlsCliOptions & { source: string; target: string }, logger: Logger): { source?: TlsSettings; target?: TlsSettings } {
  const out: { source?: TlsSettings; target?: TlsSettings } = {};
  const shared = [o.tlsCa && '--tls-ca', o.tlsCert && '--tls-cert', o.tlsKey && '--tls-key', o.tlsInsecure && '--tls-insecure'].find((x) => typeof x === 'string');
  const secure = { source: usesTls(o.source, 'source'), target: usesTls(o.target, 'target') };
  if (shared !== undefined && !secure.source && !secure.target) {
    throw new UsageError(`${shared}: neither --source nor --target uses TLS; write rediss:// (or sentinels:// for a sentinel source)`);
  }
  for (const side of ['source', 'target'] as const) {
    const own = firstOwnOption(o, side);
    if (!secure[side]) {
      if (own !== undefined) throw new UsageError(`${own}: the ${side} URL is plain TCP; write ${side === 'source' ? 'rediss:// (or sentinels://)' : 'rediss://'} to use TLS`);
      continue;
    }
    const settings = loadSide(sideFiles(o, side));
    if (settings.insecure) {
      logger.warn({ side }, `TLS: the ${side}'s certificate and name are NOT verified (--tls-insecure): the connection is encrypted, but anyone on the path can pose as the ${side}`);
    }
    out[side] = settings;
  }
  return out;
}

/** The TLS options as command-line arguments again, for a child `replicant sync` (bench). */
export function tlsArgs(o: TlsCliOptions): string[] {
  const out: string[] = [];
  const files: [string | undefined, string][] = [
    [o.tlsCa, '--tls-ca'], [o.tlsCert, '--tls-cert'], [o.tlsKey, '--tls-key'],
    [o.sourceTlsCa, '--source-tls-ca'], [o.sourceTlsCert, '--source-tls-cert'], [o.sourceTlsKey, '--source-tls-key'],
    [o.targetTlsCa, '--target-tls-ca'], [o.targetTlsCert, '--target-tls-cert'], [o.targetTlsKey, '--target-tls-key'],
  ];
  for (const [value, flag] of files) if (value !== undefined) out.push(flag, value);
  const flags: [boolean | undefined, string][] = [[o.tlsInsecure, '--tls-insecure'], [o.sourceTlsInsecure, '--source-tls-insecure'], [o.targetTlsInsecure, '--target-tls-insecure']];
  for (const [on, flag] of flags) if (on === true) out.push(flag);
  return out;
}
