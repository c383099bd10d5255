/**
 * What of each replication-stream command reaches the target: one ordered list of stages,
 * declared in `buildRelay`, each answering PASS (possibly having replaced the command or its
 * output), DROP, or CONFLICT (the command cannot be applied exactly: handed to --on-error once,
 * which stops the sync or counts it as skipped). The batcher only groups what comes out.
 *
 *   reserved key → migration guard (cluster shard) → selection (--key/--db/--type/renames/
 *   --exclude-command) → FLUSH on a shared target → db 0 of a cluster target, or a db the
 *   standalone target has → the target's COMMAND table
 */
import { TargetError, ExitCode, ReplicantError, printableKey } from '../../errors.js';
import { RESERVED_PREFIX, RESERVED_PREFIX_BYTES, isOwnKey } from '../../checkpoint/reserved.js';
import { arityText, type CommandTable } from '../../commands/table.js';
import type { Logger } from '../../observe/logger.js';
import { encodeCommand } from '../../resp/encode.js';
import { ReplicationStreamParser, type StreamCommand } from '../../resp/stream-parser.js';
import type { ErrorPolicy, Skip } from '../policy.js';
import type { ShardRole } from '../cluster/shard.js';
import { StreamFilter } from './by-name.js';
import type { PartialScope } from './selection.js';

export const PASS = 0;
export const DROP = 1;
export const CONFLICT = 2;
export type Verdict = typeof PASS | typeof DROP | typeof CONFLICT;

/** One command on its way through the stages (one object reused for every command). */
export interface Relayed {
  /** The command as the next stage sees it (the source's, or a stage's replacement). */
  cmd: StreamCommand;
  /** The source db it runs in, and the target db that maps to. */
  db: number;
  targetDb: number;
  /** What is forwarded if every stage passes. */
  out: Buffer | Buffer[];
  /** Set with CONFLICT: what stops the sync under fail, and how it is counted under skip. */
  conflict: { fail: () => Error; skip: Skip } | null;
}

export interface CommandStage {
  readonly name: string;
  apply(r: Relayed): Verdict;
}

/** The relay as the batcher uses it. */
export interface Relay {
  /** What to forward for `cmd` run in source db `db` (null: nothing). */
  forward(cmd: StreamCommand, db: number): Buffer | Buffer[] | null;
  /** What to forward for `SELECT db` (null: nothing). */
  select(cmd: StreamCommand, db: number): Buffer | null;
  targetDb(db: number): number;
}

/** forwardHead(): the command must be assembled whole and go through forward(). */
export const ASSEMBLE = 'assemble';

/** Commands whose effect does not depend on the selected db. */
const DB_AGNOSTIC = new Set(['flushall', 'function', 'script', 'publish', 'spublish']);

export class StageChain implements Relay {
  private readonly r: Relayed = { cmd: null as unknown as StreamCommand, db: 0, targetDb: 0, out: Buffer.alloc(0), conflict: null };

  constructor(
    readonly stages: readonly CommandStage[],
    private readonly policy: ErrorPolicy,
    private readonly scope: PartialScope,
    private readonly filter: StreamFilter | null,
    private readonly cluster: boolean,
  ) {}

  forward(cmd: StreamCommand, db: number): Buffer | Buffer[] | null {
    const r = this.r;
    r.cmd = cmd;
    r.db = db;
    r.targetDb = this.scope.targetDb(db);
    r.out = cmd.raw;
    r.conflict = null;
    const stages = this.stages;
    for (let i = 0; i < stages.length; i++) {
      const v = stages[i]!.apply(r);
      if (v === PASS) continue;
      if (v === CONFLICT) this.policy.dropCommands(r.conflict!.fail, r.conflict!.skip);
      return null;
    }
    return r.out;
  }

