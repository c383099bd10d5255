/**
 * Applies a PartialScope to replication-stream commands, so the target receives exactly the
 * effect each command has on the kept keys.
 *
 * The stream only carries commands that changed the source (a RENAMENX, MSETNX or MOVE that did
 * nothing is not propagated), which makes most mixed cases exact:
 * - independent keys (DEL, UNLINK, TOUCH, MSET, MSETNX) are split: the kept keys stay;
 * - data leaving the kept set becomes its effect on the kept side: RENAME kept->dropped is a DEL,
 *   SMOVE an SREM, LMOVE/RPOPLPUSH a pop, MOVE to a dropped db a DEL;
 * - a command writing a dropped key from kept ones (SUNIONSTORE into a dropped key, COPY to it)
 *   does nothing to the image and is dropped.
 * What cannot be reproduced from the kept keys alone is a conflict, handed to `onConflict`
 * (which throws under --on-error fail, or returns and the command is skipped, counted): data
 * arriving from a dropped key or db, a script or multi-key pop with keys on both sides, a script
 * that declares no keys while keys are filtered, FLUSHDB/FLUSHALL while keys are filtered by
 * name (the target may hold other keys), SWAPDB of a kept and a dropped db.
 */
import { printableKey } from '../../errors.js';
import { encodeCommand, type Arg } from '../../resp/encode.js';
import type { StreamCommand } from '../../resp/stream-parser.js';
import { commandKeys, intAt, isWord, keyIndexes, readsKeysByPattern, type TargetKeyPositions } from '../../commands/keys.js';
import type { PartialScope } from './selection.js';
import { readCommand } from '../../resp/request-decoder.js';
import { StreamTypeFilter } from './by-type.js';

/** What to forward for one command: its bytes, several commands, or nothing. */
export type FilterResult = Buffer | Buffer[] | null;

export interface StreamFilterOptions {
  /** A command that cannot be reduced exactly: throw to stop, return to skip it. */
  onConflict: (cmd: StreamCommand, db: number, reason: string) => void;
  /** A command dropped by --exclude-command. */
  onExcluded?: (cmd: StreamCommand) => void;
  /**
   * Key positions by the target's COMMAND table, for commands without special handling here
   * (module commands...): one with several keys must have them all on one side.
   */
  keyPositions?: TargetKeyPositions;
}

/** The single key at argument 1 (the common case), as a position list. */
const AT_1: readonly number[] = [1];

export class StreamFilter {
  /** The --type stage, run on what the name stage forwards (see by-type.ts). */
  private readonly types: StreamTypeFilter | null;
  /** Positions of the keys the command writes / only reads, reused: apply sees every streamed command. */
  private readonly writes: number[] = [];
  private readonly reads: number[] = [];

  constructor(
    private readonly scope: PartialScope,
    private readonly opts: StreamFilterOptions,
  ) {
    this.types = scope.types === null ? null : new StreamTypeFilter(scope.types);
  }

  targetDb(db: number): number {
    return this.scope.targetDb(db);
  }

  /**
   * What to forward for `SELECT db`: SELECT of its target db. For a dropped db (nothing in it is
   * forwarded) the connection still moves, to connectionDb: the session's checkpoint writes and
   * reconnects assume the connection is there.
   */
  select(cmd: StreamCommand, db: number): Buffer {
    const t = this.scope.connectionDb(db);
    return t === db ? cmd.raw : encodeCommand(['SELECT', t]);
  }

  /**
   * Whether apply() decides `cmd` by its name and first key alone, forwarding it unchanged or not at
   * all: then a command whose big argument streams through (its later arguments not at hand) can
   * be filtered. Renames and --type rewrite commands, and other commands have more keys.
   */
  decidesOnKey(cmd: StreamCommand): boolean {
    const s = this.scope;
    if (s.identity || s.excludedCommands.has(cmd.name)) return true;
    return this.types === null && !s.renames && commandKeys(cmd.name, this.opts.keyPositions).single;
  }

  /** What to forward for `cmd`, run by the source in db `db`. */
  apply(cmd: StreamCommand, db: number): FilterResult {
    const named = this.applyNames(cmd, db);
    return named === null || this.types === null ? named : this.applyTypes(cmd, db, named);
  }

