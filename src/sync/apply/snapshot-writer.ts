/**
 * Applies a decoded RDB snapshot to the target: records -> Translator -> RESP-encoded units
 * on the TargetWriter, with SELECT whenever the db changes, in bounded memory (the writer's
 * in-flight budget is the only buffer; `submit` returning false pauses the decoder).
 *
 * Commands are encoded into the unit's buffer as the translator produces them, so their
 * argument arrays and the record Buffers they point at die young (holding ~10k commands per
 * unit until submit made every scavenge copy them). Only the pairs of the MSET being gathered
 * are held, until it closes.
 */
import type { Logger } from '../../observe/logger.js';
import type { RdbRecord } from '../../rdb/types.js';
import { KeyStartRecord, StringRecord } from '../../rdb/records.js';
import {
  bulkLength, bulkLengthOf, encodeCommands, encodedLength, multibulkHeaderLength, writeBulk, writeCommand, writeMultibulkHeader, writeRangeBulk, type Arg,
} from '../../resp/encode.js';
import type { TargetCommandError } from '../../writer/errors.js';
import type { UnitWriter } from '../../writer/index.js';
import type { WriteUnit } from '../../writer/types.js';
import { Translator, type CommandSink } from '../../translate/translator.js';
import type { TranslateOptions } from '../../translate/options.js';

export interface SnapshotApplierOptions {
  writer: UnitWriter;
  translate: TranslateOptions;
  logger: Logger;
  /** Bytes per unit submitted to the writer (a single bigger command makes a unit of its own). Default 512 KiB. */
  unitBytes?: number;
  /**
   * Most commands per unit. Default 4096: high enough that units of small RESTOREs are cut by
   * bytes, not by count (a unit cut while mostly empty is copied out of its buffer).
   */
  unitCommands?: number;
  /**
   * Cluster targets have only db 0: called for each key of another db, which is then
   * dropped (the callback throws to stop instead).
   */
  onForeignDb?: (db: number, key: Buffer) => void;
  /** Turn runs of plain SETs into MSET (not for cluster targets, where keys spread over slots). Default true. */
  coalesceSets?: boolean;
  /** Most key/value pairs per MSET (default MSET_PAIRS; bench/target-floor.mjs compares sizes). */
  msetPairs?: number;
  /**
   * Called with true before the first piece of a string that the decoder streams in pieces
   * (`stringPart` records), and with false when that key ends: the caller may hold less in its
   * buffers meanwhile (one value then feeds the whole pipeline, see ./session.ts).
   */
  onLongString?: (streaming: boolean) => void;
}

/**
 * Most key/value pairs per MSET by default. The target's cost per key falls with longer MSETs (fewer
 * command dispatches): fed 1M keys × 16 B from memory, 1,024 pairs took 860-1,090 ms of its
 * CPU against 1,100-1,270 ms for 128 (bench/README.md, 2026-12-07); beyond that it is flat.
 */
export const MSET_PAIRS = 1024;
/** `$4\r\nMSET\r\n`: the verb of a coalesced MSET, after its `*<n>\r\n` header. */
const MSET_VERB_BYTES = 10;
const CRLF = Buffer.from('\r\n');

export interface SnapshotStats {
  keys: number;
  commands: number;
  /** Keys skipped because already expired. */
  expiredSkipped: number;
  /** Keys skipped because corrupt (decoder) or untranslatable, under --on-error skip. */
  skipped: number;
  functions: number;
}

/**
 * The MSET being gathered from consecutive plain SETs, written straight into the open unit's
 * buffer as the pairs come: after a gap as long as the longest header (`*<args>\r\n$4\r\nMSET\r\n`),
 * which is filled when the MSET closes; the pairs then move down over the part of the gap the
 * header did not need (one memmove per MSET rather than a second copy of each key and value).
 * Keys and values from the decoder are copied from their ranges of the RDB bytes: no Buffer is
 * made of them.
 */
class MsetGather {
  /** Arguments gathered (2 per pair) and their encoded bytes; `len` 0: no MSET open. */
  len = 0;
  bytes = 0;
  /** Where the open MSET's gap starts in the unit's buffer. */
  private start = 0;
  private readonly gap: number;

  constructor(private readonly maxArgs: number) {
    this.gap = multibulkHeaderLength(maxArgs + 1) + MSET_VERB_BYTES;
  }

  /** Bytes the open MSET takes in the unit's buffer with one more pair of `pairBytes` (or a new one with it). */
  sizeWith(pairBytes: number): number {
    return this.gap + this.bytes + pairBytes;
  }

  /** Opens an MSET at `at` of the unit's buffer (room for sizeWith(first pair) checked by the caller). */
  begin(at: number): void {
    this.start = at;
  }

