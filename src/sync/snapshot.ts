/**
 * Applies a decoded RDB snapshot to the target: records -> Translator -> RESP-encoded units
 * on the TargetWriter, with SELECT whenever the db changes, in bounded memory (the writer's
 * in-flight budget is the only buffer; `submit` returning false pauses the decoder).
 */
import type { Logger } from '../observe/logger.js';
import type { RdbRecord } from '../rdb/types.js';
import { encodedLength, writeCommand, type Arg } from '../resp/encode.js';
import type { AnyTargetWriter } from '../target/index.js';
import { Translator, type TranslateOptions } from './translate.js';

export interface SnapshotApplierOptions {
  writer: AnyTargetWriter;
  translate: TranslateOptions;
  logger: Logger;
  /** Bytes per unit submitted to the writer. */
  unitBytes?: number;
  /** Commands per unit. */
  unitCommands?: number;
  /**
   * Cluster targets have only db 0: called for each key of another db, which is then
   * dropped (the callback throws to stop instead).
   */
  onForeignDb?: (db: number, key: Buffer) => void;
  /** Turn runs of plain SETs into MSET (not for cluster targets, where keys spread over slots). Default true. */
  coalesceSets?: boolean;
}

const MSET_PAIRS = 128;

/** Bytes of a command on the wire, near enough to cut units (the exact size is computed once, in submit). */
function approxLength(cmd: readonly Arg[]): number {
  let n = 16;
  for (const a of cmd) n += (typeof a === 'string' ? a.length : typeof a === 'number' ? 20 : a.length) + 16;
  return n;
}

export interface SnapshotStats {
  keys: number;
  commands: number;
  /** Keys skipped because already expired. */
  expiredSkipped: number;
  /** Keys skipped because corrupt (decoder) or untranslatable, under --on-error skip. */
  skipped: number;
  functions: number;
}

export class SnapshotApplier {
  private readonly translator: Translator;
  private readonly writer: AnyTargetWriter;
  private readonly unitBytes: number;
  private readonly unitCommands: number;
  private cmds: Arg[][] = [];
  /** The MSET being filled at the end of `cmds`, if any. */
  private mset: Arg[] | null = null;
  private readonly coalesceSets: boolean;
  private readonly onForeignDb: ((db: number, key: Buffer) => void) | undefined;
  /** Inside a key that is being dropped. */
  private dropping = false;
  private cmdBytes = 0;
  private db = -1;
  private scratch: Arg[][] = [];
  readonly stats: SnapshotStats = { keys: 0, commands: 0, expiredSkipped: 0, skipped: 0, functions: 0 };
  /** `repl-stream-db` from the RDB's AUX fields: the db selected when the stream starts. */
  replStreamDb = 0;

  constructor(opts: SnapshotApplierOptions) {
    this.writer = opts.writer;
    this.translator = new Translator(opts.translate);
    this.unitBytes = opts.unitBytes ?? 512 * 1024;
    this.unitCommands = opts.unitCommands ?? 1000;
    this.coalesceSets = opts.coalesceSets ?? true;
    this.onForeignDb = opts.onForeignDb;
  }

  /** The db the target connection has selected (after everything submitted). */
  get currentDb(): number {
    return this.db < 0 ? 0 : this.db;
  }

  async apply(records: readonly RdbRecord[]): Promise<void> {
    for (const rec of records) {
      if (this.dropping) {
        if (rec.kind === 'keyEnd' || rec.kind === 'keySkipped') this.dropping = false;
        continue;
      }
      if (rec.kind === 'keyStart' && rec.db !== 0 && this.onForeignDb !== undefined) {
        this.onForeignDb(rec.db, rec.key);
        this.stats.skipped++;
        this.dropping = true;
        continue;
      }
      switch (rec.kind) {
        case 'aux':
          if (rec.key.toString('latin1') === 'repl-stream-db') {
            const n = Number(rec.value.toString('latin1'));
            if (Number.isInteger(n) && n >= 0) this.replStreamDb = n;
          }
          break;
        case 'keyStart':
          // The translator emits SELECT when the db changes; remember where the connection is.
          this.stats.keys++;
          this.db = rec.db;
          break;
        case 'keySkipped':
          this.stats.skipped++;
          break;
        case 'function':
          this.stats.functions++;
          break;
        default:
          break;
      }
      const out = this.translator.push(rec, this.scratch);
      if (out.length > 0) {
        for (const c of out) this.add(c);
        out.length = 0;
      }
      if (this.cmds.length >= this.unitCommands || this.cmdBytes >= this.unitBytes) await this.submit();
    }
  }

  /** Submit what is batched; resolves when the writer accepted it (not when applied). */
  async finish(): Promise<void> {
    await this.submit();
    const t = this.translator.stats;
    this.stats.expiredSkipped = t.expiredSkipped;
  }

  get translatorStats(): Translator['stats'] {
    return this.translator.stats;
  }

  private add(cmd: Arg[]): void {
    // Plain `SET key value` of consecutive keys becomes one MSET: far fewer command
    // dispatches on the target for the many-small-strings datasets that dominate snapshots.
    if (this.coalesceSets && cmd.length === 3 && cmd[0] === 'SET') {
      if (this.mset === null) {
        this.mset = ['MSET'];
        this.cmds.push(this.mset);
      }
      this.mset.push(cmd[1]!, cmd[2]!);
      this.cmdBytes += approxLength(cmd);
      if (this.mset.length > MSET_PAIRS * 2) this.mset = null;
      return;
    }
    this.mset = null;
    this.cmds.push(cmd);
    this.cmdBytes += approxLength(cmd);
  }

  private async submit(): Promise<void> {
    if (this.cmds.length === 0) return;
    // cmdBytes is an estimate (MSET headers grow); size the payload exactly.
    let size = 0;
    for (const c of this.cmds) size += encodedLength(c);
    const payload = Buffer.allocUnsafe(size);
    let o = 0;
    for (const c of this.cmds) o = writeCommand(payload, o, c);
    const count = this.cmds.length;
    this.stats.commands += count;
    this.cmds = [];
    this.cmdBytes = 0;
    this.mset = null;
    if (!this.writer.submit({ payload, count })) await this.writer.waitDrain();
  }
}