  /** The type stage on each command the name stage forwards (already in target names). */
  private applyTypes(cmd: StreamCommand, db: number, named: Buffer | Buffer[]): FilterResult {
    // The source command itself (most of the time): its interned name and lazy arguments, no copies.
    if (named === cmd.raw) {
      const v = this.types!.apply(cmd.name, cmd);
      return v.kind === 'pass' ? named : v.kind === 'replace' ? unwrap(v.commands) : v.kind === 'conflict' ? this.conflict(cmd, db, v.reason) : null;
    }
    const out: Buffer[] = [];
    for (const b of Buffer.isBuffer(named) ? [named] : named) {
      const args: Buffer[] = [];
      readCommand(b, 0, args);
      const v = this.types!.apply(args[0]!.toString('latin1').toLowerCase(), { argCount: args.length, arg: (i) => args[i] });
      if (v.kind === 'pass') out.push(b);
      else if (v.kind === 'replace') out.push(...v.commands);
      else if (v.kind === 'conflict') return this.conflict(cmd, db, v.reason);
    }
    return out.length === 0 ? null : unwrap(out);
  }

  private applyNames(cmd: StreamCommand, db: number): FilterResult {
    const s = this.scope;
    const name = cmd.name;
    if (s.excludedCommands.has(name)) {
      this.opts.onExcluded?.(cmd);
      return null;
    }
    if (s.identity) return cmd.raw;
    switch (name) {
      case 'flushall':
        return this.flushAll(cmd, db);
      case 'swapdb':
        return this.swapDb(cmd, db);
      case 'move':
        return this.move(cmd, db);
      case 'copy':
        return this.copy(cmd, db);
      default:
        break;
    }
    if (!s.keepsDb(db)) return null;
    if (name === 'flushdb') return s.keysLeftOut ? this.conflict(cmd, db, 'FLUSHDB while keys are filtered by name or type: the target may hold keys outside the filter') : cmd.raw;
    if (!s.keyFiltered && !s.renames) return cmd.raw;
    // This filter's view of the key table: which keys the command writes and which it only reads.
    const keys = commandKeys(name, this.opts.keyPositions);
    if (keys.single) {
      // The common case (one key, first argument, no rename): no argument views, no arrays.
      if (!s.renames) {
        const k = cmd.arg(1);
        return k === undefined || s.keepsKey(k) ? cmd.raw : null;
      }
      return cmd.argCount > 1 ? this.allOrNone(cmd, db, AT_1) : cmd.raw;
    }
    if (keys.movable) return this.conflict(cmd, db, `${name.toUpperCase()} has keys at positions only the command knows (movablekeys): which of them are kept cannot be told`);
    // Keyless (a sharded channel is not a key either).
    if (keys.runs.length === 0) return cmd.raw;
    // SORT ... BY / GET read other keys through patterns (named as on the source).
    if (keys.patterns && readsKeysByPattern(cmd)) return this.conflict(cmd, db, `${name.toUpperCase()} with BY or GET reads keys through patterns: which of them are kept cannot be told`);
    // The stream only carries an MSETNX that succeeded (every key was new): it splits like MSET.
    if (keys.independent || name === 'msetnx') return this.independent(cmd, db, keys.runs[0]!.step);
    switch (name) {
      case 'rename':
      case 'renamenx':
        return this.moveOut(cmd, db, () => ['DEL', cmd.arg(1)!]);
      case 'smove':
        return this.moveOut(cmd, db, () => ['SREM', cmd.arg(1)!, cmd.arg(3)!]);
      case 'rpoplpush':
      case 'brpoplpush':
        return this.moveOut(cmd, db, () => ['RPOP', cmd.arg(1)!]);
      case 'lmove':
      case 'blmove':
        return this.moveOut(cmd, db, () => [isWord(cmd, 3, 'right') ? 'RPOP' : 'LPOP', cmd.arg(1)!]);
      default:
        break;
    }
    this.writes.length = 0;
    this.reads.length = 0;
    const writes = keyIndexes(keys, cmd, 'write', this.writes);
    const reads = keyIndexes(keys, cmd, 'read', this.reads);
    if (keys.script && writes.length + reads.length === 0) return this.conflict(cmd, db, `${name.toUpperCase()} declares no keys: which keys it writes is unknown`);
    // One key written from keys only read (SUNIONSTORE, SORT ... STORE): exact when the sources are kept.
    if (writes.length === 1) return this.store(cmd, db, writes[0]!, reads);
    // Several keys written together (a script, a multi-key pop), or only read: all on one side.
    return this.allOrNone(cmd, db, reads.length === 0 ? writes : writes.length === 0 ? reads : keyIndexes(keys, cmd));
  }