  /** Writes a pair of `pairBytes` encoded bytes into `buf`; returns true when the MSET is full. */
  add(buf: Buffer, key: Arg, value: Arg, pairBytes: number): boolean {
    const k = argBuffer(key);
    const v = argBuffer(value);
    return this.addRanges(buf, k, 0, k.length, v, 0, v.length, pairBytes);
  }

  /** add() of a key and a value given as ranges. */
  addRanges(buf: Buffer, ks: Buffer, ka: number, kl: number, vs: Buffer, va: number, vl: number, pairBytes: number): boolean {
    const at = this.start + this.gap + this.bytes;
    const end = writeRangeBulk(buf, writeRangeBulk(buf, at, ks, ka, kl), vs, va, vl);
    // A wrong size would send a cut or garbled command to the target: never let it pass.
    if (end !== at + pairBytes) throw new Error(`MSET pair encoded to ${end - at} bytes, ${pairBytes} measured`);
    this.bytes += pairBytes;
    this.len += 2;
    return this.len === this.maxArgs;
  }

  /** Writes the header of the open MSET and closes the gap; returns where the MSET starts and ends. */
  close(buf: Buffer): { start: number; end: number } {
    const start = this.start;
    const headerEnd = writeBulk(buf, writeMultibulkHeader(buf, start, this.len + 1), 'MSET');
    const pairs = start + this.gap;
    if (headerEnd < pairs) buf.copyWithin(headerEnd, pairs, pairs + this.bytes);
    const end = headerEnd + this.bytes;
    this.len = 0;
    this.bytes = 0;
    return { start, end };
  }
}

/** An argument as bytes, as writeBulk() would encode it (a gathered SET's are Buffers in practice). */
function argBuffer(a: Arg): Buffer {
  return typeof a === 'object' ? a : Buffer.from(String(a), 'utf8');
}

/**
 * The unit being encoded: its buffer (null until its first command), the bytes used and the
 * commands in it, and the db it writes to (a SELECT always starts a unit, so a unit never spans
 * two dbs and a command the target rejects can be placed in its db, see SnapshotApplier.dbOf).
 */
class OpenUnit {
  buf: Buffer | null = null;
  used = 0;
  count = 0;
  db = 0;
  /** Size of a fresh buffer (a bigger command gets a buffer of its own size). */
  private readonly unitBytes: number;

  constructor(unitBytes: number) {
    this.unitBytes = unitBytes;
  }

  /** A fresh buffer with room for at least `size` bytes; the previous one must have been taken. */
  open(size: number): Buffer {
    const fresh = Buffer.allocUnsafe(Math.max(this.unitBytes, size));
    this.buf = fresh;
    return fresh;
  }

  /** One command was written, ending at `end`; `expected` is where its measured size said. */
  wrote(end: number, expected: number): void {
    // A wrong size would send a cut or garbled command to the target: never let it pass.
    if (end !== expected) throw new Error(`snapshot command encoded to ${end - this.used} bytes, ${expected - this.used} measured`);
    this.used = end;
    this.count++;
  }

  /** The encoded commands as a payload (null if none), and the unit emptied. */
  take(): Buffer | null {
    const buf = this.buf;
    let payload: Buffer | null = null;
    if (buf !== null && this.count > 0) {
      // A mostly empty buffer (cut by the command count or by a big command) is not kept
      // whole while in flight: the writer's budget counts payload bytes only.
      payload = buf.subarray(0, this.used);
      if (this.used < buf.length / 2) payload = Buffer.from(payload);
    }
    this.buf = null;
    this.used = 0;
    this.count = 0;
    return payload;
  }
}

export class SnapshotApplier {
  private readonly translator: Translator;
  private readonly writer: UnitWriter;
  private readonly unitBytes: number;
  private readonly unitCommands: number;
  private readonly coalesceSets: boolean;
  private readonly onForeignDb: ((db: number, key: Buffer) => void) | undefined;
  private readonly onLongString: ((streaming: boolean) => void) | undefined;
  /** Inside a string that arrives as `stringPart` records. */
  private longString = false;
  /** The translator hands each command straight to `add`, a plain string key's SET to `addSet`. */
  private readonly sink: CommandSink = { push: (cmd) => this.add(cmd), setRange: (k, v) => this.addSet(k, v) };

  private readonly unit: OpenUnit;
  /** Encoded units waiting for `apply` to submit them (the translator calls `add` synchronously). */
  private ready: WriteUnit[] = [];
  private readonly mset: MsetGather;
  /** The db each submitted unit writes to (see OpenUnit.db and dbOf). */
  private readonly unitDbs = new WeakMap<object, number>();

  /** Inside a key that is being dropped. */
  private dropping = false;
  private db = -1;
  readonly stats: SnapshotStats = { keys: 0, commands: 0, expiredSkipped: 0, skipped: 0, functions: 0 };
  /** `repl-stream-db` from the RDB's AUX fields: the db selected when the stream starts. */
  replStreamDb = 0;

