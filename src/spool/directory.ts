/**
 * The spool's private directory: `<parent>/replicant-<pid>-<random>/` with a `lock`
 * file naming the owning process. Only files created through this object are ever
 * removed, and the directory itself is removed non-recursively, so nothing the spool
 * did not create can be deleted.
 */
import { mkdtemp, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalIoError } from '../errors.js';

export class SpoolDirectory {
  private readonly files = new Set<string>();
  private removed = false;

  private constructor(readonly path: string) {}

  static async create(parent: string): Promise<SpoolDirectory> {
    let path: string;
    try {
      path = await mkdtemp(join(parent, `replicant-${process.pid}-`));
    } catch (e) {
      throw new LocalIoError(`spool: cannot create a directory in ${parent}: ${(e as Error).message}`, { cause: e });
    }
    const dir = new SpoolDirectory(path);
    const lock = join(path, 'lock');
    try {
      await writeFile(lock, `${JSON.stringify({ pid: process.pid, started: new Date().toISOString() })}\n`, { flag: 'wx' });
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