  /**
   * For the head of a command with a big argument (StreamCommand.body): its bytes when the command
   * goes to the target unchanged (its body then streams through), null when nothing of it does,
   * or ASSEMBLE when a stage may rewrite it (or a cluster target must route it whole).
   */
  forwardHead(cmd: StreamCommand, db: number): Buffer | null | typeof ASSEMBLE {
    if (this.cluster || this.stages.some((s) => s instanceof ShardStage) || (this.filter !== null && !this.filter.decidesOnKey(cmd))) return ASSEMBLE;
    const out = this.forward(cmd, db);
    return out === null || out === cmd.raw ? out : ASSEMBLE;
  }

  select(cmd: StreamCommand, db: number): Buffer | null {
    if (this.cluster) return null;
    // A db the target lacks: its commands are dropped (targetDbStage); the connection goes to db 0
    // (connectionDb), where the checkpoint commands expect it, rather than staying where it was.
    if (!this.scope.targetHas(db)) return encodeCommand(['SELECT', this.scope.connectionDb(db)]);
    return this.filter === null ? cmd.raw : this.filter.select(cmd, db);
  }

  targetDb(db: number): number {
    return this.scope.targetDb(db);
  }
}

export interface RelaySetup {
  log: Logger;
  policy: ErrorPolicy;
  scope: PartialScope;
  shard: ShardRole | null;
  cluster: boolean;
  targetLabel: string;
  sourceLabel: string;
  commandTable: () => CommandTable | null;
  /** Other syncs writing to the target now (a source FLUSH must not delete their keys). */
  otherSyncs: () => string[];
}

/** The stages, in order; the ones that cannot apply to this sync are left out. */
export function buildRelay(s: RelaySetup): { chain: StageChain; shardStage: ShardStage | null } {
  const stages: CommandStage[] = [reservedStage(s.log, s.policy)];
  const shardStage = s.shard === null ? null : new ShardStage(s.shard);
  if (shardStage !== null) stages.push(shardStage);
  let filter: StreamFilter | null = null;
  if (!s.scope.identity) {
    const excluded = new Map<string, number>();
    let conflict: Relayed['conflict'] = null;
    filter = new StreamFilter(s.scope, {
      onConflict: (cmd, db, reason) => (conflict = filterConflict(cmd, db, reason)),
      onExcluded: (cmd) => {
        const n = (excluded.get(cmd.name) ?? 0) + 1;
        excluded.set(cmd.name, n);
        if (n === 1) s.log.info({ command: cmd.name.toUpperCase(), offset: cmd.offset }, 'source command not relayed (--exclude-command; further ones not logged)');
      },
      keyPositions: (name) => s.commandTable()?.keyPositions(name),
    });
    const f = filter;
    stages.push({
      name: 'selection',
      apply(r) {
        conflict = null;
        const out = f.apply(r.cmd, r.db);
        if (conflict !== null) {
          r.conflict = conflict;
          return CONFLICT;
        }
        if (out === null) return DROP;
        r.out = out;
        return PASS;
      },
    });
  }
  stages.push(flushStage(s));
  if (s.cluster) stages.push(clusterDbStage());
  else stages.push(targetDbStage(s));
  stages.push(admissionStage(s));
  return { chain: new StageChain(stages, s.policy, s.scope, filter, s.cluster), shardStage };
}

/**
 * Keys of Replicant's namespace are never copied. A chained source (itself the target of another
 * sync) writes its own checkpoint with every batch: left out. A command on user data under the
 * prefix is left out too, but counted as skipped (whatever --on-error says): the copy is short.
 */
function reservedStage(log: Logger, policy: ErrorPolicy): CommandStage {
  let seen = 0;
  return {
    name: 'reserved',
    apply(r) {
      // Reads the key's bytes in place (no view, no args array): this runs on every command.
      if (!r.cmd.argStartsWith(1, RESERVED_PREFIX_BYTES)) return PASS;
      const key = r.cmd.args[1]!;
      if (isOwnKey(key)) {
        if (seen++ === 0) log.warn({ command: r.cmd.name, key: printableKey(key) }, "the source writes Replicant's own keys (it is itself the target of another Replicant sync): such commands are never copied (logged once)");
        return DROP;
      }
      policy.skipped({ fields: { command: r.cmd.name.toUpperCase(), key: printableKey(key), db: r.db, offset: r.cmd.offset }, msg: `source command on a key in Replicant's reserved namespace "${RESERVED_PREFIX}": never copied (the copy is incomplete)` });
      return DROP;
    },
  };
}