  private flushAll(cmd: StreamCommand, db: number): FilterResult {
    const s = this.scope;
    if (s.keysLeftOut) return this.conflict(cmd, db, 'FLUSHALL while keys are filtered by name or type: the target may hold keys outside the filter');
    const dbs = s.keptDbs;
    if (dbs === null) return cmd.raw;
    // Only the kept dbs (as mapped): the target's other dbs are not part of this copy.
    const out: Buffer[] = [];
    for (const d of dbs) out.push(encodeCommand(['SELECT', s.targetDb(d)]), encodeCommand(['FLUSHDB']));
    out.push(encodeCommand(['SELECT', s.connectionDb(db)]));
    return out;
  }

  private swapDb(cmd: StreamCommand, db: number): FilterResult {
    const s = this.scope;
    const a = intAt(cmd, 1, -1);
    const b = intAt(cmd, 2, -1);
    const ka = s.keepsDb(a);
    const kb = s.keepsDb(b);
    if (!ka && !kb) return null;
    if (ka !== kb) return this.conflict(cmd, db, `SWAPDB of db ${ka ? a : b} (kept) with db ${ka ? b : a} (not kept)`);
    const ta = s.targetDb(a);
    const tb = s.targetDb(b);
    return ta === a && tb === b ? cmd.raw : encodeCommand(['SWAPDB', ta, tb]);
  }

  private move(cmd: StreamCommand, db: number): FilterResult {
    const s = this.scope;
    const key = cmd.arg(1);
    const dest = intAt(cmd, 2, -1);
    if (key === undefined || !s.keepsKey(key)) return null;
    const from = s.keepsDb(db);
    const to = s.keepsDb(dest);
    if (!from && !to) return null;
    if (!from) return this.conflict(cmd, db, `MOVE from db ${db} (not kept) into db ${dest} (kept)`);
    if (s.collides(key)) return this.collision(cmd, db, key);
    if (!to) return encodeCommand(['DEL', s.rename(key)]);
    const renamed = s.rename(key);
    const t = s.targetDb(dest);
    return renamed === key && t === dest ? cmd.raw : encodeCommand(['MOVE', renamed, t]);
  }

  /** COPY src dst [DB d] [REPLACE]: only the destination changes. */
  private copy(cmd: StreamCommand, db: number): FilterResult {
    const s = this.scope;
    const args = cmd.args;
    let destDb = db;
    let dbArg = -1;
    for (let i = 3; i + 1 < args.length; i++) {
      if (isWord(cmd, i, 'db')) {
        dbArg = i + 1;
        destDb = intAt(cmd, i + 1, -1);
      }
    }
    const src = args[1];
    const dst = args[2];
    if (src === undefined || dst === undefined) return s.keepsDb(db) ? cmd.raw : null;
    if (!s.keepsDb(destDb) || !s.keepsKey(dst)) return null;
    if (!s.keepsDb(db) || !s.keepsKey(src)) return this.conflict(cmd, db, `COPY into a kept key from ${s.keepsDb(db) ? `key "${printableKey(src)}"` : `db ${db}`}, which is not kept`);
    for (const k of [src, dst]) if (s.collides(k)) return this.collision(cmd, db, k);
    if (!s.renames && (dbArg < 0 || s.targetDb(destDb) === destDb)) return cmd.raw;
    const out: Arg[] = [...args];
    out[1] = s.rename(src);
    out[2] = s.rename(dst);
    if (dbArg >= 0) out[dbArg] = s.targetDb(destDb);
    return encodeCommand(out);
  }

