/**
 * Rebuilding a stream unit the target aborted (-EXECABORT) under --on-error skip: the unit minus
 * the commands rejected at queue time, and a bounded description of commands for the log when a
 * whole unit has to be given up.
 */
import { printableKey } from '../../errors.js';
import { commandName, firstKeyIndex } from '../../commands/keys.js';
import { splitCommands } from '../../resp/request-decoder.js';

/** The commands of `payload` except those at the indexes in `drop`; null when the payload cannot be read back. */
export function withoutCommands(payload: Buffer | readonly Buffer[], drop: ReadonlySet<number>): { payload: Buffer[]; count: number } | null {
  const cmds = splitCommands(payload);
  if (cmds === undefined) return null;
  const kept: Buffer[] = [];
  for (let i = 0; i < cmds.length; i++) {
    const c = cmds[i]!;
    if (!drop.has(i)) kept.push(c.buf.subarray(c.start, c.end));
  }
  return { payload: kept.length === 0 ? [] : [Buffer.concat(kept)], count: kept.length };
}

/** Name and printable first key of the first `limit` commands of `payload` (the first `skipFirst` and last `skipLast` left out). */
export function describeCommands(payload: Buffer | readonly Buffer[], limit: number, skipLast = 0, skipFirst = 0): { command: string; key?: string }[] {
  const cmds = splitCommands(payload) ?? [];
  const out: { command: string; key?: string }[] = [];
  const n = Math.max(0, cmds.length - skipLast);
  for (let i = skipFirst; i < n && out.length < limit; i++) {
    const args = cmds[i]!.args;
    const command = commandName(args);
    const k = firstKeyIndex(command, args);
    out.push(k >= 0 ? { command, key: printableKey(args[k]!) } : { command });
  }
  return out;
}
