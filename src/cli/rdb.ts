/**
 * `replicant rdb <file|->`: decode an RDB file and print it as JSON lines (default), as RESP
 * commands that rebuild it (`--format resp`, for `redis-cli --pipe`), or as statistics.
 *
 * This module only defines the command (options, help); the decoding and output are in
 * ./rdb-run.ts, loaded when the command runs so that other commands start without them.
 */
import { Option, type Command as CommanderCommand } from 'commander';
import { UsageError } from '../errors.js';
import { VALUE_TYPES } from '../export/key-filter.js';
import type { RdbCommandOptions } from './rdb-run.js';

export function registerRdbCommand(program: CommanderCommand): void {
  program
    .command('rdb')
    .showHelpAfterError(false) // errors stay one line; --help has the rest
    .description('decode an RDB file (or - for stdin) and print it as JSON lines, RESP commands or statistics')
    .argument('[file]', 'RDB file, or - to read stdin')
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'resp', 'stats']).default('jsonl'))
    .option('--restore', 'resp: write RESTORE ... ABSTTL REPLACE with DUMP payloads (the file\'s RDB version) instead of plain commands')
    .option('--restore-max-bytes <n>', 'resp --restore: keys bigger than this are written as commands instead', String(16 * 1024 * 1024))
    .option('--include-expired', 'resp: also write keys whose expiry has already passed')
    .option('--no-replace', 'resp: do not overwrite existing keys (no DEL before collections, no REPLACE on RESTORE)')
    .option('--target-version <version>', 'resp: the target\'s server version, to avoid newer syntax (default: newest)')
    .option('--top <n>', 'stats: how many of the biggest keys to list', '10')
    .option('--json', 'stats: print JSON instead of a table')
    .option('--db <n...>', 'only these databases')
    .option('--key <glob>', 'only keys matching this Redis glob (*, ?, [abc], [^a], \\ escape)')
    .option('--type <type...>', `only these types (${VALUE_TYPES.join(', ')})`)
    .option('--no-verify-checksum', 'do not verify the CRC64 trailer')
    .addOption(
      new Option('--on-corrupt <mode>', 'a key whose value is corrupt inside a blob (or, for resp, cannot be written): fail, or skip it and count')
        .choices(['fail', 'skip'])
        .default('fail'),
    )
    .action(async (file: string | undefined, opts: RdbCommandOptions) => {
      const path = fileArgument(file, opts);
      const { runRdbCommand } = await import('./rdb-run.js');
      await runRdbCommand(path, opts, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
    });
}

/**
 * The file argument. Variadic options swallow what follows them, so in `rdb --db 0 dump.rdb`
 * the file lands in `--db`: take a trailing value that is not a db number / type name back.
 */
function fileArgument(file: string | undefined, opts: RdbCommandOptions): string {
  if (file !== undefined) return file;
  const last = (values: string[] | undefined, valid: (v: string) => boolean): string | undefined => {
    const v = values?.[values.length - 1];
    if (v === undefined || v.split(',').every((x) => valid(x.trim()))) return undefined;
    values!.pop();
    return v;
  };
  const found =
    last(opts.db, (v) => /^\d+$/.test(v)) ?? last(opts.type, (v) => (VALUE_TYPES as readonly string[]).includes(v.toLowerCase()));
  if (found === undefined) throw new UsageError('missing the RDB file argument (a path, or - for stdin)');
  return found;
}
