/**
 * Translator: the decoder's record stream -> Redis commands that rebuild the dataset exactly
 * on a target, in bounded memory. Shared by `replicant rdb --format resp` and live sync.
 *
 * Feed every record in order to `push(record, out)`; it appends the commands that can be
 * produced now to `out`. A key is written in one of two ways:
 *
 *  - commands (default): SET (+SETRANGE pieces for big strings), RPUSH / SADD / ZADD / HSET
 *    batches of `batchElements` elements or `batchBytes` bytes, HPEXPIREAT for hash field
 *    TTLs, the stream rebuild of ./translate-stream.ts, then PEXPIREAT (or SET ... PXAT);
 *  - `mode: 'restore'` (or 'auto', which keeps strings on SET):
 *    `RESTORE key <abs ms|0> <payload> ABSTTL [REPLACE] [IDLETIME|FREQ]` built from
 *    `keyEnd.raw` (the decoder must run with `captureRaw`). The commands of a key are
 *    buffered (up to `restoreBufferBytes`) until keyEnd says whether raw bytes exist; if they
 *    do, the buffer is dropped for one RESTORE, otherwise it is sent as is. A key whose
 *    commands outgrow the buffer is written with commands from then on (its raw bytes, if
 *    any, are ignored), so memory stays bounded by that limit plus one batch.
 *
 * Module values (and Redis 8.8 arrays) are written with RESTORE only: without raw bytes such a key is reported
 * (`onUntranslatable`). Functions become `FUNCTION LOAD REPLACE`, the old `lua` AUX field
 * `SCRIPT LOAD`. Keys already expired at `now()` are skipped and counted unless
 * `includeExpired`. With `replace`, each collection key starts with `DEL key` (strings are
 * overwritten by SET anyway) and RESTORE gets REPLACE.
 */
import { buildDumpPayload } from '../rdb/dump.js';
import { KeyStartRecord, StringRecord } from '../rdb/records.js';
import type { KeyHeader, RdbRecord } from '../rdb/types.js';
import { encodedLength } from '../resp/encode.js';
import { ExitCode, ReplicantError, printableKey } from '../errors.js';
import { CommandBatcher } from './batch.js';
import { formatScore } from './format.js';
import { KeyState, RestoreHold, TransientScratch } from './translator-state.js';
import { TranslatorSettings, type TranslateOptions, type TranslateStats } from './options.js';
import { StreamRebuilder } from './redis-stream.js';
import type { Command } from './command.js';

export type { Command } from './command.js';
export { formatScore, parseTargetVersion } from './format.js';

/**
 * Where `push` appends its commands: an array, or any object with a `push` (the snapshot
 * applier encodes them as they come, with no intermediate array).
 */
/** The placeholder last byte that makes the target allocate a big string once (overwritten by the last piece). */
const ZERO_BYTE = Buffer.alloc(1);

export interface CommandSink {
  push(cmd: Command): unknown;
  /**
   * Optional, with transientCommands: a plain `SET key value` given as the decoder's records,
   * whose bytes are ranges of the RDB (key.keySrc, value.src), for a sink that encodes them
   * straight from there. Both stay valid after the push (the decoder never rewrites its bytes).
   */
  setRange?(key: KeyStartRecord, value: StringRecord): unknown;
}

/** A key that cannot be expressed as commands (and has no raw bytes for RESTORE). */
export class UntranslatableKeyError extends ReplicantError {
  readonly key: Buffer;
  constructor(message: string, key: Buffer) {
    super('UNTRANSLATABLE', `${message} (key ${JSON.stringify(printableKey(key))})`, ExitCode.DATA);
    this.key = key;
  }
}

export class Translator {
  readonly stats: TranslateStats = {
    keys: 0, restoredKeys: 0, commandKeys: 0, emptyKeys: 0, expiredSkipped: 0, corruptSkipped: 0,
    untranslatable: 0, expiredFieldsSkipped: 0, functions: 0, scripts: 0, issues: 0,
  };

  private readonly opts: TranslatorSettings;
  /** RDB version written into DUMP payloads: the option, else the header record's. */
  private payloadVersion: number | null;
  private readonly scratch: TransientScratch | null;

  private currentDb = -1;
  private out: CommandSink = [];

  private readonly key = new KeyState();
  private readonly hold = new RestoreHold();
  private readonly batch: CommandBatcher;

  constructor(opts: TranslateOptions = {}) {
    const o = new TranslatorSettings(opts);
    this.opts = o;
    this.payloadVersion = opts.payloadVersion ?? null;
    this.scratch = o.transient ? new TransientScratch() : null;
    this.batch = new CommandBatcher(o.batchElements, o.batchBytes, (c) => this.data(c));
  }