/**
 * A cluster shard's command: a flush already done as the deletion of the shard's keys is
 * dropped; the rest goes through the migration guard: itself, rewritten, or dropped.
 */
export class ShardStage implements CommandStage {
  readonly name = 'migration-guard';
  /** Offset of the last source flush done as the deletion of the shard's keys (its command is then dropped). */
  flushCleared = -1;

  constructor(private readonly shard: ShardRole) {}

  /** The shard's stream starts at `offset` / ended (the guard's order of RESTOREs follows each shard's lane). */
  begin(offset: number): void {
    this.shard.guard.order.begin(this.shard.source.key, offset);
  }

  end(): void {
    this.shard.guard.order.end(this.shard.source.key);
  }

  /**
   * Whether `cmd` is a RESTORE-ASKING that must reach the target after what other shards have
   * sent and not applied yet: the session then starts a unit with it and awaits `ordered()`
   * before submitting that unit (restore-order.ts).
   */
  mustOrder(cmd: StreamCommand): boolean {
    return cmd.name === 'restore-asking' && this.shard.guard.order.mustWait(this.shard.source.key);
  }

  ordered(): Promise<void> {
    return this.shard.guard.order.wait(this.shard.source.key);
  }

  apply(r: Relayed): Verdict {
    const cmd = r.cmd;
    if (cmd.offset === this.flushCleared) return DROP;
    const out = this.shard.guard.apply(cmd, this.shard.source.key);
    if (out === null) return DROP;
    if (out === cmd.raw) return PASS;
    // A parser ending at the command's offset gives the rewritten command the same offset.
    const again = new ReplicationStreamParser(Math.max(0, cmd.offset - out.length)).push(out)[0];
    if (again === undefined) return DROP;
    r.cmd = again;
    r.out = again.raw;
    return PASS;
  }
}

/** A command the selection cannot reduce exactly (see by-name.ts). */
function filterConflict(cmd: StreamCommand, db: number, reason: string): NonNullable<Relayed['conflict']> {
  const name = cmd.name.toUpperCase();
  const what = `source command ${name} in db ${db} at offset ${cmd.offset}`;
  return {
    fail: () => new ReplicantError('FILTER', `${what} cannot be applied exactly to the partial sync's keys: ${reason}; use --on-error skip to skip such commands (counted), or widen the filters`, ExitCode.DATA),
    skip: { fields: { command: name, db, offset: cmd.offset, reason }, msg: 'source command that the partial sync cannot apply exactly: skipped (--on-error skip)' },
  };
}

/**
 * A source FLUSHALL/FLUSHDB where relaying it would delete keys that are not this source's: a
 * target shared with other syncs, or (a cluster shard) inside a transaction, where it cannot be
 * turned into the deletion of the shard's own keys. The source's keys it deleted stay.
 */
function flushStage(s: RelaySetup): CommandStage {
  return {
    name: 'shared-flush',
    apply(r) {
      const cmd = r.cmd;
      if (cmd.name !== 'flushall' && cmd.name !== 'flushdb') return PASS;
      const name = cmd.name.toUpperCase();
      if (s.shard !== null) {
        const what = `source ${name} at offset ${cmd.offset} of ${s.sourceLabel}`;
        r.conflict = {
          fail: () => new TargetError(`${what}: inside a transaction, relaying it would delete the keys of the other shards on the target (use --on-error skip to drop it, then delete the keys on the target yourself)`),
          skip: { fields: { command: cmd.name, db: r.targetDb, offset: cmd.offset }, msg: `${what} not relayed: it would delete the other shards' keys; this shard's keys it deleted stay on the target (--on-error skip)` },
        };
        return CONFLICT;
      }
      const others = s.otherSyncs();
      if (others.length === 0) return PASS;
      const what = `source ${name}${cmd.name === 'flushdb' ? ` in db ${r.targetDb}` : ''} at offset ${cmd.offset}`;
      const list = others.join(', ');
      r.conflict = {
        fail: () => new TargetError(`${what}: the target is shared with other syncs (${list}); relaying it would delete their keys (use --on-error skip to drop it and keep them)`),
        skip: { fields: { command: cmd.name, db: r.targetDb, offset: cmd.offset, otherSyncs: list }, msg: `${what} not relayed: the target is shared with other syncs; this source's keys it deleted stay on the target (--on-error skip)` },
      };
      return CONFLICT;
    },
  };
}

