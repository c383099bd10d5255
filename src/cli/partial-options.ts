/**
 * The partial-sync options shared by `sync` and `verify` (README "Partial sync"), so both see
 * the same selection: --db, --key, --key-prefix, --exclude-key, --type, --rename-prefix, --db-map, and
 * (sync only) --exclude-command.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { VALUE_TYPES, parseValueTypes } from '../export/key-filter.js';
import { parseDbMap, parseRenamePrefix, type PartialSyncSpec } from '../sync/relay/selection.js';

export interface PartialCliOptions {
  db?: number[];
  key?: string[];
  keyPrefix?: string[];
  excludeKey?: string[];
  renamePrefix?: string;
  dbMap?: string;
  excludeCommand?: string[];
  type?: string[];
}

/** `--db 0 1`, `--db 0,1`, repeated: a list of database numbers. */
export function parseDbs(value: string, previous: number[] | undefined): number[] {
  const out = previous ?? [];
  for (const part of value.split(',')) {
    const t = part.trim();
    if (!/^\d{1,5}$/.test(t)) throw new InvalidArgumentError(`expected database numbers, got "${value}"`);
    out.push(Number(t));
  }
  return out;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];
const collectList = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), ...v.split(',').map((s) => s.trim()).filter((s) => s !== '')];

export function addPartialOptions(cmd: Command, what: { stream: boolean; dbHelp: string }): Command {
  cmd
    .option('--db <n...>', what.dbHelp, parseDbs)
    .option('--key <glob>', 'only keys matching this Redis glob (*, ?, [abc], [^a], \\ escape); repeatable: any of them', collect)
    .option('--key-prefix <prefix>', 'only keys starting with this prefix; repeatable, combines with --key as "any of them"', collect)
    .option('--exclude-key <glob>', 'leave out keys matching this glob (after --key / --key-prefix); repeatable', collect)
    .option('--type <type...>', `only keys of these types (${VALUE_TYPES.join(', ')}); repeatable or comma-separated`)
    .option('--rename-prefix <old:new>', 'keys starting with old are written with new instead (\\: for a colon inside old)')
    .option('--db-map <from:to,...>', 'source db -> target db, e.g. 3:0,4:1 (dbs not listed keep their number)');
  if (what.stream) cmd.option('--exclude-command <name>', 'never relay this stream command (e.g. FLUSHALL); repeatable or comma-separated', collectList);
  return cmd;
}

export function partialSpec(o: PartialCliOptions): PartialSyncSpec {
  const spec: PartialSyncSpec = {};
  if (o.db !== undefined) spec.dbs = o.db;
  if (o.key !== undefined) spec.keys = o.key;
  if (o.keyPrefix !== undefined) spec.prefixes = o.keyPrefix;
  if (o.excludeKey !== undefined) spec.excludes = o.excludeKey;
  if (o.renamePrefix !== undefined) spec.renamePrefix = parseRenamePrefix(o.renamePrefix);
  if (o.dbMap !== undefined) spec.dbMap = parseDbMap(o.dbMap);
  if (o.excludeCommand !== undefined) spec.excludeCommands = o.excludeCommand;
  if (o.type !== undefined) spec.types = parseValueTypes(o.type);
  return spec;
}
