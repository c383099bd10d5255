/** Errors specific to the target writers. Connection-level failures are plain `TargetError`s. */
import { TargetError } from '../errors.js';

export { TargetError };

export interface CommandErrorDetails {
  /** host:port of the target that replied. */
  target: string;
  /** Upper-case command name ('' when the command could not be read back from the payload). */
  command: string;
  /** The first key, printable (\xNN escapes), when the command has one. */
  key?: string;
  /** The error reply, e.g. "ERR value is not an integer or out of range". */
  reply: string;
  /** Offset of the unit the command belongs to. */
  offset?: number;
  /** Position of the command in its unit (0-based). */
  index: number;
  /** true when rejected while queued inside MULTI (the whole unit was then discarded: EXECABORT). */
  queued?: boolean;
  /** The command's arguments, read back from the payload (to name every key of an MSET, for instance). */
  args?: readonly Buffer[];
  /** The payload of the unit the command belongs to: lets the submitter tell which of its units it was. */
  payload?: Buffer | readonly Buffer[];
}

/** The target answered a command with an error reply. */
export class TargetCommandError extends TargetError {
  readonly target: string;
  readonly command: string;
  readonly key: string | undefined;
  readonly reply: string;
  readonly offset: number | undefined;
  readonly index: number;
  readonly args: readonly Buffer[] | undefined;
  readonly payload: Buffer | readonly Buffer[] | undefined;
  constructor(d: CommandErrorDetails, message?: string) {
    const what = `${d.command || '<unreadable command>'}${d.key === undefined ? '' : ` (key ${JSON.stringify(d.key)})`}`;
    const where = `command #${d.index} of the unit${d.offset === undefined ? '' : ` completing offset ${d.offset}`}`;
    super(message ?? `target ${d.target} rejected ${what}${d.queued ? ' while queuing in MULTI' : ''}, ${where}: ${d.reply}`);
    this.target = d.target;
    this.command = d.command;
    this.key = d.key;
    this.reply = d.reply;
    this.offset = d.offset;
    this.index = d.index;
    this.args = d.args;
    this.payload = d.payload;
  }
}

/** EXEC answered -EXECABORT: commands were rejected at queue time and nothing of the unit was applied. */
export class TargetExecAbortError extends TargetCommandError {
  /** Every command rejected while queuing. */
  readonly rejected: readonly TargetCommandError[];
  constructor(target: string, execReply: string, rejected: TargetCommandError[], offset: number | undefined) {
    const first = rejected[0];
    const names = rejected.map((e) => `#${e.index} ${e.command || '<unreadable>'}${e.key === undefined ? '' : ` (key ${JSON.stringify(e.key)})`}: ${e.reply}`);
    super(
      { target, command: first?.command ?? 'EXEC', ...(first?.key === undefined ? {} : { key: first.key }), reply: execReply, offset, index: first?.index ?? -1, queued: true },
      `target ${target} aborted an atomic unit${offset === undefined ? '' : ` completing offset ${offset}`} (nothing of it was applied): ${execReply}; rejected while queuing: ${names.join('; ') || 'none reported'}`,
    );
    this.rejected = rejected;
  }
}

/** The target refuses this sync's credentials (WRONGPASS, or NOAUTH: a password is required now): retrying the same ones cannot help. */
export class TargetAuthError extends TargetError {}
