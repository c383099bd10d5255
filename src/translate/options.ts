/**
 * What a Translator is told: the options callers pass (TranslateOptions), what it reports
 * (TranslateIssue, TranslateStats), and the options resolved once (TranslatorSettings).
 */
import { parseTargetVersion } from './format.js';

const NEWEST = 9999;

export interface TranslateOptions {
  /**
   * 'commands' (default); 'restore': RESTORE whenever the key's raw bytes are known; 'auto':
   * like 'restore' except for strings, which plain SET writes faster than RESTORE.
   */
  mode?: 'commands' | 'restore' | 'auto';
  /** Overwrite existing keys: DEL before a collection's commands, REPLACE on RESTORE. Default false. */
  replace?: boolean;
  /** Write keys whose expiry is already past. Default false (they are skipped and counted). */
  includeExpired?: boolean;
  /** Clock for the expiry check, Unix ms. Default Date.now. */
  now?: () => number;
  /** Target server version, e.g. "7.0" or "6.2.14"; gates newer syntax. Default: newest. */
  targetVersion?: string;
  /** RDB version written into DUMP payloads. Default: the file's, from the header record. */
  payloadVersion?: number;
  /** Most elements per RPUSH/SADD/ZADD/HSET (pairs count as one). Default 512. */
  batchElements?: number;
  /** Most value bytes per command, and the string size above which SET + SETRANGE pieces are used. Default 1 MiB. */
  batchBytes?: number;
  /**
   * The commands `push` appends are valid only until the next `push`: plain `SET key value`
   * reuses one array, and RESTORE payloads up to 1 MiB one buffer, instead of allocating per
   * key. Only for consumers that encode each command at once (the snapshot applier). Default false.
   */
  transientCommands?: boolean;
  /** Restore mode: most bytes of commands held per key while waiting for keyEnd. Default 8 MiB. */
  restoreBufferBytes?: number;
  /** What to do with a key that cannot be written (a module value without raw bytes). Default 'fail'. */
  onUntranslatable?: 'fail' | 'skip';
  /** Emit SELECT when the db of the next key differs from the last one. Default true. */
  emitSelect?: boolean;
  /** Told about everything that is not reproduced exactly (skipped keys, unsupported features). */
  onIssue?: (issue: TranslateIssue) => void;
}

export interface TranslateIssue {
  db: number | null;
  key: Buffer | null;
  message: string;
  /** The key is not written at all (corrupt or untranslatable value), not just approximated. */
  lost?: boolean;
}

export interface TranslateStats {
  /** Keys written (with commands or RESTORE). */
  keys: number;
  restoredKeys: number;
  commandKeys: number;
  /** Collections with no elements (Redis skips them when loading; nothing is created). */
  emptyKeys: number;
  expiredSkipped: number;
  /** Keys the decoder skipped as corrupt (keySkipped records). */
  corruptSkipped: number;
  untranslatable: number;
  /** Hash fields whose TTL had already passed (not written unless includeExpired). */
  expiredFieldsSkipped: number;
  functions: number;
  scripts: number;
  issues: number;
}

/**
 * The options of a Translator, defaults applied and validated once: every option the
 * translation reads, in one place, so that the translator's own fields are only its state.
 * Immutable (the RDB version for payloads, which the header record may supply, is state).
 */
export class TranslatorSettings {
  readonly mode: 'commands' | 'restore' | 'auto';
  readonly replace: boolean;
  readonly includeExpired: boolean;
  readonly now: () => number;
  /** Target version as a number (7.0 -> 700, see parseTargetVersion). */
  readonly target: number;
  readonly batchElements: number;
  readonly batchBytes: number;
  readonly restoreBufferBytes: number;
  readonly failUntranslatable: boolean;
  readonly emitSelect: boolean;
  readonly onIssue: ((issue: TranslateIssue) => void) | undefined;
  /** transientCommands: commands are valid only until the next push (see TransientScratch). */
  readonly transient: boolean;

  constructor(opts: TranslateOptions) {
    this.mode = opts.mode ?? 'commands';
    this.replace = opts.replace ?? false;
    this.includeExpired = opts.includeExpired ?? false;
    this.now = opts.now ?? Date.now;
    this.target = opts.targetVersion === undefined ? NEWEST : parseTargetVersion(opts.targetVersion);
    this.batchElements = Math.max(1, opts.batchElements ?? 512);
    this.batchBytes = Math.max(1, opts.batchBytes ?? 1024 * 1024);
    this.restoreBufferBytes = opts.restoreBufferBytes ?? 8 * 1024 * 1024;
    this.failUntranslatable = (opts.onUntranslatable ?? 'fail') === 'fail';
    this.emitSelect = opts.emitSelect ?? true;
    this.onIssue = opts.onIssue;
    this.transient = opts.transientCommands ?? false;
  }
}
