/**
 * `replicant rdb <file|->`: decode an RDB file and print it as JSON lines (default), as RESP
 * commands that rebuild it (`--format resp`, for `redis-cli --pipe`), or as statistics.
 *
 * The file is read in 1 MiB chunks, decoded in a streaming way, filtered by db / key glob /
 * type, and written through one buffered output that respects stdout backpressure and stops
 * quietly when the reader goes away (`| head`).
 */
import { open } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { Option, type Command as CommanderCommand } from 'commander';
import { LocalIoError, UsageError, printableKey } from '../errors.js';
import { RdbDecoder } from '../rdb/decoder.js';
import type { RdbRecord, ValueType } from '../rdb/types.js';
import { JsonlWriter } from '../export/jsonl.js';
import { KeyFilter, VALUE_TYPES } from '../export/key-filter.js';
import { OutputBuffer } from '../export/output.js';
import { RespWriter } from '../export/resp.js';
import { StatsCollector, formatStats, statsToJson } from '../export/stats.js';
import type { TranslateIssue } from '../sync/translate.js';
import { parseTargetVersion } from '../sync/translate-format.js';

export interface RdbCommandOptions {
  format: 'jsonl' | 'resp' | 'stats';
  restore?: boolean;
  includeExpired?: boolean;
  replace: boolean;
  targetVersion?: string;
  top: string;
  json?: boolean;
  db?: string[];
  key?: string;
  type?: string[];
  verifyChecksum: boolean;
  onCorrupt: 'fail' | 'skip';
}

/** Issues printed one by one before only counting the rest. */
const MAX_ISSUE_LINES = 20;

export function registerRdbCommand(program: CommanderCommand): void {
  program
    .command('rdb')
    .showHelpAfterError(false) // errors stay one line; --help has the rest
    .description('decode an RDB file (or - for stdin) and print it as JSON lines, RESP commands or statistics')
    .argument('<file>', 'RDB file, or - to read stdin')
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'resp', 'stats']).default('jsonl'))
    .option('--restore', 'resp: write RESTORE ... ABSTTL REPLACE with DUMP payloads (the file\'s RDB version) instead of plain commands')
    .option('--include-expired', 'resp: also write keys whose expiry has already passed')
    .option('--no-replace', 'resp: do not overwrite existing keys (no DEL before collections, no REPLACE on RESTORE)')
    .option('--target-version <version>', 'resp: the target\'s server version, to avoid newer syntax (default: newest)')
    .option('--top <n>', 'stats: how many of the biggest keys to list', '10')
    .option('--json', 'stats: print JSON instead of a table')
    .option('--db <n...>', 'only these databases (put the file first, or use --db=N)')
    .option('--key <glob>', 'only keys matching this Redis glob (*, ?, [abc], [^a], \\ escape)')
    .option('--type <type...>', `only these types (${VALUE_TYPES.join(', ')})`)
    .option('--no-verify-checksum', 'do not verify the CRC64 trailer')
    .addOption(new Option('--on-corrupt <mode>', 'a key whose value is corrupt inside a blob: fail, or skip it and count').choices(['fail', 'skip']).default('fail'))
    .action(async (file: string, opts: RdbCommandOptions) => {
      await runRdbCommand(file, opts, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
    });
}

export interface RdbCommandIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

function parseFilter(opts: RdbCommandOptions): KeyFilter {
  const dbs: number[] = [];
  for (const v of (opts.db ?? []).flatMap((s) => s.split(','))) {
    if (!/^\d+$/.test(v.trim())) throw new UsageError(`--db: "${v}" is not a database number`);
    dbs.push(Number(v));
  }
  const types: ValueType[] = [];
  for (const v of (opts.type ?? []).flatMap((s) => s.split(','))) {
    const t = v.trim().toLowerCase() as ValueType;
    if (!VALUE_TYPES.includes(t)) throw new UsageError(`--type: "${v}" is not one of ${VALUE_TYPES.join(', ')}`);
    types.push(t);
  }
  return new KeyFilter({ dbs, types, ...(opts.key !== undefined ? { key: opts.key } : {}) });
}