  constructor(opts: SnapshotApplierOptions) {
    this.writer = opts.writer;
    // add() encodes (or takes the arguments of) each command before the translator produces
    // the next: the translator may reuse its arrays and payload buffer.
    this.translator = new Translator({ ...opts.translate, transientCommands: true });
    this.unitBytes = Math.max(1024, opts.unitBytes ?? 512 * 1024);
    this.unit = new OpenUnit(this.unitBytes);
    this.unitCommands = Math.max(1, opts.unitCommands ?? 4096);
    this.coalesceSets = opts.coalesceSets ?? true;
    this.mset = new MsetGather(2 * Math.max(1, opts.msetPairs ?? MSET_PAIRS));
    this.onForeignDb = opts.onForeignDb;
    this.onLongString = opts.onLongString;
  }

  /** The db the target connection has selected (after everything submitted). */
  get currentDb(): number {
    return this.db < 0 ? 0 : this.db;
  }

  async apply(records: readonly RdbRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i++) {
      const rec = records[i]!;
      if (this.dropping) {
        if (rec.kind === 'keyEnd' || rec.kind === 'keySkipped') this.dropping = false;
        continue;
      }
      // Most snapshot keys are small plain strings: their three records (keyStart, string,
      // keyEnd) go to the MSET being gathered in one step when the translator says it can.
      if (rec instanceof KeyStartRecord && !this.longString && (rec.db === 0 || this.onForeignDb === undefined)) {
        const value = records[i + 1];
        if (value instanceof StringRecord && records[i + 2]?.kind === 'keyEnd' && this.translator.plainString(rec, value, this.sink)) {
          this.stats.keys++;
          this.db = rec.db;
          i += 2;
          if (this.ready.length > 0) await this.submitReady();
          continue;
        }
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
          this.endLongString();
          break;
        case 'keyEnd':
          this.endLongString();
          break;
        case 'stringPart':
          if (!this.longString) {
            this.longString = true;
            this.onLongString?.(true);
          }
          break;
        case 'function':
          this.stats.functions++;
          break;
        default:
          break;
      }
      this.translator.push(rec, this.sink);
      if (this.ready.length > 0) await this.submitReady();
    }
  }

  private endLongString(): void {
    if (!this.longString) return;
    this.longString = false;
    this.onLongString?.(false);
  }

  /** Submit what is batched; resolves when the writer accepted it (not when applied). */
  async finish(): Promise<void> {
    this.closeMset();
    this.cut();
    await this.submitReady();
    const t = this.translator.stats;
    this.stats.expiredSkipped = t.expiredSkipped;
  }

  get translatorStats(): Translator['stats'] {
    return this.translator.stats;
  }

  /** The db a unit of this applier writes to (its payload, as submitted), or undefined if not one of its units. */
  dbOf(payload: Buffer | readonly Buffer[] | undefined): number | undefined {
    return payload === undefined ? undefined : this.unitDbs.get(payload);
  }

  /**
   * A target that rejects an MSET this applier gathered (a key its ACL forbids, say) would lose
   * every key of it: the pairs are sent again one SET each (in the MSET's db), so that only the
   * keys rejected again are lost. Returns false when `e` is not such an MSET (the caller then
   * counts the rejection). Safe in any order: a gathered key is written by nothing else.
   */
  retryRejected(e: TargetCommandError): boolean {
    const args = e.args;
    const db = this.dbOf(e.payload);
    if (args === undefined || db === undefined || args.length < 5 || args[0]!.toString('latin1').toUpperCase() !== 'MSET') return false;
    const cmds: Arg[][] = [['SELECT', db]];
    for (let i = 1; i + 1 < args.length; i += 2) cmds.push(['SET', args[i]!, args[i + 1]!]);
    cmds.push(['SELECT', this.currentDb]);
    const payload = [encodeCommands(cmds)];
    this.unitDbs.set(payload, db);
    try {
      this.writer.submit({ payload, count: cmds.length });
    } catch {
      return false;
    }
    return true;
  }

  private add(cmd: Arg[]): void {
    if (cmd[0] === 'SELECT') {
      this.closeMset();
      this.cut();
      this.unit.db = Number(cmd[1]);
    }
    if (this.longString && this.addByReference(cmd)) return;
    // Plain `SET key value` of consecutive keys becomes one MSET: far fewer command
    // dispatches on the target for the many-small-strings datasets that dominate snapshots.
    if (this.coalesceSets && cmd.length === 3 && cmd[0] === 'SET') {
      const key = cmd[1]!;
      const value = cmd[2]!;
      const pair = bulkLength(key) + bulkLength(value);
      if (this.mset.add(this.msetRoom(pair), key, value, pair)) this.closeMset();
    } else {
      this.closeMset();
      const size = encodedLength(cmd);
      const buf = this.reserveBuffer(size);
      const at = this.unit.used;
      this.unit.wrote(writeCommand(buf, at, cmd), at + size);
    }
    if (this.unit.count + (this.mset.len > 0 ? 1 : 0) >= this.unitCommands) {
      this.closeMset();
      this.cut();
    }
  }

  /**
   * `SET key value` of a plain string key, both still ranges of the RDB bytes: gathered into
   * the MSET as ranges and copied from there into the unit, never made a Buffer of their own.
   */
  private addSet(k: KeyStartRecord, v: StringRecord): void {
    if (!this.coalesceSets || this.longString) {
      this.add(['SET', k.key, v.value]);
      return;
    }
    const pair = bulkLengthOf(k.keyLen) + bulkLengthOf(v.len);
    if (this.mset.addRanges(this.msetRoom(pair), k.keySrc, k.keyAt, k.keyLen, v.src, v.at, v.len, pair)) this.closeMset();
    if (this.unit.count + (this.mset.len > 0 ? 1 : 0) >= this.unitCommands) {
      this.closeMset();
      this.cut();
    }
  }

  /**
   * A piece of a long string (SET or SETRANGE of up to 1 MiB) goes out as a unit of its own,
   * [head, value, CRLF], the value not copied: one Buffer fewer per MiB that V8 must collect.
   * Safe because the decoder never writes to a piece it emitted (a plain piece is assembled in
   * a Buffer of its own, an LZF piece is a view of a window it then leaves) and the translator
   * hands over views of it or a Buffer it fills once. Returns false for any other command.
   */
  private addByReference(cmd: Arg[]): boolean {
    const n = cmd.length;
    const value = cmd[n - 1];
    if (!Buffer.isBuffer(value) || value.length < this.unitBytes) return false;
    this.closeMset();
    this.cut();
    let size = multibulkHeaderLength(n) + bulkLength(value) - value.length - 2;
    for (let i = 0; i < n - 1; i++) size += bulkLength(cmd[i]!);
    const head = Buffer.allocUnsafe(size);
    let o = writeMultibulkHeader(head, 0, n);
    for (let i = 0; i < n - 1; i++) o = writeBulk(head, o, cmd[i]!);
    o += head.write(`$${value.length}\r\n`, o, 'latin1');
    if (o !== size) throw new Error(`snapshot command head encoded to ${o} bytes, ${size} measured`);
    const payload = [head, value, CRLF];
    this.ready.push({ payload, count: 1 });
    this.unitDbs.set(payload, this.unit.db);
    return true;
  }

  /**
   * The unit's buffer, with room in the MSET being gathered for one more pair of `pairBytes`:
   * an MSET that would not fit in the unit with it closes, the unit is cut and the pair opens
   * the next MSET (in a buffer of its own size if it is bigger than a unit).
   */
  private msetRoom(pairBytes: number): Buffer {
    const mset = this.mset;
    if (mset.len > 0 && this.unit.used + mset.sizeWith(pairBytes) <= this.unitBytes) return this.unit.buf!;
    if (mset.len > 0 || this.unit.used + mset.sizeWith(pairBytes) > this.unitBytes) {
      this.closeMset();
      this.cut();
    }
    const buf = this.reserveBuffer(mset.sizeWith(pairBytes));
    mset.begin(this.unit.used);
    return buf;
  }

  /** Close the MSET being gathered, if any: it becomes one command of the unit. */
  private closeMset(): void {
    const mset = this.mset;
    if (mset.len === 0) return;
    const { start, end } = mset.close(this.unit.buf!);
    if (start !== this.unit.used) throw new Error(`MSET opened at byte ${start} of a unit of ${this.unit.used}`);
    this.unit.wrote(end, end);
  }

  /** The unit's buffer, with room for `size` more bytes at `used` (the unit is cut first if they do not fit). */
  private reserveBuffer(size: number): Buffer {
    const unit = this.unit;
    const buf = unit.buf;
    if (buf !== null && unit.used + size <= buf.length) return buf;
    this.cut();
    return unit.open(size);
  }

  /** Close the unit being encoded and queue it for submission. */
  private cut(): void {
    const unit = this.unit;
    const count = unit.count;
    const payload = unit.take();
    if (payload === null) return;
    this.ready.push({ payload, count });
    this.unitDbs.set(payload, unit.db);
  }

  private async submitReady(): Promise<void> {
    const units = this.ready;
    this.ready = [];
    for (const unit of units) {
      this.stats.commands += unit.count;
      if (!this.writer.submit(unit)) await this.writer.waitDrain();
    }
  }
}