  /** The db of the last SELECT emitted, -1 before the first. */
  get selectedDb(): number {
    return this.currentDb;
  }

  /** Translate one record; appends the commands it produces to `out` and returns `out`. */
  push(rec: RdbRecord): Command[];
  push<S extends CommandSink>(rec: RdbRecord, out: S): S;
  push(rec: RdbRecord, out: CommandSink = []): CommandSink {
    this.translate(rec, out);
    return out;
  }

  private translate(rec: RdbRecord, out: CommandSink): void {
    this.out = out;
    switch (rec.kind) {
      case 'header':
        if (this.payloadVersion === null) this.payloadVersion = rec.version;
        break;
      case 'aux':
        if (rec.key.equals(LUA)) {
          out.push(['SCRIPT', 'LOAD', rec.value]);
          this.stats.scripts++;
        }
        break;
      case 'function':
        if (this.opts.target >= 700) {
          out.push(['FUNCTION', 'LOAD', 'REPLACE', rec.code]);
          this.stats.functions++;
        } else {
          this.issue(null, null, 'a function library needs a 7.0+ target: not loaded');
        }
        break;
      case 'keyStart':
        this.startKey(rec);
        break;
      case 'keyEnd':
        this.endKey(rec);
        break;
      case 'keySkipped':
        this.skipKey(rec.error);
        break;
      default:
        if (this.key.header === null || this.key.skipping) break;
        if (this.hold.holding) this.holdRecord(rec);
        else this.value(rec);
    }
  }

  /**
   * Restore/auto mode: keep the key's records (not commands: translating a key that RESTORE
   * will write is wasted work) until keyEnd says whether raw bytes exist. Past the buffer
   * limit the key is translated from here on.
   */
  private holdRecord(rec: RdbRecord): void {
    const records = this.hold.records;
    records.push(rec);
    if (records.bytes > this.opts.restoreBufferBytes) this.release();
  }

  /** Translate the held records now, and the rest of the key as it comes. */
  private release(): void {
    const held = this.hold.records.take();
    this.hold.holding = false;
    this.spill();
    for (const r of held) this.value(r);
  }

  private startKey(h: KeyHeader): void {
    const o = this.opts;
    const k = this.key;
    k.start(h);
    this.hold.start(o.mode === 'restore' || (o.mode === 'auto' && h.type !== 'string'));
    this.batch.reset(h);
    if (!o.includeExpired && h.expireMs !== null && h.expireMs <= o.now()) {
      k.skipping = true;
      this.stats.expiredSkipped++;
      return;
    }
    if (o.emitSelect && h.db !== this.currentDb) {
      this.out.push(['SELECT', h.db]);
      this.currentDb = h.db;
    }
    if (h.type === 'stream') {
      if (o.target < 500) this.untranslatable('streams need a 5.0+ target');
      else k.stream = new StreamRebuilder(h.key, (c) => this.data(c), { targetVersion: o.target, issue: (m) => this.issue(h.db, h.key, m) });
    }
    if (o.replace && h.type !== 'string' && h.type !== 'module' && h.type !== 'array' && !k.skipping) this.emit(['DEL', h.key]);
  }

  private value(rec: RdbRecord): void {
    const h = this.key.header!;
    switch (rec.kind) {
      case 'string':
        if (rec instanceof StringRecord && h instanceof KeyStartRecord && this.setRange(h, rec)) break;
        this.writeString(h, rec.value);
        break;
      case 'stringPart':
        this.stringPart(h, rec.value, rec.offset, rec.total);
        break;
      case 'listItems':
        for (const item of rec.items) this.batch.add('RPUSH', item, null);
        break;
      case 'setItems':
        for (const item of rec.items) this.batch.add('SADD', item, null);
        break;
      case 'zsetItems':
        for (const z of rec.items) this.batch.add('ZADD', formatScore(z.score), z.member);
        break;
      case 'hashItems':
        for (const it of rec.items) {
          if (it.expireMs !== null) {
            if (it.expireMs <= this.opts.now() && !this.opts.includeExpired) {
              this.stats.expiredFieldsSkipped++;
              continue;
            }
            // Queued before the HSET so the flush that sends the field sends its TTL right after.
            if (this.opts.target >= 704) this.batch.fieldTtl(it.field, it.expireMs);
            else this.key.droppedFieldTtls++;
            this.batch.add('HSET', it.field, it.value);
          } else {
            this.batch.add('HSET', it.field, it.value);
          }
        }
        break;
      case 'streamEntries':
        this.key.stream?.entries(rec.entries);
        break;
      case 'streamMeta':
        this.key.stream?.meta(rec.meta);
        break;
      case 'streamGroup':
        this.key.stream?.startGroup(rec.group);
        break;
      case 'streamPel':
        this.key.stream?.pel(rec.entries);
        break;
      case 'streamConsumer':
        this.key.stream?.consumer(rec.consumer);
        break;
      case 'module':
        this.key.moduleName = rec.moduleName; // only RESTORE can write it; decided at keyEnd
        break;
      default:
        break; // top-level records (selectDb, resizeDb, ...) carry nothing to write
    }
  }

