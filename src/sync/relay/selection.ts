/**
 * What part of the source a partial sync copies, and under which names: the dbs and keys kept,
 * the key-prefix rename and the db map. Shared by the snapshot, the stream filter and verify,
 * so all three see the same image. Semantics (README "Partial sync"):
 *
 * - a key is kept when its db is kept (`dbs`, default every db) and its source name matches
 *   the key selection (globs / prefixes, minus exclusions; default every name);
 * - a kept key in db d is written as rename(key) into db map(d); dbs absent from the map keep
 *   their number. Two kept source dbs may not land in the same target db (FLUSHDB / SWAPDB of
 *   one would hit the other's keys), nor may a kept key already carry the new prefix without
 *   the old one (it would collide with a renamed key): the first is refused at start, the second
 *   is a conflict (see stream-filter) for that key.
 */
import { UsageError } from '../../errors.js';
import { KeyMatcher, startsWith, type KeySelection } from '../../export/key-filter.js';
import { KeyStartRecord } from '../../rdb/records.js';
import type { KeyHeader, RdbRecord, ValueType } from '../../rdb/types.js';
import { isOwnKey, isReservedKey, isReservedKeyAt } from '../../checkpoint/reserved.js';

export interface PartialSyncSpec extends KeySelection {
  /** Source dbs kept (default: every db). */
  dbs?: readonly number[];
  /** `[old, new]` key prefix rename. */
  renamePrefix?: readonly [string, string];
  /** Source db -> target db. */
  dbMap?: ReadonlyMap<number, number>;
  /** Stream commands never relayed (lower case). */
  excludeCommands?: readonly string[];
  /** Value types kept (default: every type). */
  types?: readonly ValueType[];
}

/** Commands the stream machinery itself handles: excluding them would break the relay. */
const NOT_EXCLUDABLE = new Set(['select', 'multi', 'exec', 'discard', 'ping', 'replconf']);

export class PartialScope {
  private readonly dbs: Set<number> | null;
  private readonly names: KeyMatcher;
  private readonly from: Buffer | null;
  private readonly to: Buffer | null;
  private readonly dbMap: ReadonlyMap<number, number>;
  readonly excludedCommands: ReadonlySet<string>;
  /** Something is filtered by key name. */
  readonly keyFiltered: boolean;
  /** Keys are left out by name or by type: a db-wide operation (FLUSHDB) can no longer be relayed as such. */
  readonly keysLeftOut: boolean;
  /** The value types kept, when --type gives them (null: every type). */
  readonly types: readonly ValueType[] | null;
  readonly renames: boolean;
  /** Nothing is filtered, renamed or mapped: the relay's fast path. */
  readonly identity: boolean;
  /** Canonical description, stored with the checkpoint: a restart with other filters is detected. */
  readonly fingerprint: string;

  constructor(readonly spec: PartialSyncSpec = {}) {
    this.dbs = spec.dbs && spec.dbs.length > 0 ? new Set(spec.dbs) : null;
    this.names = new KeyMatcher(spec);
    this.types = spec.types && spec.types.length > 0 ? [...new Set(spec.types)].sort() : null;
    this.keyFiltered = !this.names.passAll;
    this.keysLeftOut = this.keyFiltered || this.types !== null;
    const rp = spec.renamePrefix;
    this.from = rp ? Buffer.from(rp[0]) : null;
    this.to = rp ? Buffer.from(rp[1]) : null;
    this.renames = rp !== undefined && rp[0] !== rp[1];
    this.dbMap = new Map([...(spec.dbMap ?? new Map<number, number>())].filter(([a, b]) => a !== b));
    for (const c of spec.excludeCommands ?? []) {
      if (NOT_EXCLUDABLE.has(c.toLowerCase())) throw new UsageError(`--exclude-command ${c}: the relay needs ${c.toUpperCase()} to follow the stream; it cannot be excluded`);
    }
    this.excludedCommands = new Set((spec.excludeCommands ?? []).map((c) => c.toLowerCase()));
    this.checkDbCollisions();
    this.identity = this.dbs === null && !this.keysLeftOut && !this.renames && this.dbMap.size === 0 && this.excludedCommands.size === 0;
    this.fingerprint = this.identity ? '' : describeSpec(spec);
  }

  keepsDb(db: number): boolean {
    return this.dbs === null || this.dbs.has(db);
  }

  /** The target's number of databases (standalone, when known); Infinity: no limit known. */
  private targetDatabases = Infinity;

  /** The target has `n` databases (0..n-1): a source db mapped to one beyond is written nowhere (see targetHas). */
  limitTargetDbs(n: number): void {
    this.targetDatabases = n;
  }