  /** Independent keys (every `step`-th argument from 1): keep the kept ones (with their values). */
  private independent(cmd: StreamCommand, db: number, step: number): FilterResult {
    const s = this.scope;
    const args = cmd.args;
    const out: Arg[] = [args[0]!];
    let all = true;
    for (let i = 1; i < args.length; i += step) {
      const k = args[i]!;
      if (!s.keepsKey(k)) {
        all = false;
        continue;
      }
      if (s.collides(k)) return this.collision(cmd, db, k);
      out.push(s.rename(k));
      for (let j = 1; j < step && i + j < args.length; j++) out.push(args[i + j]!);
    }
    if (out.length === 1) return null;
    return all && !s.renames ? cmd.raw : encodeCommand(out);
  }

  /** A command writing `dest` from `sources`: dropped with its destination, a conflict when it reads a dropped key. */
  private store(cmd: StreamCommand, db: number, dest: number, sources: readonly number[]): FilterResult {
    const d = cmd.arg(dest);
    if (d === undefined || !this.scope.keepsKey(d)) return null;
    const outside = sources.find((i) => !this.scope.keepsKey(cmd.arg(i)!));
    if (outside !== undefined) return this.conflict(cmd, db, `${cmd.name.toUpperCase()} writes kept key "${printableKey(d)}" from key "${printableKey(cmd.arg(outside)!)}", which is not kept`);
    return this.scope.renames ? this.renamed(cmd, db, [dest, ...sources]) : cmd.raw;
  }

  /** RENAME-like `CMD src dst ...`: kept -> dropped is `removal()` on the source key. */
  private moveOut(cmd: StreamCommand, db: number, removal: () => Arg[]): FilterResult {
    const s = this.scope;
    const src = cmd.arg(1);
    const dst = cmd.arg(2);
    if (src === undefined || dst === undefined) return cmd.raw;
    const ks = s.keepsKey(src);
    const kd = s.keepsKey(dst);
    if (!ks && !kd) return null;
    if (!ks) return this.conflict(cmd, db, `${cmd.name.toUpperCase()} brings key "${printableKey(src)}", which is not kept, into kept key "${printableKey(dst)}"`);
    if (kd) return this.renamed(cmd, db, [1, 2]);
    if (s.collides(src)) return this.collision(cmd, db, src);
    const args = removal();
    args[1] = s.rename(src);
    return encodeCommand(args);
  }

  /** Keys that must all be kept or all dropped (a script, a multi-key pop). */
  private allOrNone(cmd: StreamCommand, db: number, keys: readonly number[]): FilterResult {
    let kept = 0;
    for (const i of keys) if (this.scope.keepsKey(cmd.arg(i)!)) kept++;
    if (kept === 0 && keys.length > 0) return null;
    if (kept < keys.length) return this.conflict(cmd, db, `${cmd.name.toUpperCase()} touches kept and not kept keys (${keys.map((i) => `"${printableKey(cmd.arg(i)!)}"`).join(', ')})`);
    return this.renamed(cmd, db, keys);
  }

  /** `cmd` with the keys at `positions` renamed (its own bytes when no name changes). */
  private renamed(cmd: StreamCommand, db: number, positions: readonly number[]): FilterResult {
    const s = this.scope;
    if (!s.renames) return cmd.raw;
    let out: Arg[] | null = null;
    for (const i of positions) {
      const k = cmd.arg(i)!;
      if (s.collides(k)) return this.collision(cmd, db, k);
      const r = s.rename(k);
      if (r !== k) (out ??= [...cmd.args])[i] = r;
    }
    return out === null ? cmd.raw : encodeCommand(out);
  }

  private collision(cmd: StreamCommand, db: number, key: Buffer): null {
    return this.conflict(cmd, db, `key "${printableKey(key)}" already has the new prefix of --rename-prefix: it would collide with a renamed key`);
  }

  private conflict(cmd: StreamCommand, db: number, reason: string): null {
    this.opts.onConflict(cmd, db, reason);
    return null;
  }
}

function unwrap(commands: Buffer[]): Buffer | Buffer[] {
  return commands.length === 1 ? commands[0]! : commands;
}

