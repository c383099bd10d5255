/**
 * The commands a target runs, from its `COMMAND` reply: name -> arity (and subcommand arities).
 * A renamed or disabled command (rename-command) is absent from the reply. Used to catch, before
 * a command enters a MULTI, what the target would reject at queue time anyway (unknown command,
 * wrong number of arguments): such a rejection aborts the whole transaction (-EXECABORT).
 */

/** Why the target would refuse a command at queue time, or null when it would accept it. */
export type Refusal = { kind: 'unknown' } | { kind: 'arity'; arity: number; name: string } | null;

/** Where a command's keys are (COMMAND's first key, last key, step; `movable`: only the command knows). */
export interface KeyPositions {
  first: number;
  /** Negative: counted from the end (-1 = the last argument). */
  last: number;
  step: number;
  movable: boolean;
}

interface Entry {
  arity: number;
  keys: KeyPositions;
  /** Subcommand (lower case, e.g. "create" for XGROUP CREATE) -> arity, for container commands. */
  subs: Map<string, number> | null;
}

export class CommandTable {
  private constructor(private readonly entries: Map<string, Entry>) {}

  /** Builds the table from a `COMMAND` reply; null when the reply is not one (then nothing is checked). */
  static parse(reply: unknown): CommandTable | null {
    if (!Array.isArray(reply) || reply.length === 0) return null;
    const entries = new Map<string, Entry>();
    for (const e of reply) {
      if (!Array.isArray(e) || typeof e[1] !== 'number') continue;
      const name = String(e[0]).toLowerCase();
      let subs: Map<string, number> | null = null;
      // Redis 7+: element 9 lists the subcommands, named "parent|sub".
      if (Array.isArray(e[9]) && e[9].length > 0) {
        subs = new Map();
        for (const s of e[9] as unknown[]) {
          if (!Array.isArray(s) || typeof s[1] !== 'number') continue;
          const full = String(s[0]).toLowerCase();
          subs.set(full.slice(full.indexOf('|') + 1), s[1]);
        }
      }
      const flags = Array.isArray(e[2]) ? (e[2] as unknown[]).map(String) : [];
      const num = (v: unknown) => (typeof v === 'number' ? v : 0);
      const keys = { first: num(e[3]), last: num(e[4]), step: num(e[5]), movable: flags.includes('movablekeys') };
      entries.set(name, { arity: e[1], keys, subs });
    }
    return entries.size > 0 ? new CommandTable(entries) : null;
  }

  get size(): number {
    return this.entries.size;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Key positions of `name` (lower case), or undefined for a command the target does not know. */
  keyPositions(name: string): KeyPositions | undefined {
    return this.entries.get(name)?.keys;
  }

  remove(name: string): void {
    this.entries.delete(name);
  }

  /**
   * What the target would say to `name` (lower case) with `argc` arguments (the name included).
   * `cmd` gives the arguments: only container commands (XGROUP, FUNCTION...) read their
   * subcommand from it, so the common case costs one Map lookup.
   */
  check(name: string, argc: number, cmd: { arg(i: number): Buffer | undefined }): Refusal {
    const e = this.entries.get(name);
    if (e === undefined) return UNKNOWN;
    if (!fits(e.arity, argc)) return { kind: 'arity', arity: e.arity, name };
    if (e.subs === null) return null;
    const s = cmd.arg(1)?.toString('latin1').toLowerCase();
    if (s === undefined) return null;
    const arity = e.subs.get(s);
    // An unknown subcommand is refused at queue time too, but Redis versions disagree on which
    // container commands reject it there: let the target say so.
    if (arity === undefined || fits(arity, argc)) return null;
    return { kind: 'arity', arity, name: `${name} ${s}` };
  }
}

const UNKNOWN: Refusal = { kind: 'unknown' };

/** Redis's arity rule: N > 0 exactly N arguments, -N at least N. */
function fits(arity: number, argc: number): boolean {
  return arity >= 0 ? argc === arity : argc >= -arity;
}

/** "3", "at least 2": the argument count an arity asks for. */
export function arityText(arity: number): string {
  return arity >= 0 ? `exactly ${arity}` : `at least ${-arity}`;
}

/**
 * Fetches the table over `call` (a writer's); null when COMMAND is not allowed or not understood.
 * COMMAND lists a renamed command under its original name, but COMMAND INFO looks names up as
 * clients call them: a name it answers with nil is renamed or disabled, so it leaves the table.
 */
export async function fetchCommandTable(call: (args: string[]) => Promise<unknown>): Promise<CommandTable | null> {
  let table: CommandTable | null;
  try {
    table = CommandTable.parse(await call(['COMMAND']));
  } catch {
    return null;
  }
  if (table === null) return null;
  const names = table.names();
  try {
    const info = await call(['COMMAND', 'INFO', ...names]);
    if (Array.isArray(info) && info.length === names.length) names.forEach((n, i) => info[i] === null && table.remove(n));
  } catch {
    // COMMAND INFO refused: keep the names COMMAND gave (renamed commands are then not caught).
  }
  return table;
}