  private writeString(h: KeyHeader, value: Buffer): void {
    const batchBytes = this.opts.batchBytes;
    if (value.length <= batchBytes) {
      if (h.expireMs !== null && this.opts.target >= 602) {
        this.data(['SET', h.key, value, 'PXAT', h.expireMs]);
        this.key.expirySet = true;
      } else if (this.scratch !== null && !this.hold.buffering) {
        // Goes straight to `out`, which is done with the previous one (never into the hold).
        this.data(this.scratch.set(h.key, value));
      } else {
        this.data(['SET', h.key, value]);
      }
      return;
    }
    for (let o = 0; o < value.length; o += batchBytes) this.bigStringPiece(h.key, value.subarray(o, Math.min(value.length, o + batchBytes)), o, value.length);
  }

  /**
   * One piece of a string longer than batchBytes, at `offset` of its `total` bytes. The first is a
   * SET (it replaces whatever was there), followed by a SETRANGE of a zero byte at the last offset:
   * the target then makes room for the whole value once. Every later piece is a SETRANGE at its
   * offset, the last one writing the real last byte. (APPENDs made the target grow the value piece
   * by piece, copying it each time: 4 s of target time for 512 MB, against 1.2 s this way.)
   */
  private bigStringPiece(key: Buffer, piece: Buffer, offset: number, total: number): void {
    if (offset === 0) {
      this.data(['SET', key, piece]);
      this.data(['SETRANGE', key, total - 1, ZERO_BYTE]);
    } else {
      this.data(['SETRANGE', key, offset, piece]);
    }
  }

  /**
   * A piece of a long string (decoder `stringPart`): the same commands writeString() makes of
   * the whole value (one SET if it fits in batchBytes, else SET + SETRANGEs of batchBytes each),
   * with at most one command's bytes held here.
   */
  private stringPart(h: KeyHeader, piece: Buffer, offset: number, total: number): void {
    const size = this.opts.batchBytes;
    const k = this.key;
    let from = 0;
    while (from < piece.length) {
      const at = offset + from;
      const cmdStart = at - (at % size);
      const cmdEnd = Math.min(cmdStart + size, total);
      const take = Math.min(piece.length - from, cmdEnd - at);
      let bytes: Buffer | null = null;
      if (at === cmdStart && at + take === cmdEnd) {
        bytes = piece.subarray(from, from + take); // the piece holds the whole command: no copy
      } else {
        if (at === cmdStart) k.partial = Buffer.allocUnsafe(cmdEnd - cmdStart);
        piece.copy(k.partial!, at - cmdStart, from, from + take);
        if (at + take === cmdEnd) {
          bytes = k.partial;
          k.partial = null;
        }
      }
      from += take;
      if (bytes === null) continue;
      if (total <= size) this.writeString(h, bytes);
      else this.bigStringPiece(h.key, bytes, cmdStart, total);
    }
  }

  /**
   * A whole plain string key (the decoder's keyStart and string records, no expiry, in the db
   * already selected) written as one setRange without the per-record steps: the most common key
   * of a snapshot, at a fraction of the cost. Returns false, having done nothing, when the key
   * needs anything else; the caller then pushes its records as usual. The key's keyEnd record
   * is not needed (a string key's raw bytes serve RESTORE only, which this path never writes).
   */
  plainString(h: KeyStartRecord, v: StringRecord, out: CommandSink): boolean {
    const o = this.opts;
    if (h.rdbType !== 0 || o.mode === 'restore' || this.key.header !== null || (o.emitSelect && h.db !== this.currentDb)) return false;
    if (!this.takesRange(h, v, out)) return false;
    out.setRange!(h, v);
    this.stats.keys++;
    this.stats.commandKeys++;
    return true;
  }

  /**
   * A plain `SET key value` straight from the RDB bytes (no Buffer made of either), when the
   * sink takes one (see CommandSink.setRange): false when this key needs anything else.
   */
  private setRange(h: KeyStartRecord, rec: StringRecord): boolean {
    const out = this.out;
    if (this.hold.buffering || !this.takesRange(h, rec, out)) return false;
    out.setRange!(h, rec);
    this.key.wroteData = true;
    this.key.emittedToOut = true;
    return true;
  }