async function openInput(file: string, io: RdbCommandIo): Promise<Readable> {
  if (file === '-') return io.stdin;
  try {
    const fh = await open(file, 'r');
    const st = await fh.stat();
    if (st.isDirectory()) {
      await fh.close();
      throw new LocalIoError(`cannot read RDB file ${file}: it is a directory`);
    }
    return fh.createReadStream({ highWaterMark: 1024 * 1024, autoClose: true });
  } catch (err) {
    if (err instanceof LocalIoError) throw err;
    throw new LocalIoError(`cannot read RDB file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export async function runRdbCommand(file: string, opts: RdbCommandOptions, io: RdbCommandIo): Promise<void> {
  const filter = parseFilter(opts);
  const top = Number(opts.top);
  if (!Number.isInteger(top) || top < 0) throw new UsageError(`--top: "${opts.top}" is not a non-negative integer`);
  if (opts.targetVersion !== undefined) {
    try {
      parseTargetVersion(opts.targetVersion);
    } catch (err) {
      throw new UsageError(`--target-version: ${(err as Error).message}`);
    }
  }
  if (opts.format !== 'resp' && (opts.restore || opts.targetVersion !== undefined)) {
    throw new UsageError('--restore and --target-version apply to --format resp only');
  }

  const out = new OutputBuffer(io.stdout);
  let issueLines = 0;
  let issueCount = 0;
  const onIssue = (i: TranslateIssue) => {
    issueCount++;
    if (issueLines++ < MAX_ISSUE_LINES) {
      const where = i.key ? ` key ${JSON.stringify(printableKey(i.key))} (db ${i.db})` : '';
      io.stderr.write(`replicant: warning:${where} ${i.message}\n`);
    }
  };

  let sink: (rec: RdbRecord) => void;
  let finish: () => void;
  const stats = opts.format === 'stats' ? new StatsCollector({ top }) : null;
  let resp: RespWriter | null = null;
  let jsonl: JsonlWriter | null = null;
  if (opts.format === 'resp') {
    resp = new RespWriter(out, {
      mode: opts.restore ? 'restore' : 'commands',
      replace: opts.replace,
      includeExpired: opts.includeExpired === true,
      onUntranslatable: opts.onCorrupt,
      onIssue,
      ...(opts.targetVersion !== undefined ? { targetVersion: opts.targetVersion } : {}),
    });
    sink = (r) => resp!.push(r);
    finish = () => {};
  } else if (stats) {
    sink = (r) => stats.push(r);
    finish = () => {
      if (opts.json) out.utf8(`${JSON.stringify(statsToJson(stats.stats), null, 2)}\n`);
      else out.utf8(formatStats(stats.stats));
    };
  } else {
    jsonl = new JsonlWriter(out);
    sink = (r) => jsonl!.push(r);
    finish = () => {};
  }

  const decoder = new RdbDecoder({
    verifyChecksum: opts.verifyChecksum,
    captureRaw: opts.format === 'resp' && opts.restore === true,
    onCorruptValue: opts.onCorrupt,
  });
  const handle = (records: readonly RdbRecord[]) => {
    if (filter.passAll) for (const r of records) sink(r);
    else for (const r of records) if (filter.accept(r)) sink(r);
  };

  const input = await openInput(file, io);
  try {
    for await (const chunk of readChunks(input, file)) {
      handle(decoder.push(chunk));
      await out.maybeFlush();
      if (out.closed) return;
      if (out.failure) throw new LocalIoError(`cannot write output: ${out.failure.message}`);
      if (decoder.done) break;
    }
    decoder.finish();
    finish();
    await out.end();
    if (out.failure) throw new LocalIoError(`cannot write output: ${out.failure.message}`);
  } finally {
    if (input !== io.stdin) input.destroy();
  }

  const corrupt = jsonl?.stats.corruptSkipped ?? resp?.translator.stats.corruptSkipped ?? stats?.stats.corruptSkipped ?? 0;
  if (corrupt > 0) io.stderr.write(`replicant: skipped ${corrupt} corrupt keys (--on-corrupt skip)\n`);
  if (jsonl && jsonl.stats.emptySkipped > 0) io.stderr.write(`replicant: skipped ${jsonl.stats.emptySkipped} empty keys (Redis does not load empty collections)\n`);
  if (resp) {
    const t = resp.translator.stats;
    if (t.expiredSkipped > 0) io.stderr.write(`replicant: skipped ${t.expiredSkipped} expired keys (use --include-expired to keep them)\n`);
    if (t.untranslatable > 0) io.stderr.write(`replicant: skipped ${t.untranslatable} keys that cannot be written as commands\n`);
  }
  if (issueCount > MAX_ISSUE_LINES) io.stderr.write(`replicant: ${issueCount} warnings in total (first ${MAX_ISSUE_LINES} shown)\n`);
}

/** The input's chunks; read errors become LocalIoError (exit 6), naming the file. */
async function* readChunks(input: Readable, file: string): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    let r: IteratorResult<Buffer>;
    try {
      r = await it.next();
    } catch (err) {
      throw new LocalIoError(`cannot read RDB ${file === '-' ? 'from stdin' : `file ${file}`}: ${(err as Error).message}`, { cause: err });
    }
    if (r.done) return;
    yield typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
  }
}
