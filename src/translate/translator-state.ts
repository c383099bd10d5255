/**
 * The translator's state, one piece per concern: the key being translated, what restore mode holds back until a key's end, and the scratch buffers
 * reused from key to key. Kept apart from translator.ts so each reads on its own.
 */
import { DUMP_TRAILER_BYTES, buildDumpPayload, writeDumpPayload } from '../rdb/dump.js';
import type { KeyHeader } from '../rdb/types.js';
import { HeldRecords } from './held-records.js';
import type { StreamRebuilder } from './redis-stream.js';
import type { Command } from './command.js';

const EMPTY = Buffer.alloc(0);
/** Largest reused payload buffer: bigger payloads get one of their own. */
const PAYLOAD_SCRATCH_MAX = 1024 * 1024;


/**
 * What is known about the key being translated (between its keyStart and its keyEnd or
 * keySkipped): one object reset per key rather than allocated per key.
 */
export class KeyState {
  /** The key's header; null between keys. */
  header: KeyHeader | null = null;
  /** Expired or untranslatable: its records are ignored. */
  skipping = false;
  /** Some command of the key went to `out` (a corrupt key must then be deleted). */
  emittedToOut = false;
  /** A command writing part of the value was produced (else the key is empty). */
  wroteData = false;
  /** The expiry went with the value (SET ... PXAT): no PEXPIREAT at the end. */
  expirySet = false;
  /** Hash field TTLs the target is too old for. */
  droppedFieldTtls = 0;
  /** A long string's command being filled from its pieces (see Translator.stringPart()). */
  partial: Buffer | null = null;
  stream: StreamRebuilder | null = null;
  moduleName = '';

  start(h: KeyHeader): void {
    this.header = h;
    this.skipping = false;
    this.emittedToOut = false;
    this.wroteData = false;
    this.expirySet = false;
    this.droppedFieldTtls = 0;
    this.partial = null;
    this.stream = null;
    this.moduleName = '';
  }
}

/**
 * Restore/auto mode: what is held back for the current key until keyEnd says whether its raw
 * bytes came (one RESTORE replaces it all) or not (it is sent after all). First the key's
 * records (`holding`: translating a key that RESTORE will write is wasted work), then, once
 * they were released, the commands made of them (`buffering`), up to restoreBufferBytes each.
 */
export class RestoreHold {
  /** Commands go to `commands` instead of `out`. */
  buffering = false;
  commands: Command[] = [];
  /** Encoded size of `commands`. */
  commandBytes = 0;
  /** Records go to `records` untranslated. */
  holding = false;
  readonly records = new HeldRecords();

  start(hold: boolean): void {
    this.buffering = hold;
    this.holding = hold;
    this.records.clear();
    // A fresh array only when the last key left something: no allocation per key.
    if (this.commands.length !== 0) this.commands = [];
    this.commandBytes = 0;
  }

  /** Drop everything held (the key is done, skipped, or written by RESTORE). */
  drop(): void {
    if (this.commands.length !== 0) this.commands = [];
    this.records.clear();
    this.holding = false;
  }
}

/**
 * transientCommands: a `SET key value` array and a DUMP payload buffer (grown up to
 * PAYLOAD_SCRATCH_MAX) reused from key to key instead of allocated per key, for a consumer
 * that is done with a command before the next push.
 */
export class TransientScratch {
  private readonly setCmd: Command = ['SET', EMPTY, EMPTY];
  private payload: Buffer | null = null;

  set(key: Buffer, value: Buffer): Command {
    const cmd = this.setCmd;
    cmd[1] = key;
    cmd[2] = value;
    return cmd;
  }

  dumpPayload(raw: Buffer, version: number): Buffer {
    const size = raw.length + DUMP_TRAILER_BYTES;
    if (size > PAYLOAD_SCRATCH_MAX) return buildDumpPayload(raw, version);
    let buf = this.payload;
    if (buf === null || buf.length < size) {
      buf = Buffer.allocUnsafe(Math.min(PAYLOAD_SCRATCH_MAX, Math.max(size, 2 * (buf?.length ?? 32 * 1024))));
      this.payload = buf;
    }
    return buf.subarray(0, writeDumpPayload(buf, 0, raw, version));
  }
}