/** A command in a db other than 0, which a cluster target does not have. */
function clusterDbStage(): CommandStage {
  return {
    name: 'cluster-db0',
    apply(r) {
      if (r.targetDb === 0 || DB_AGNOSTIC.has(r.cmd.name)) return PASS;
      const k = r.cmd.argCount > 1 ? r.cmd.arg(1) : undefined;
      const what = `${r.cmd.name.toUpperCase()} ${k ? `key "${printableKey(k)}" ` : ''}in db ${r.targetDb}`;
      r.conflict = {
        fail: () => new TargetError(`source ${what}: a cluster target has only db 0 (use --on-error skip to leave other dbs out)`),
        skip: { fields: { db: r.targetDb, offset: r.cmd.offset }, msg: `skipped source ${what}: a cluster target has only db 0` },
      };
      return CONFLICT;
    },
  };
}

/** A command in a source db whose target db the standalone target does not have (--databases there is smaller). */
function targetDbStage(s: RelaySetup): CommandStage {
  return {
    name: 'target-dbs',
    apply(r) {
      if (s.scope.targetHas(r.db) || DB_AGNOSTIC.has(r.cmd.name)) return PASS;
      const k = r.cmd.argCount > 1 ? r.cmd.arg(1) : undefined;
      const what = `source ${r.cmd.name.toUpperCase()} ${k ? `key "${printableKey(k)}" ` : ''}in db ${r.db} at offset ${r.cmd.offset}`;
      const lacks = `the target ${s.targetLabel} has ${s.scope.targetDatabasesText}, no db ${r.targetDb}`;
      r.conflict = {
        fail: () => new TargetError(`${what}: ${lacks}; raise \`databases\` in the target's configuration (a restart), map the db with --db-map, leave it out with --db, or use --on-error skip to leave its commands out (counted)`),
        skip: { fields: { db: r.db, targetDb: r.targetDb, offset: r.cmd.offset }, msg: `skipped ${what}: ${lacks} (--on-error skip)` },
      };
      return CONFLICT;
    },
  };
}

/**
 * Whether the target can run the command, by its COMMAND table: one it does not know (renamed,
 * disabled, from a module it lacks) or with a wrong number of arguments would be refused while
 * queuing and abort the whole unit.
 */
function admissionStage(s: RelaySetup): CommandStage {
  return {
    name: 'target-commands',
    apply(r) {
      const table = s.commandTable();
      if (table === null) return PASS;
      const cmd = r.cmd;
      const refusal = table.check(cmd.name, cmd.argCount, cmd);
      if (refusal === null) return PASS;
      const name = cmd.name.toUpperCase();
      const k = cmd.argCount > 1 ? cmd.arg(1) : undefined;
      const key = k === undefined ? undefined : printableKey(k);
      const why =
        refusal.kind === 'unknown'
          ? `the target does not know ${name} (renamed or disabled there, or from a module it lacks)`
          : `the target's ${refusal.name.toUpperCase()} takes ${arityText(refusal.arity)} arguments, the source sent ${cmd.argCount}`;
      const what = `source command ${name}${key === undefined ? '' : ` (key ${JSON.stringify(key)})`} at offset ${cmd.offset}`;
      r.conflict = {
        fail: () => new TargetError(`target ${s.targetLabel} cannot run ${what}: ${why}; make the command available on the target, or use --on-error skip to leave such commands out`),
        skip: { fields: { command: name, key, offset: cmd.offset, reason: why }, msg: 'source command the target cannot run: skipped (--on-error skip)' },
      };
      return CONFLICT;
    },
  };
}
