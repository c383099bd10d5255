/**
 * Keys of the snapshot that did not reach the target (a write the target rejected under
 * --on-error skip, a corrupt or untranslatable value, a db a cluster does not have). Each one is
 * counted, the first few are logged one by one, and every one is written to a report file
 * (`<db>\t<key>\t<reason>` per line, keys printable with \xNN escapes) so that the user can tell
 * exactly what is missing. Expired keys are not lost: they would not exist on the source either.
 */
import { accessSync, constants, ftruncateSync, lstatSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { UsageError, printableKey } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { commandKeys, commandName, keyIndexes } from '../commands/keys.js';
import type { TargetCommandError } from '../writer/errors.js';

/** Lost keys logged one by one; the rest are only in the report file. */
export const LOGGED_LOST_KEYS = 20;
/** Report lines buffered before they are appended to the file. */
const FLUSH_BYTES = 64 * 1024;
/**
 * A new file only (O_CREAT|O_EXCL: an existing path, even a symlink, is refused, so a planted
 * link in a shared temp dir cannot redirect the report), never through a symlink, appended to.
 */
const CREATE_NEW = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;

/** The default report path: under `dir` (the spool dir) or the OS temp dir, named after the time. */
export function defaultReportPath(dir: string | undefined, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  return join(dir ?? tmpdir(), `replicant-lost-keys-${stamp}.txt`);
}

/** The keys a rejected snapshot command was writing (every key of an MSET). */
export function keysOfCommand(args: readonly Buffer[]): Buffer[] {
  return keyIndexes(commandKeys(commandName(args)), args, 'write').map((i) => args[i]!);
}

export class LostKeys {
  private readonly log: Logger;
  private readonly explicitPath: string | undefined;
  private readonly dir: string | undefined;
  private file: string | null = null;
  /** The report's descriptor, held from its creation: written and emptied through it, never reopened by name. */
  private fd: number | null = null;
  /** The report could not be written: keys are still counted and the first ones logged. */
  private broken = false;
  private lines: string[] = [];
  private lineBytes = 0;
  private n = 0;
  /** The last key recorded: the rejected chunks of one big key count once. */
  private lastDb = -1;
  private lastKey: Buffer | null = null;
  private readonly first: string[] = [];

  /** `path`: --report; otherwise a file is created under `dir` (or the temp dir) at the first lost key. */
  constructor(log: Logger, path: string | undefined, dir: string | undefined) {
    this.log = log;
    this.explicitPath = path;
    this.dir = dir;
    // The file is created only when a key is lost, hours later maybe: check its directory now.
    if (path !== undefined) {
      try {
        accessSync(dirname(path), constants.W_OK);
      } catch (e) {
        throw new UsageError(`--report ${path}: its directory is not writable: ${(e as Error).message}`);
      }
      // The report is created new (see CREATE_NEW): say so now rather than when a key is lost.
      if (pathExists(path)) throw new UsageError(`--report ${path}: it already exists (a file, a directory or a symlink); Replicant only creates a new report, readable by the owner only: remove it or choose another path`);
    }
  }

  /** Keys lost so far. */
  get count(): number {
    return this.n;
  }

  /** The report file, once a key was lost. */
  get path(): string | null {
    return this.file;
  }

  /** The first lost keys, printable (for the summary line). */
  get sample(): readonly string[] {
    return this.first;
  }

  /** A command of the snapshot the target rejected: every key it was writing is lost. */
  rejected(err: TargetCommandError, db: number): void {
    const reason = `${err.command || 'command'} rejected by the target: ${err.reply}`;
    const keys = err.args ? keysOfCommand(err.args) : [];
    if (keys.length === 0) {
      // A keyless command (FUNCTION LOAD, SCRIPT LOAD, SELECT): nothing to name but the command.
      this.record(db, null, reason);
      return;
    }
    for (const k of keys) this.add(db, k, reason);
  }

  /** One key that was not written. */
  add(db: number, key: Buffer, reason: string): void {
    if (this.lastKey !== null && db === this.lastDb && key.equals(this.lastKey)) return;
    this.lastDb = db;
    this.lastKey = Buffer.from(key);
    this.record(db, key, reason);
  }

  /** A new full sync starts: what the previous attempt lost is rewritten by this one. */
  reset(): void {
    this.n = 0;
    this.first.length = 0;
    this.lines = [];
    this.lineBytes = 0;
    this.lastDb = -1;
    this.lastKey = null;
    if (this.file !== null) this.open();
  }

  /** Appends what is buffered to the report file. */
  flush(): void {
    if (this.lines.length === 0 || this.file === null) return;
    const text = this.lines.join('');
    this.lines = [];
    this.lineBytes = 0;
    try {
      writeSync(this.fd!, text);
    } catch (e) {
      this.fileFailed(e);
    }
  }

  /** Called from the writer's reply handling: a disk error must not stop the sync, only be said. */
  private fileFailed(e: unknown): void {
    this.log.error({ report: this.file, err: (e as Error).message }, 'cannot write the lost-keys report: lost keys are still counted, the first ones logged');
    this.broken = true;
    this.file = null;
    this.fd = null;
    this.lines = [];
  }

  private record(db: number, key: Buffer | null, reason: string): void {
    if (this.file === null && !this.broken) this.open();
    this.n++;
    const shown = key === null ? '' : printableKey(key, Infinity);
    if (this.n <= LOGGED_LOST_KEYS) {
      this.first.push(key === null ? `(${reason})` : `${db}:${shown}`);
      this.log.warn({ db, key: key === null ? undefined : printableKey(key), reason, report: this.file }, 'key not written to the target');
    }
    if (this.fd === null) return;
    const line = `${db}\t${shown}\t${reason.replace(/[\r\n\t]/g, ' ')}\n`;
    this.lines.push(line);
    this.lineBytes += line.length;
    if (this.lineBytes >= FLUSH_BYTES) this.flush();
  }

  /** Empties the report in use (through its descriptor), or creates --report or a new default one (0600). */
  private open(): void {
    try {
      if (this.fd !== null) return ftruncateSync(this.fd, 0);
      const file = this.explicitPath ?? defaultReportPath(this.dir);
      this.file = file;
      this.fd = openSync(file, CREATE_NEW, 0o600);
    } catch (e) {
      this.fileFailed(e);
    }
  }
}

/** Whether anything is at `path`, a dangling symlink included. */
function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
