/**
 * Checks the target before the source is asked for its RDB, so that a target which cannot
 * take the copy is refused with a message saying what is missing and what to do, instead of
 * an EXECABORT half-way through the transfer:
 *
 *  - a replica (or a read-only node) refuses every write: refused;
 *  - the ACL user must be allowed MULTI/EXEC, SELECT, the commands of the write mode and
 *    SET/GET/DEL on the `__replicant` keys (checkpoint); FUNCTION LOAD when the source has
 *    function libraries: refused when missing; EVAL when the source caches scripts: warned;
 *  - maxmemory below what the source uses: warned (keys may compress, expire or be evicted).
 *
 * Permissions are asked with ACL DRYRUN (Redis 7+) when the user may run it; otherwise each
 * command is tried in a harmless form on the `__replicant:preflight` key (a RESTORE of a bad
 * payload, a write of the wrong type...): only a NOPERM or unknown-command reply means denied.
 */
import { reservedKey } from '../checkpoint/reserved.js';
import { TargetError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { ServerInfo } from '../replication/server-info.js';
import { parseServerInfo } from '../replication/server-info.js';
import { endpointLabel, type SourceEndpoint } from '../replication/url.js';
import type { VerifySide } from '../verify/side.js';
import type { Arg } from '../resp/encode.js';
import { TargetCommandError } from './errors.js';

export type PreflightWriteMode = 'auto' | 'restore' | 'commands';

export interface PreflightOptions {
  target: SourceEndpoint;
  cluster: boolean;
  writeMode: PreflightWriteMode;
  /** The checkpoint is kept in the target (needs SET/GET/DEL on `__replicant` keys). */
  checkpointInTarget: boolean;
  /** The source's INFO; null when it refused INFO (the checks that need it are skipped). */
  source: ServerInfo | null;
  logger: Logger;
  /**
   * A standalone target's number of databases (when known) and the dbs the sync will write: each
   * source db holding keys that the selection keeps, with the target db it maps to.
   */
  databases?: { count: number; writes: DbWrite[] };
  /**
   * A connection already open to a standalone target (the sync's own): the checks run on it, in
   * db 0, instead of opening one (which would load ioredis: ~50 ms of the sync's set-up).
   */
  call?: (args: readonly Arg[]) => Promise<unknown>;
}

/** What the checks need of a connection to the target (db 0), as VerifySide offers it. */
export type PreflightSide = Pick<VerifySide, 'call' | 'tryCall' | 'pipeline'>;

/** A PreflightSide over one connection's `call`: a refused command is an Error carrying the server's reply. */
export function sideOverCall(call: (args: readonly Arg[]) => Promise<unknown>): PreflightSide {
  const one = (args: readonly Arg[]): Promise<unknown> =>
    call(args).catch((e: unknown) => {
      if (e instanceof TargetCommandError) return new Error(e.reply);
      throw e;
    });
  return {
    call: async (_db, args) => {
      const r = await one(args);
      if (r instanceof Error) throw r;
      return r;
    },
    tryCall: (_db, args) => one(args),
    // Written back to back on the connection: one round trip, as VerifySide's pipeline.
    pipeline: (_db, commands) => Promise.all(commands.map(one)),
  };
}

export interface DbWrite {
  source: number;
  target: number;
  keys: number;
}

/**
 * Source dbs whose target db is beyond the target's databases: a SELECT of it is refused, and
 * what follows would be written into the db selected before (exit 5 before the copy instead).
 */
export function missingTargetDbs(count: number, writes: readonly DbWrite[]): string | null {
  const beyond = writes.filter((w) => w.target >= count).sort((a, b) => a.source - b.source);
  if (beyond.length === 0) return null;
  const list = beyond.map((w) => `source db ${w.source} (${w.keys} keys) → target db ${w.target}`).join(', ');
  return (
    `it has ${count} databases (0-${count - 1}) but the sync would write ${list}: ` +
    `raise \`databases\` in the target's configuration (to at least ${Math.max(...beyond.map((w) => w.target)) + 1}; needs a restart), or map those dbs to dbs the target has with --db-map, or leave them out with --db`
  );
}

/** How much a missing command matters. */
type Need = 'required' | 'warn';

interface Probe {
  args: string[];
  need: Need;
  /** What the command is for, for the message. */
  why: string;
  /** What the user can do instead of granting it. */
  instead?: string;
}

const KEY = reservedKey('preflight');
/** Probes that cannot create the key whatever the user may do. */
const NEVER_CREATES = new Set(['RESTORE', 'FUNCTION', 'EVAL', 'GET', 'HGETALL', 'SELECT']);

/** The commands a sync with these options sends, each in a harmless form (see tryProbe). */
export function plannedProbes(o: Pick<PreflightOptions, 'cluster' | 'writeMode' | 'checkpointInTarget' | 'source'>): Probe[] {
  const probes: Probe[] = [
    { args: ['MULTI'], need: 'required', why: 'every batch is applied as one transaction' },
    { args: ['EXEC'], need: 'required', why: 'every batch is applied as one transaction' },
    { args: ['SET', KEY, '1'], need: 'required', why: 'strings and the checkpoint are written with SET' },
    { args: ['DEL', KEY], need: 'required', why: 'deletes of the source are relayed' },
  ];
  if (!o.cluster) probes.push({ args: ['SELECT', '0'], need: 'required', why: 'each source db is written to the same db number' });
  if (o.checkpointInTarget) {
    probes.push({ args: ['GET', KEY], need: 'required', why: 'the checkpoint is read back from the target', instead: '--checkpoint file:PATH' });
    probes.push({ args: ['GETSET', KEY, '1'], need: 'required', why: 'each batch replaces the checkpoint with GETSET (which detects a target that lost its data)', instead: '--checkpoint file:PATH' });
  }
  // The lease (SET NX PX, GET) and the registry of the syncs writing to this target.
  probes.push({ args: ['HSET', KEY, 'f', 'x'], need: 'required', why: 'each sync registers itself in the hash __replicant:syncs' });
  probes.push({ args: ['HGETALL', KEY], need: 'required', why: 'the syncs registered on the target are read at start' });
  if (o.writeMode !== 'commands') {
    probes.push({
      args: ['RESTORE', KEY, '0', 'not-a-dump-payload', 'REPLACE'],
      need: 'required',
      why: `--write-mode ${o.writeMode} copies non-string keys with RESTORE`,
      instead: '--write-mode commands',
    });
  }
  // Commands mode writes every type with commands; the other modes only keys above --big-key-bytes.
  const typeNeed: Need = o.writeMode === 'commands' ? 'required' : 'warn';
  const typeWhy = o.writeMode === 'commands' ? '--write-mode commands writes each type with its commands' : 'keys above --big-key-bytes are written with commands';
  for (const args of [
    ['MSET', KEY, '1'],
    ['SETRANGE', KEY, '0', '1'],
    ['PEXPIREAT', KEY, '9999999999999'],
    ['RPUSH', KEY, 'x'],
    ['SADD', KEY, 'x'],
    ['ZADD', KEY, '1', 'x'],
    ['XADD', KEY, '*', 'f', 'x'],
    ['XGROUP', 'CREATE', KEY, 'g', '$'],
    ['XSETID', KEY, '1-1'],
  ]) {
    probes.push({ args, need: typeNeed, why: typeWhy });
  }
  const libraries = o.source?.functionLibraries ?? 0;
  const scripts = o.source?.cachedScripts ?? 0;
  if (libraries > 0) {
    probes.push({ args: ['FUNCTION', 'LOAD', 'not-a-library'], need: 'required', why: `the source has ${libraries} function libraries, copied with FUNCTION LOAD` });
  }
  if (scripts > 0) {
    probes.push({ args: ['EVAL', 'return 1', '0'], need: 'warn', why: `the source has ${scripts} cached Lua scripts; a source that replicates scripts verbatim sends EVAL/EVALSHA` });
  }
  return probes;
}

function replyText(v: unknown): string {
  if (v instanceof Error) return v.message;
  return Buffer.isBuffer(v) ? v.toString() : String(v);
}

type Denial = { reason: string; grant: 'command' | 'key' | 'none' };

/** Denied (or unknown) according to a reply: null when allowed. */
function deniedBy(reply: string): Denial | null {
  if (/permissions to access .*key/i.test(reply)) return { reason: `not allowed on the key ${KEY} by the ACL`, grant: 'key' };
  if (/^NOPERM\b/.test(reply) || /no permissions/i.test(reply)) return { reason: 'not allowed by the ACL', grant: 'command' };
  if (/unknown command|not found/i.test(reply)) return { reason: 'unknown (renamed or disabled)', grant: 'none' };
  return null;
}

type Missing = Map<string, { denial: Denial; probe: Probe }>;

export class PreflightCheck {
  private readonly problems: string[] = [];
  private readonly warnings: string[] = [];
  private readonly label: string;
  /** The ACL user (ACL WHOAMI), when the target says. */
  private user: string | undefined;
  private usedDryRun = false;

  constructor(
    private readonly side: PreflightSide,
    private readonly o: PreflightOptions,
  ) {
    this.label = endpointLabel(o.target);
  }

  /** Runs every check; throws a TargetError (exit 5) listing what is missing. */
  async run(): Promise<void> {
    await this.collect();
    for (const w of this.warnings) this.o.logger.warn({ target: this.label }, w);
    if (this.problems.length > 0) {
      throw new TargetError(`target ${this.label} cannot take the copy: ${this.problems.join('; ')}`);
    }
    this.o.logger.info({ target: this.label, user: this.user ?? this.o.target.username ?? 'default', aclDryRun: this.usedDryRun }, 'target checked: writable, and the user may run what the sync sends');
  }

  /**
   * Runs every check and returns what would stop the sync (`problems`) and what may go wrong
   * (`warnings`), without throwing for them (`replicant plan` lists them all).
   */
  async collect(): Promise<{ problems: string[]; warnings: string[]; user: string }> {
    const info = parseServerInfo(replyText(await this.side.call(0, ['INFO'])));
    this.checkRole(info);
    this.checkMemory(info);
    const libraries = this.o.source?.functionLibraries ?? 0;
    if (libraries > 0 && info.major < 7) {
      this.problems.push(`the source has ${libraries} function libraries, which Redis ${info.version} cannot hold: use a Redis 7+ target`);
    }
    const dbs = this.o.databases;
    const missing = dbs === undefined ? null : missingTargetDbs(dbs.count, dbs.writes);
    if (missing !== null) this.problems.push(missing);
    await this.checkCommands();
    return { problems: [...this.problems], warnings: [...this.warnings], user: this.user ?? this.o.target.username ?? 'default' };
  }

  private checkRole(info: ServerInfo): void {
    // A cluster seed may be a replica: the writer routes to the masters.
    if (this.o.cluster) return;
    if (info.role === 'slave' || info.role === 'replica') {
      this.problems.push(`it is a replica of ${info.masterAddress ?? 'another server'} and refuses writes: point --target at its master`);
    }
  }

  private checkMemory(info: ServerInfo): void {
    const source = this.o.source;
    // Evicting any key when full: the copy would silently lose keys (Replicant's own have no TTL, so volatile-* spares them).
    if (info.maxmemory > 0 && info.maxmemoryPolicy.startsWith('allkeys-')) {
      this.warnings.push(
        `maxmemory-policy ${info.maxmemoryPolicy} with maxmemory ${mb(info.maxmemory)}: once full, the target evicts keys of the copy without telling anyone; prefer noeviction (writes are then refused and reported) or a maxmemory large enough`,
      );
    }
    if (info.maxmemory <= 0 || this.o.cluster || source === null) return;
    const room = info.maxmemory - info.usedMemory;
    if (source.usedMemory > room) {
      this.warnings.push(
        `maxmemory ${mb(info.maxmemory)} leaves ${mb(Math.max(0, room))} free, the source uses ${mb(source.usedMemory)}: ` +
          `writes may be refused (OOM) or keys evicted (policy ${info.maxmemoryPolicy}); raise maxmemory on the target`,
      );
    }
  }

  private async checkCommands(): Promise<void> {
    const probes = plannedProbes(this.o);
    const who = await this.side.tryCall(0, ['ACL', 'WHOAMI']);
    this.user = who instanceof Error ? undefined : replyText(who);
    const dry = this.user !== undefined && (await this.dryRunWorks(this.user));
    this.usedDryRun = dry;
    const missing: Missing = new Map();
    if (dry) {
      // DRYRUN changes nothing: one round trip for all of them.
      const replies = await this.side.pipeline(0, probes.map((p) => ['ACL', 'DRYRUN', this.user!, ...p.args]));
      probes.forEach((p, i) => {
        const text = replyText(replies[i]);
        if (text !== 'OK') missing.set(p.args[0]!, { denial: deniedBy(text) ?? { reason: `refused (${text})`, grant: 'none' }, probe: p });
      });
    } else {
      await this.tryProbes(probes, missing);
    }
    const user = this.user ?? this.o.target.username ?? 'default';
    for (const [cmd, { denial, probe }] of missing) {
      const grant =
        denial.grant === 'command' ? `grant +${cmd.toLowerCase()} to user ${user}` : denial.grant === 'key' ? `grant user ${user} the keys ~__replicant* (or ~*)` : `make ${cmd} available on the target`;
      const line = `${cmd} is ${denial.reason} (${probe.why}): ${grant}${probe.instead ? ` or use ${probe.instead}` : ''}`;
      (probe.need === 'required' ? this.problems : this.warnings).push(line);
    }
  }

  private async dryRunWorks(user: string): Promise<boolean> {
    const r = await this.side.tryCall(0, ['ACL', 'DRYRUN', user, 'PING']);
    return replyText(r) === 'OK';
  }

  /**
   * Without ACL DRYRUN: run each command in a form that cannot change data outside the
   * preflight key. The key holds a string while the type commands run, so they answer
   * WRONGTYPE when allowed; it is deleted at the end.
   */
  private async tryProbes(probes: Probe[], missing: Missing): Promise<void> {
    const note = (p: Probe, reply: unknown) => {
      const denial = reply instanceof Error ? deniedBy(reply.message) : null;
      if (denial !== null) missing.set(p.args[0]!, { denial, probe: p });
    };
    const byName = new Map(probes.map((p) => [p.args[0]!, p]));
    const multi = byName.get('MULTI')!;
    const exec = byName.get('EXEC')!;
    const m = await this.side.tryCall(0, ['MULTI']);
    note(multi, m);
    // Without MULTI, EXEC alone answers "EXEC without MULTI" when allowed.
    const e = await this.side.tryCall(0, ['EXEC']);
    note(exec, e);
    // EXEC refused after MULTI: the connection is still in MULTI.
    if (!(m instanceof Error) && e instanceof Error) await this.side.tryCall(0, ['DISCARD']);
    const set = byName.get('SET')!;
    note(set, await this.side.tryCall(0, set.args));
    // Without the string in place a type command would create a key: only the probes that
    // never create one (RESTORE of a bad payload, FUNCTION LOAD of bad code, EVAL) still run.
    const keySafe = !missing.has('SET');
    for (const p of probes) {
      if (p === multi || p === exec || p === set || p.args[0] === 'DEL') continue;
      if (!keySafe && !NEVER_CREATES.has(p.args[0]!)) continue;
      // MSET replaces the string, SETRANGE/PEXPIREAT keep it: the key stays a string throughout.
      note(p, await this.side.tryCall(0, p.args));
    }
    const del = byName.get('DEL')!;
    note(del, await this.side.tryCall(0, del.args));
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Runs the checks on `o.call`'s connection, or on a control connection it opens to the target (the user of the sync). */
export async function preflightTarget(o: PreflightOptions): Promise<void> {
  if (o.call !== undefined) return new PreflightCheck(sideOverCall(o.call), o).run();
  const { VerifySide } = await import('../verify/side.js');
  const side = new VerifySide('target', o.target, o.logger);
  try {
    await new PreflightCheck(side, o).run();
  } finally {
    side.close();
  }
}
