/**
 * The work behind `replicant rdb` (defined in ./rdb.ts), loaded only when that command runs.
 *
 * The file is read in 256 KiB chunks, decoded in a streaming way, filtered by db / key glob /
 * type, and written through one buffered output that respects stdout backpressure and stops
 * quietly when the reader goes away (`| head`).
 */
import { open } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { LocalIoError, ReplicantError, UsageError, printableKey } from '../errors.js';
import { RdbDecoder } from '../rdb/decoder.js';
import { DECODE_SLICE_BYTES } from '../rdb/read.js';
import type { RdbRecord } from '../rdb/types.js';
import { KeyFilter, parseValueTypes } from '../export/key-filter.js';
import { OutputBuffer } from '../export/output.js';
import type { TranslateIssue } from '../translate/options.js';
import { parseTargetVersion } from '../translate/format.js';

export interface RdbCommandOptions {
  format: 'jsonl' | 'resp' | 'stats';
  restore?: boolean;
  restoreMaxBytes: string;
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

/** Bytes per read of an RDB file. */
const READ_CHUNK_BYTES = 256 * 1024;

/** Issues printed one by one before only counting the rest. */
const MAX_ISSUE_LINES = 20;

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
  const types = parseValueTypes(opts.type ?? []);
  return new KeyFilter({ dbs, types, ...(opts.key !== undefined ? { keys: [opts.key] } : {}) });
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
    // 256 KiB reads: as fast as 1 MiB ones, and the chunks the records still point into weigh
    // less. Peak RSS, 3M small keys 146 -> 91 MB, the huge-collections file 150-204 -> 129-149 MB
    // (bench:rdb datasets, 2026-12-07, 3 runs each).
    return fh.createReadStream({ highWaterMark: READ_CHUNK_BYTES, autoClose: true });
  } catch (err) {
    if (err instanceof LocalIoError) throw err;
    throw new LocalIoError(`cannot read RDB file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * One output format: takes the (filtered) records, writes at the end, reports on stderr. Each
 * format's module is loaded only when it is the one asked for.
 */
interface FormatSink {
  push(rec: RdbRecord): void;
  /** push() of each record, when the format has a faster way to take them all. */
  pushAll?(records: readonly RdbRecord[]): void;
  /** After the last record: write whatever is written at the end (stats). */
  finish(): void;
  /** Summary lines for stderr. */
  report(): string[];
  /** The error to report instead of `err` when the format knows better what to say, else null. */
  explain?(err: unknown): Error | null;
}

interface Validated {
  filter: KeyFilter;
  top: number;
  restoreMaxBytes: number;
}

function validate(opts: RdbCommandOptions): Validated {
  const filter = parseFilter(opts);
  const top = Number(opts.top);
  if (!Number.isInteger(top) || top < 0) throw new UsageError(`--top: "${opts.top}" is not a non-negative integer`);
  const restoreMaxBytes = Number(opts.restoreMaxBytes);
  if (!Number.isInteger(restoreMaxBytes) || restoreMaxBytes < 1) throw new UsageError(`--restore-max-bytes: "${opts.restoreMaxBytes}" is not a positive integer`);
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
  return { filter, top, restoreMaxBytes };
}

async function createSink(opts: RdbCommandOptions, v: Validated, out: OutputBuffer, stderr: Writable): Promise<FormatSink> {
  if (opts.format === 'stats') {
    const { StatsCollector, formatStats, statsToJson } = await import('../export/stats.js');
    const stats = new StatsCollector({ top: v.top });
    return {
      push: (r) => stats.push(r),
      pushAll: (records) => stats.pushAll(records),
      finish: () => out.utf8(opts.json ? `${JSON.stringify(statsToJson(stats.stats), null, 2)}\n` : formatStats(stats.stats)),
      report: () => (stats.stats.corruptSkipped > 0 ? [`skipped ${stats.stats.corruptSkipped} corrupt keys (--on-corrupt skip)`] : []),
    };
  }
  if (opts.format === 'jsonl') {
    const { JsonlWriter } = await import('../export/jsonl.js');
    const jsonl = new JsonlWriter(out);
    return {
      push: (r) => jsonl.push(r),
      finish: () => {},
      report: () => [
        ...(jsonl.stats.corruptSkipped > 0 ? [`skipped ${jsonl.stats.corruptSkipped} corrupt keys (--on-corrupt skip)`] : []),
        ...(jsonl.stats.emptySkipped > 0 ? [`skipped ${jsonl.stats.emptySkipped} empty keys (Redis does not load empty collections)`] : []),
      ],
    };
  }
  const [{ RespWriter }, { UntranslatableKeyError }] = await Promise.all([import('../export/resp.js'), import('../translate/translator.js')]);
  let issues = 0;
  const resp = new RespWriter(out, {
    mode: opts.restore ? 'restore' : 'commands',
    restoreBufferBytes: v.restoreMaxBytes,
    replace: opts.replace,
    includeExpired: opts.includeExpired === true,
    onUntranslatable: opts.onCorrupt,
    onIssue: (i: TranslateIssue) => {
      if (issues++ >= MAX_ISSUE_LINES) return;
      const where = i.key ? ` key ${JSON.stringify(printableKey(i.key))} (db ${i.db})` : '';
      stderr.write(`replicant: warning:${where} ${i.message}\n`);
    },
    ...(opts.targetVersion !== undefined ? { targetVersion: opts.targetVersion } : {}),
  });
  return {
    push: (r) => resp.push(r),
    finish: () => {},
    explain: (err) => (err instanceof UntranslatableKeyError ? new ReplicantError(err.code, `${err.message}; --restore writes such keys, --on-corrupt skip skips them`, err.exitCode) : null),
    report: () => {
      const t = resp.translator.stats;
      return [
        ...(t.corruptSkipped > 0 ? [`skipped ${t.corruptSkipped} corrupt keys (--on-corrupt skip)`] : []),
        ...(t.expiredSkipped > 0 ? [`skipped ${t.expiredSkipped} expired keys (--include-expired writes them)`] : []),
        ...(t.untranslatable > 0 ? [`skipped ${t.untranslatable} keys that cannot be written as commands (--restore writes them)`] : []),
        ...(issues > MAX_ISSUE_LINES ? [`${issues} warnings in total (first ${MAX_ISSUE_LINES} shown)`] : []),
      ];
    },
  };
}

export async function runRdbCommand(file: string, opts: RdbCommandOptions, io: RdbCommandIo): Promise<void> {
  const v = validate(opts);
  const filter = v.filter;
  const out = new OutputBuffer(io.stdout);
  const sink = await createSink(opts, v, out, io.stderr);
  const decoder = new RdbDecoder({
    verifyChecksum: opts.verifyChecksum,
    captureRaw: opts.format === 'resp' && opts.restore === true,
    rawLimit: v.restoreMaxBytes,
    onCorruptValue: opts.onCorrupt,
  });
  const input = await openInput(file, io);
  try {
    for await (const data of readChunks(input, file)) {
      // Push in small slices: fewer records alive at once keeps the GC cheap.
      for (let at = 0; at < data.length && !decoder.done; at += DECODE_SLICE_BYTES) {
        const records = decoder.push(data.subarray(at, at + DECODE_SLICE_BYTES));
        if (filter.passAll && sink.pushAll !== undefined) sink.pushAll(records);
        else if (filter.passAll) for (const r of records) sink.push(r);
        else for (const r of records) if (filter.accept(r)) sink.push(r);
      }
      await out.maybeFlush();
      if (out.closed) return; // the reader went away (| head): stop quietly
      if (out.failure) throw new LocalIoError(`cannot write output: ${out.failure.message}`);
      if (decoder.done) break;
    }
    decoder.finish();
    sink.finish();
    await out.end();
    if (out.failure) throw new LocalIoError(`cannot write output: ${out.failure.message}`);
  } catch (err) {
    throw sink.explain?.(err) ?? err;
  } finally {
    if (input !== io.stdin) input.destroy();
  }
  if (out.closed) return;
  const lines = sink.report();
  if (decoder.emptyKeysSkipped > 0) lines.push(`skipped ${decoder.emptyKeysSkipped} empty keys (Redis does not load empty collections)`);
  for (const line of lines) io.stderr.write(`replicant: ${line}\n`);
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