  /**
   * Whether the target has the db source db `db` maps to. When it does not, nothing of that db
   * may be sent: a refused SELECT would leave the connection in the previous db, and the db's
   * commands and keys would land there.
   */
  targetHas(db: number): boolean {
    return this.targetDb(db) < this.targetDatabases;
  }

  /** The target's databases as a phrase for messages ("4 databases (0-3)"). */
  get targetDatabasesText(): string {
    const n = this.targetDatabases;
    return `${n} database${n === 1 ? '' : 's'} (${n === 1 ? '0' : `0-${n - 1}`})`;
  }

  /** Target db of source db `db`. */
  targetDb(db: number): number {
    return this.dbMap.get(db) ?? db;
  }

  /**
   * The db a target connection should be in while the stream is in source db `db`: its target db,
   * or 0 for a dropped db (nothing of it is written; the target may not even have that db).
   */
  connectionDb(db: number): number {
    return this.keepsDb(db) && this.targetHas(db) ? this.targetDb(db) : 0;
  }

  /** The kept source dbs, when --db lists them (null: every db). */
  get keptDbs(): number[] | null {
    return this.dbs === null ? null : [...this.dbs].sort((a, b) => a - b);
  }

  /** Whether keys of this type are kept. */
  keepsType(type: ValueType): boolean {
    return this.types === null || this.types.includes(type);
  }

  /** Whether the key name is selected (its db is checked apart). */
  keepsKey(key: Buffer): boolean {
    return this.names.matches(key);
  }

  /** The target name of a kept key. */
  rename(key: Buffer): Buffer {
    if (this.from === null || !this.renames || !startsWith(key, this.from)) return key;
    return Buffer.concat([this.to!, key.subarray(this.from.length)]);
  }

  /** The source db whose keys go to target db `db`, or null when none does. */
  sourceDb(db: number): number | null {
    for (const [from, to] of this.dbMap) if (to === db) return this.keepsDb(from) ? from : null;
    return this.dbMap.has(db) || !this.keepsDb(db) ? null : db;
  }

  /** The source name of target key `key` (the inverse of rename), or null when no kept key has that name. */
  sourceName(key: Buffer): Buffer | null {
    let src = key;
    if (this.renames) {
      if (startsWith(key, this.to!)) src = Buffer.concat([this.from!, key.subarray(this.to!.length)]);
      else if (startsWith(key, this.from!)) return null;
    }
    return this.keepsKey(src) ? src : null;
  }

  /** A kept key whose target name would collide with a renamed one (it already has the new prefix). */
  collides(key: Buffer): boolean {
    return this.renames && startsWith(key, this.to!) && !startsWith(key, this.from!);
  }

  private checkDbCollisions(): void {
    if (this.dbMap.size === 0) return;
    const byTarget = new Map<number, number>();
    const kept = this.dbs !== null ? [...this.dbs] : [...new Set([...this.dbMap.keys(), ...this.dbMap.values()])];
    for (const db of kept) {
      const t = this.targetDb(db);
      const other = byTarget.get(t);
      if (other !== undefined) {
        throw new UsageError(`--db-map: source dbs ${Math.min(db, other)} and ${Math.max(db, other)} would both be written to target db ${t}; map one of them elsewhere or leave it out with --db`);
      }
      byTarget.set(t, db);
    }
  }
}

function describeSpec(s: PartialSyncSpec): string {
  const sorted = (a: readonly (Buffer | string)[] | undefined) => (a ?? []).map((x) => x.toString()).sort();
  return JSON.stringify({
    dbs: [...(s.dbs ?? [])].sort((a, b) => a - b),
    keys: sorted(s.keys),
    prefixes: sorted(s.prefixes),
    excludes: sorted(s.excludes),
    rename: s.renamePrefix && s.renamePrefix[0] !== s.renamePrefix[1] ? [...s.renamePrefix] : null,
    dbMap: [...(s.dbMap ?? [])].filter(([a, b]) => a !== b).sort((a, b) => a[0] - b[0]),
    excludeCommands: [...(s.excludeCommands ?? [])].map((c) => c.toLowerCase()).sort(),
    // Only when given, so checkpoints made before --type existed keep their fingerprint.
    ...(s.types && s.types.length > 0 ? { types: [...new Set(s.types)].sort() } : {}),
  });
}

