/**
 * Where the checkpoint lives.
 *
 * - `target` (default on a standalone target): a reserved key on the target, written inside
 *   the same MULTI/EXEC as the batch it covers, so the target itself says exactly what it has
 *   applied — nothing lost, nothing applied twice, whatever crashes.
 * - `file`: a local JSON file, replaced atomically after batches are applied: at-least-once
 *   (a crash between applying a batch and saving repeats that batch).
 * - `none`: no resume; every start is a full sync.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LocalIoError } from '../errors.js';
import type { Arg } from '../resp/encode.js';
import { parseCheckpoint, serializeCheckpoint, unreadableCheckpoint, type Checkpoint } from './checkpoint.js';


/** The control-plane calls a store needs from the target (implemented by the sync session). */
export interface CheckpointTargetAccess {
  /** Run commands as one MULTI/EXEC on the writer connection, after everything already submitted; EXEC's replies. */
  runAtomic(commands: Arg[][]): Promise<unknown[]>;
  /** GET a key in a db on a side connection. */
  get(db: number, key: string): Promise<Buffer | null>;
}

/** A checkpoint store is described by what it can do, not by what it is. */
export interface CheckpointStore {
  /** Human-readable location for logs. */
  readonly where: string;
  /**
   * The checkpoint is written in the same transaction as the batch it covers (exactly once): the
   * target itself then says what it applied, and what it says overrides what this process believes.
   */
  readonly atomicWithData: boolean;
  /** The target key holding the checkpoint, when it is on the target (listed in the registry). */
  readonly key: string | null;
  /** The target db holding Replicant's keys (the checkpoint key, lease, registry). */
  readonly homeDb: number;
  load(): Promise<Checkpoint | null>;
  /**
   * Commands that store `cp`, to append to an atomic unit whose stream commands leave the
   * connection in `dbAfter`; they must leave it there too. Null when this store does not
   * write inline.
   */
  inlineCommands(cp: Checkpoint, dbAfter: number): Arg[][] | null;
  /** A unit covered by `cp` has been applied (file store persists it, throttled). */
  applied(cp: Checkpoint): void;
  /**
   * Store `cp` now (full-sync markers, the end of a full sync, shutdown). `dbAfter` as above.
   * The target store resolves with the checkpoint it replaced (raw), the others with undefined.
   */
  write(cp: Checkpoint, dbAfter: number): Promise<unknown>;
  /** Persist anything throttled. */
  flush(): Promise<void>;
}

export class TargetCheckpointStore implements CheckpointStore {
  readonly atomicWithData = true;
  readonly where: string;
  constructor(
    private readonly access: CheckpointTargetAccess,
    readonly key: string,
    readonly homeDb = 0,
  ) {
    this.where = `target key "${key}" in db ${homeDb}`;
  }

  async load(): Promise<Checkpoint | null> {
    const raw = await this.access.get(this.homeDb, this.key);
    if (raw === null) return null;
    const cp = parseCheckpoint(raw);
    if (cp === null) {
      throw unreadableCheckpoint(
        this.where,
        raw,
        `to copy everything again over the target's keys, delete it (DEL ${this.key} in db ${this.homeDb}) and run with --existing replace (or --existing flush to empty the target first); to resume, put back a checkpoint this sync wrote`,
      );
    }
    return cp;
  }

  /**
   * GETSET, not SET: EXEC's last reply is then the checkpoint this one replaces, which tells
   * the session, at no extra round trip, whether the target still holds what it applied.
   */
  inlineCommands(cp: Checkpoint, dbAfter: number): Arg[][] {
    const set: Arg[] = ['GETSET', this.key, serializeCheckpoint(cp)];
    if (dbAfter === this.homeDb) return [set];
    return [['SELECT', this.homeDb], set, ['SELECT', dbAfter]];
  }

  applied(): void {}

  async write(cp: Checkpoint, dbAfter: number): Promise<unknown> {
    const cmds = this.inlineCommands(cp, dbAfter);
    const replies = await this.access.runAtomic(cmds);
    return replies[cmds.findIndex((c) => c[0] === 'GETSET')];
  }

  async flush(): Promise<void> {}
}

export class FileCheckpointStore implements CheckpointStore {
  readonly atomicWithData = false;
  readonly key = null;
  readonly homeDb = 0;
  readonly where: string;
  private pending: Checkpoint | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly path: string, private readonly everyMs = 200) {
    this.where = `file ${path}`;
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (e) {
      throw new LocalIoError(`checkpoint: cannot create the directory of ${path}: ${(e as Error).message}`);
    }
  }

  async load(): Promise<Checkpoint | null> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new LocalIoError(`checkpoint: cannot read ${this.path}: ${(e as Error).message}`);
    }
    const cp = parseCheckpoint(text);
    if (cp === null) {
      throw unreadableCheckpoint(this.where, text, `to copy everything again, delete it (rm ${this.path}) and run with --existing replace (or --existing flush to empty the target first); to resume, restore the file from a backup`);
    }
    return cp;
  }

  inlineCommands(): null {
    return null;
  }

  applied(cp: Checkpoint): void {
    this.pending = cp;
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.persist();
      }, this.everyMs);
      this.timer.unref();
    }
  }

  async write(cp: Checkpoint): Promise<void> {
    this.pending = cp;
    this.persist();
  }

  async flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.persist();
  }

  private persist(): void {
    const cp = this.pending;
    if (cp === null) return;
    this.pending = null;
    const tmp = `${this.path}.tmp`;
    try {
      writeFileSync(tmp, serializeCheckpoint(cp) + '\n');
      renameSync(tmp, this.path);
    } catch (e) {
      throw new LocalIoError(`checkpoint: cannot write ${this.path}: ${(e as Error).message}`);
    }
  }
}

export class NoCheckpointStore implements CheckpointStore {
  readonly atomicWithData = false;
  readonly key = null;
  readonly homeDb = 0;
  readonly where = 'nowhere (--checkpoint none)';
  async load(): Promise<null> {
    return null;
  }
  inlineCommands(): null {
    return null;
  }
  applied(): void {}
  async write(): Promise<void> {}
  async flush(): Promise<void> {}
}

export type CheckpointSpec = { kind: 'target'; key?: string; db: number } | { kind: 'file'; path: string } | { kind: 'none' };
