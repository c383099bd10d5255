/**
 * Typed errors. Every error that can reach the CLI is one of these, carries a
 * stable `code`, and has a message naming the input, the offset and what was expected.
 * The CLI maps `exitCode` to the process exit status (see README "Exit codes").
 */
export class ReplicantError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(code: string, message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Exit codes, documented in README.md. */
export const ExitCode = {
  OK: 0,
  /** unexpected internal error (a bug) */
  INTERNAL: 1,
  /** bad command line or configuration */
  USAGE: 2,
  /** corrupt or unsupported RDB / replication stream */
  DATA: 3,
  /** source unreachable, authentication failed, or the source refused replication */
  SOURCE: 4,
  /** target unreachable, refused a write under --on-error fail, or failed a precondition */
  TARGET: 5,
  /** local I/O failure (input file, spool, checkpoint file) */
  IO: 6,
  /**
   * a full resync was needed and could not be done safely: --on-full-resync fail, or the target
   * holds keys this sync did not write (flushing would destroy them)
   */
  RESYNC_REFUSED: 7,
  /** `replicant verify` found differences between the source and the target */
  DIFFERENT: 8,
  /**
   * the copy on the target is incomplete: stopped before the snapshot was applied (the next run
   * copies again), or keys/commands were skipped under --on-error skip
   */
  INCOMPLETE: 9,
  /** another instance of the same sync owns the target (its lease is alive) */
  LOCKED: 10,
  /**
   * `replicant cutover` gave up after pausing the source (the sync did not catch up within
   * --max-pause, the verify found differences, a server failed): the source was unpaused
   */
  CUTOVER_ABORTED: 11,
  /** `replicant plan` found something that will fail (a buffer too small, a missing permission...) */
  PLAN_PROBLEMS: 12,
} as const;

export class UsageError extends ReplicantError {
  constructor(message: string) {
    super('USAGE', message, ExitCode.USAGE);
  }
}

/** Corrupt or unsupported RDB input. `offset` is the absolute byte offset in the RDB. */
export class RdbError extends ReplicantError {
  readonly offset: number;
  readonly key: Buffer | undefined;
  constructor(message: string, offset: number, key?: Buffer, options?: { cause?: unknown }) {
    super('RDB', `RDB: ${message} at byte ${offset}${key ? ` (key ${JSON.stringify(printableKey(key))})` : ''}`, ExitCode.DATA, options);
    this.offset = offset;
    this.key = key;
  }
}

/** Malformed replication stream or protocol violation by the source. */
export class ProtocolError extends ReplicantError {
  readonly offset: number | undefined;
  constructor(message: string, offset?: number) {
    super('PROTOCOL', offset === undefined ? `protocol: ${message}` : `protocol: ${message} at stream offset ${offset}`, ExitCode.DATA);
    this.offset = offset;
  }
}

export class SourceError extends ReplicantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SOURCE', message, ExitCode.SOURCE, options);
  }
}

export class TargetError extends ReplicantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TARGET', message, ExitCode.TARGET, options);
  }
}

/** The cutover gave up after pausing the source; the message says why and whether writes were resumed. */
export class CutoverAbortedError extends ReplicantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CUTOVER_ABORTED', message, ExitCode.CUTOVER_ABORTED, options);
  }
}

export class LocalIoError extends ReplicantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IO', message, ExitCode.IO, options);
  }
}

/** A key name for messages: text when printable, else a \xNN-escaped form, cut at `max` bytes (200). */
export function printableKey(key: Buffer, max = 200): string {
  let out = '';
  const n = Math.min(key.length, max);
  for (let i = 0; i < n; i++) {
    const c = key[i]!;
    out += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return key.length > n ? `${out}...` : out;
}