/**
 * The snapshot side: drops the records of keys outside the scope and gives the kept ones their
 * target name and db. Keys whose new name would collide are handed to `onCollision` (then dropped).
 * Keys in Replicant's namespace are never copied (they would overwrite this sync's checkpoint, lease
 * and registry on the target): the bookkeeping of a source that is itself a Replicant target is
 * left out (`reserved`); user data under the prefix is handed to `onReservedUserKey` (a lost key).
 */
export class SnapshotScope {
  private dropping = false;
  /** Keys left out by the filters. */
  filtered = 0;
  /** Replicant's own keys in the source's snapshot (it is itself the target of a sync), left out. */
  reserved = 0;
  /** Keys left out because `superseded` said the target holds a newer copy of them. */
  superseded = 0;

  /**
   * `isSuperseded`: a key (source name) whose copy on the target is newer than the snapshot's
   * (a cluster shard's key that migrated to another shard since: see migration-guard).
   * `onMissingDb`: a kept key whose target db the target does not have (PartialScope.targetHas).
   */
  constructor(
    private readonly scope: PartialScope,
    private readonly onCollision: (db: number, key: Buffer) => void,
    private readonly isSuperseded?: (key: Buffer) => boolean,
    private readonly onReservedUserKey: (db: number, key: Buffer) => void = () => {},
    private readonly onMissingDb: (db: number, key: Buffer) => void = () => {},
  ) {}

  /** `records` with the scope applied (the same array when nothing changes). */
  apply(records: readonly RdbRecord[]): RdbRecord[] {
    // Without filters (nor a cluster shard's superseded keys) the records pass as they are, unless a reserved key is among them.
    if (this.scope.identity && this.isSuperseded === undefined && !this.dropping && !records.some((r) => r.kind === 'keyStart' && (reservedName(r) || !this.scope.targetHas(r.db)))) return records as RdbRecord[];
    const out: RdbRecord[] = [];
    for (const rec of records) {
      if (rec.kind === 'keyStart') {
        const s = this.scope;
        if (isReservedKey(rec.key)) {
          if (isOwnKey(rec.key)) this.reserved++;
          else this.onReservedUserKey(rec.db, rec.key);
          this.dropping = true;
          continue;
        }
        this.dropping = !s.keepsDb(rec.db) || !s.keepsKey(rec.key) || !s.keepsType(rec.type);
        if (this.dropping) {
          this.filtered++;
          continue;
        }
        if (!s.targetHas(rec.db)) {
          this.onMissingDb(rec.db, rec.key);
          this.dropping = true;
          continue;
        }
        if (this.isSuperseded?.(rec.key) === true) {
          this.superseded++;
          this.dropping = true;
          continue;
        }
        if (s.collides(rec.key)) {
          this.onCollision(rec.db, rec.key);
          this.dropping = true;
          continue;
        }
        const key = s.rename(rec.key);
        const db = s.targetDb(rec.db);
        out.push(key === rec.key && db === rec.db ? rec : { ...rec, key, db });
        continue;
      }
      if (this.dropping) {
        if (rec.kind === 'keyEnd' || rec.kind === 'keySkipped') this.dropping = false;
        continue;
      }
      out.push(rec);
    }
    return out;
  }
}

/** `3:0,4:1` -> Map{3=>0, 4=>1}. */
export function parseDbMap(text: string): Map<number, number> {
  const map = new Map<number, number>();
  for (const part of text.split(',')) {
    const m = /^\s*(\d{1,5})\s*:\s*(\d{1,5})\s*$/.exec(part);
    if (!m) throw new UsageError(`--db-map: expected source:target db pairs such as 3:0,4:1, got "${text}"`);
    const from = Number(m[1]);
    if (map.has(from)) throw new UsageError(`--db-map: source db ${from} is mapped twice in "${text}"`);
    map.set(from, Number(m[2]));
  }
  return map;
}

/** `old:new` -> ['old', 'new'] (split at the first colon not escaped as `\:`). */
export function parseRenamePrefix(text: string): [string, string] {
  const m = /^((?:[^:\\]|\\.)*):(.*)$/s.exec(text);
  if (!m) throw new UsageError(`--rename-prefix: expected old:new (a \\: for a colon inside old), got "${text}"`);
  // An empty old prefix prefixes every key; an empty new one strips the old prefix.
  return [m[1]!.replace(/\\(.)/g, '$1'), m[2]!];
}

/** Whether a key's name is under the reserved prefix; a decoder's keyStart is checked on its bytes (no Buffer made). */
function reservedName(h: KeyHeader): boolean {
  return h instanceof KeyStartRecord ? isReservedKeyAt(h.keySrc, h.keyAt, h.keyLen) : isReservedKey(h.key);
}