  /** Whether `out` may take this string as a `SET` range: it takes ranges, no TTL, one command's worth of bytes. */
  private takesRange(h: KeyStartRecord, rec: StringRecord, out: CommandSink): boolean {
    return out.setRange !== undefined && this.scratch !== null && h.expireMs === null && rec.len <= this.opts.batchBytes;
  }

  /** keyEnd: `raw` is read only when a RESTORE may use it (a string key's is made on demand). */
  private endKey(rec: Extract<RdbRecord, { kind: 'keyEnd' }>): void {
    const k = this.key;
    const h = k.header;
    if (h === null) return;
    try {
      if (!k.skipping) this.finishKey(h, rec);
    } finally {
      k.header = null;
      k.stream = null;
      this.hold.drop();
    }
  }

  private finishKey(h: KeyHeader, end: Extract<RdbRecord, { kind: 'keyEnd' }>): void {
    const k = this.key;
    if (h.type === 'module' || h.type === 'array') {
      const raw = end.raw;
      // No command rebuilds a module value; arrays (Redis 8.8) are written by RESTORE only too.
      const what = h.type === 'module' ? `module value (${k.moduleName || `type ${h.rdbType}`})` : 'array value (type 28)';
      if (raw !== null) this.restore(h, raw);
      else this.untranslatable(`${what} can only be written with RESTORE, and its raw bytes were not captured`);
      return;
    }
    const raw = this.hold.buffering ? end.raw : null;
    if (raw !== null) {
      this.hold.drop();
      this.restore(h, raw);
      return;
    }
    if (this.hold.holding) this.release();
    this.batch.flush();
    k.stream?.finish();
    if (k.droppedFieldTtls > 0) {
      this.issue(h.db, h.key, `${k.droppedFieldTtls} hash field TTLs need a 7.4+ target (HPEXPIREAT): fields written without TTL`);
    }
    if (k.wroteData && h.expireMs !== null && !k.expirySet) this.data(['PEXPIREAT', h.key, h.expireMs]);
    if (this.hold.buffering) this.spill();
    if (k.wroteData) {
      this.stats.keys++;
      this.stats.commandKeys++;
    } else {
      this.stats.emptyKeys++;
    }
  }

  private restore(h: KeyHeader, raw: Buffer): void {
    const version = this.payloadVersion;
    if (version === null) throw new Error('RESTORE needs the RDB version: no header record seen and no payloadVersion option');
    const payload = this.scratch !== null ? this.scratch.dumpPayload(raw, version) : buildDumpPayload(raw, version);
    const cmd: Command = ['RESTORE', h.key, h.expireMs ?? 0, payload, 'ABSTTL'];
    if (this.opts.replace) cmd.push('REPLACE');
    if (h.lruIdle !== null) cmd.push('IDLETIME', h.lruIdle);
    else if (h.lfuFreq !== null) cmd.push('FREQ', h.lfuFreq);
    this.out.push(cmd);
    this.stats.keys++;
    this.stats.restoredKeys++;
  }

  private skipKey(error: Error): void {
    const k = this.key;
    const h = k.header;
    if (h === null) return;
    k.header = null;
    this.hold.drop();
    if (k.skipping) return;
    // Commands already sent built part of the key: remove it rather than leave half a value.
    if (k.emittedToOut) this.out.push(['DEL', h.key]);
    this.stats.corruptSkipped++;
    this.issue(h.db, h.key, `corrupt value skipped: ${error.message}`, true);
  }

  private untranslatable(message: string): void {
    const k = this.key;
    const h = k.header;
    if (h === null) return;
    k.skipping = true;
    if (this.opts.failUntranslatable) throw new UntranslatableKeyError(`${message} at byte ${h.offset}`, h.key);
    this.stats.untranslatable++;
    this.issue(h.db, h.key, message, true);
  }

  /** A command that writes part of the value. */
  private data(cmd: Command): void {
    this.key.wroteData = true;
    this.emit(cmd);
  }

  private emit(cmd: Command): void {
    const hold = this.hold;
    if (!hold.buffering) {
      this.out.push(cmd);
      this.key.emittedToOut = true;
      return;
    }
    hold.commands.push(cmd);
    hold.commandBytes += encodedLength(cmd);
    if (hold.commandBytes > this.opts.restoreBufferBytes) this.spill();
  }

  /** Restore mode gives up on RESTORE for this key: send what was buffered, stream the rest. */
  private spill(): void {
    const hold = this.hold;
    for (const c of hold.commands) this.out.push(c);
    if (hold.commands.length > 0) {
      this.key.emittedToOut = true;
      hold.commands = [];
    }
    hold.buffering = false;
  }

  private issue(db: number | null, key: Buffer | null, message: string, lost = false): void {
    this.stats.issues++;
    this.opts.onIssue?.(lost ? { db, key, message, lost } : { db, key, message });
  }
}

const LUA = Buffer.from('lua');
