/**
 * The spool's private directory: `<parent>/replicant-<pid>-<random>/` (mode 0700: it holds
 * source data) with a `lock` file naming the owning process and host. Only files created
 * through this object are ever removed, and the directory itself is removed non-recursively,
 * so nothing the spool did not create can be deleted. Directories left by killed runs (their
 * lock holder is dead on this host) are removed once per parent, the same careful way.
 */
import { hostname } from 'node:os';
import { chmod, mkdtemp, readdir, readFile, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalIoError } from '../errors.js';
import type { Logger } from '../observe/logger.js';

/** Names of the files a spool creates in its directory. */
const SPOOL_FILE = /^(?:lock|segment-\d+\.spool)$/;
const SPOOL_DIR = /^replicant-\d+-[A-Za-z0-9]+$/;
/** Parents already swept by this process. */
const swept = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock holder of a spool directory, or null when the lock is missing or unreadable. */
async function readLock(dir: string): Promise<{ pid: number; host?: string } | null> {
  try {
    const v = JSON.parse(await readFile(join(dir, 'lock'), 'utf8')) as { pid?: unknown; host?: unknown };
    if (typeof v.pid !== 'number' || !Number.isSafeInteger(v.pid) || v.pid <= 0) return null;
    return typeof v.host === 'string' ? { pid: v.pid, host: v.host } : { pid: v.pid };
  } catch {
    return null;
  }
}

/**
 * Removes the spool directories under `parent` whose lock holder is dead: a lock naming another
 * host, or a directory without a readable lock, is left alone. Returns the removed paths.
 */
export async function removeStaleSpools(parent: string, logger?: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  const here = hostname();
  for (const name of names) {
    if (!SPOOL_DIR.test(name)) continue;
    const dir = join(parent, name);
    const lock = await readLock(dir);
    if (lock === null || lock.pid === process.pid || (lock.host !== undefined && lock.host !== here) || isAlive(lock.pid)) continue;
    try {
      const files = await readdir(dir);
      // Anything the spool does not write is a reason to keep the directory.
      if (files.some((f) => !SPOOL_FILE.test(f))) {
        logger?.warn({ dir, pid: lock.pid }, 'stale spool directory holds unknown files: left in place');
        continue;
      }
      for (const f of files.filter((f) => f !== 'lock')) await unlink(join(dir, f));
      await unlink(join(dir, 'lock'));
      await rmdir(dir);
      removed.push(dir);
      logger?.info({ dir, pid: lock.pid, files: files.length }, 'removed the spool directory of a dead run');
    } catch (e) {
      logger?.warn({ dir, err: (e as Error).message }, 'could not remove a stale spool directory');
    }
  }
  return removed;
}

export class SpoolDirectory {
  private readonly files = new Set<string>();
  private removed = false;

  private constructor(readonly path: string) {}

  static async create(parent: string, logger?: Logger): Promise<SpoolDirectory> {
    if (!swept.has(parent)) {
      swept.add(parent);
      await removeStaleSpools(parent, logger);
    }
    let path: string;
    try {
      path = await mkdtemp(join(parent, `replicant-${process.pid}-`));
      // mkdtemp already uses 0700; say so explicitly, whatever the platform default.
      await chmod(path, 0o700);
    } catch (e) {
      throw new LocalIoError(`spool: cannot create a directory in ${parent}: ${(e as Error).message}`, { cause: e });
    }
    const dir = new SpoolDirectory(path);
    const lock = join(path, 'lock');
    try {
      await writeFile(lock, `${JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() })}\n`, { flag: 'wx', mode: 0o600 });
    } catch (e) {
      await rmdir(path).catch(() => undefined);
      throw new LocalIoError(`spool: cannot create ${lock}: ${(e as Error).message}`, { cause: e });
    }
    dir.track(lock);
    return dir;
  }

  /** Record a file this spool created (so that remove() deletes it). */
  track(file: string): void {
    this.files.add(file);
  }

  /** Delete one tracked file (missing is fine). */
  async unlink(file: string): Promise<void> {
    if (!this.files.has(file)) throw new Error(`spool: refusing to delete ${file}: not created by this spool`);
    try {
      await unlink(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.files.delete(file);
  }

  /** Delete every tracked file, then the directory if it is empty. */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    for (const f of [...this.files]) await this.unlink(f).catch(() => undefined);
    try {
      await rmdir(this.path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new LocalIoError(`spool: cannot remove ${this.path}: ${(e as Error).message}`, { cause: e });
    }
  }
}
