/**
 * Parser for the replication command stream (what a master sends after the RDB or
 * after +CONTINUE): RESP2 multibulks only, plus bare `\n` / `\r\n` keepalives.
 *
 * Every command carries the replication offset of its last byte, so the offset
 * applied on the target is always exact (redis-internals §1.7).
 *
 * Buffering: commands that lie inside one pushed chunk are parsed in place and
 * returned as zero-copy views of that chunk. A command cut by a chunk boundary is
 * moved into a private accumulation buffer, and later chunks contribute only the
 * bytes that command still needs (a header line, or the rest of an argument), so
 * each byte is copied at most once (plus buffer growth) and a 500 MB argument is
 * never re-concatenated per push. The parse state (argument positions relative to
 * the command start) survives across pushes, so headers are never re-parsed.
 *
 * Cost per command: the relay only needs a command's name, its wire bytes and
 * offset, and sometimes its first key, so a command is one small object plus one
 * view (`raw`). The name is interned (no string built for a known name) and the
 * argument views are only cut from `raw` when `args` is first read.
 */
import { ProtocolError } from '../errors.js';
import { commandName } from './command-names.js';
import { BodyState, MAX_HEADER_LINE, StreamBody } from './stream-body.js';

export { StreamBody };

/** One command of the replication stream. Its Buffers are views of the wire bytes: do not modify them. */
export class StreamCommand {
  /** Lower-cased command name (args[0]); the same string instance for every command with that name. */
  readonly name: string;
  /** Replication offset of the command's LAST byte: the applied offset once this command is applied. */
  readonly offset: number;
  /** Bytes of the command on the wire. */
  readonly length: number;
  /** Exact wire bytes (a view; copy only if needed). */
  readonly raw: Buffer;
  /** Number of arguments, the name included (>= 1). */
  readonly argCount: number;
  /** Position of args[1] (the first key of most commands) in `raw`, or -1 without one. */
  private readonly keyStart: number;
  private readonly keyLength: number;
  private materialized: Buffer[] | undefined;
  /**
   * Null for a whole command. Otherwise this is only the head of a command with a big argument
   * (bigArgBytes): `raw` ends with that argument's header, `args` are the ones before it, and the
   * rest of the wire bytes, the final offset and length arrive in `body`.
   */
  readonly body: StreamBody | null;

  /** @internal built by ReplicationStreamParser from a complete, validated command (or head). */
  constructor(name: string, offset: number, length: number, raw: Buffer, argCount: number, keyStart: number, keyLength: number, body: StreamBody | null = null) {
    this.name = name;
    this.offset = offset;
    this.length = length;
    this.raw = raw;
    this.argCount = argCount;
    this.keyStart = keyStart;
    this.keyLength = keyLength;
    this.materialized = undefined;
    this.body = body;
  }

  /** Arguments, binary: views of `raw`, cut on first access (then cached). A head has those before its big one. */
  get args(): Buffer[] {
    return (this.materialized ??= splitArgs(this.raw, this.body === null ? this.argCount : this.body.argIndex));
  }

  /** Argument `i` (0 = the name) as a view of `raw`, or undefined past the end. Cheap for i = 1. */
  arg(i: number): Buffer | undefined {
    if (i === 1 && this.materialized === undefined) {
      return this.keyStart < 0 ? undefined : this.raw.subarray(this.keyStart, this.keyStart + this.keyLength);
    }
    return this.args[i];
  }

  /** Whether argument `i` starts with `prefix`, without cutting views for i = 1 (the reserved-key check). */
  argStartsWith(i: number, prefix: Uint8Array): boolean {
    if (i !== 1) {
      const a = this.args[i];
      return a !== undefined && a.length >= prefix.length && a.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
    }
    const start = this.keyStart;
    if (start < 0 || this.keyLength < prefix.length) return false;
    const raw = this.raw;
    for (let j = 0; j < prefix.length; j++) if (raw[start + j] !== prefix[j]) return false;
    return true;
  }
}

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;

/** Redis rejects multibulk lengths above INT_MAX for its master client; we do the same. */
const MAX_ARGC = 0x7fffffff;
/** Largest argument a Buffer can hold here. */
const MAX_ARG_LENGTH = 0xffffffff;

/** Where the parser is inside the current command. */
const Stage = {
  /** Between commands: expecting `*`, or a keepalive `\n` / `\r\n`. */
  COMMAND: 0,
  /** Expecting a `$<len>\r\n` bulk header. */
  BULK_HEADER: 1,
  /** Expecting `<len>` argument bytes then CRLF. */
  BULK_DATA: 2,
  /** Relaying the rest of a command with a big argument (`body`) as it arrives. */
  BODY: 3,
} as const;
type Stage = (typeof Stage)[keyof typeof Stage];

/** Result of reading an integer header line at `pos`: value and index after the CRLF, or -1 when incomplete. */
interface HeaderLine {
  value: number;
  next: number;
}

export class ReplicationStreamParser {
  /** Offset of the last byte consumed into complete commands (or keepalives). */
  private committed: number;
  private failure: ProtocolError | undefined;

  // --- state of the command being parsed. Positions named *Rel are relative to the command
  // start (cmdStart), so they survive moving the command into the accumulator unchanged. ---
  private stage: Stage = Stage.COMMAND;
  private cmdStart = 0;
  private argc = 0;
  /** Bulk headers read so far in this command. */
  private argsSeen = 0;
  /** Start of the current argument's data. */
  private argRel = 0;
  private argLen = 0;
  private nameRel = 0;
  private nameLen = 0;
  private keyRel = -1;
  private keyLen = 0;
  private pos = 0;

  /** Accumulation buffer holding exactly the bytes of a command cut by a chunk boundary. */
  private acc: Buffer | null = null;
  private accLen = 0;

  private readonly headerScratch: HeaderLine = { value: 0, next: -1 };
  /** Arguments (after the key) at least this long are relayed in pieces (see StreamCommand.body). */
  private readonly bigArgBytes: number;
  /** The command being relayed in pieces, and where its rest stands. */
  private readonly rest = new BodyState();

  /**
   * @param startOffset offset of the last byte before the stream: the +FULLRESYNC offset,
   *   or (after +CONTINUE) the PSYNC offset - 1.
   * @param opts.bigArgBytes an argument after the key this long or longer is not assembled: the
   *   command's head is returned with a `body` that receives the rest of its bytes (default: never).
   */
  constructor(startOffset: number, opts: { bigArgBytes?: number } = {}) {
    if (!Number.isSafeInteger(startOffset) || startOffset < -1) {
      throw new RangeError(`ReplicationStreamParser: bad start offset ${startOffset}`);
    }
    this.committed = startOffset;
    this.bigArgBytes = opts.bigArgBytes ?? Infinity;
  }

  /** Offset of the last byte consumed into complete commands. */
  get offset(): number {
    return this.committed;
  }

  /** Bytes received but not yet part of a complete command. */
  get pendingBytes(): number {
    return this.acc === null ? 0 : this.accLen;
  }

  /**
   * Feed the next bytes of the stream; returns the commands completed by them, in order.
   * Throws ProtocolError (naming the stream offset of the offending byte) on malformed
   * input; the parser then stays failed and every later push throws the same error.
   * Commands completed earlier in the same push are not returned in that case: the
   * caller fails the sync and resumes from its last applied offset.
   */
  push(chunk: Buffer): StreamCommand[] {
    if (this.failure) throw this.failure;
    const out: StreamCommand[] = [];
    try {
      let from = 0;
      while (from < chunk.length) {
        if (this.stage === Stage.BODY) from = this.feedBody(chunk, from);
        else if (this.acc !== null) from = this.feedAccumulator(chunk, from, out);
        else from = this.parseChunk(chunk, from, out);
      }
    } catch (e) {
      if (e instanceof ProtocolError) this.failure = e;
      throw e;
    }
    return out;
  }

  /**
   * Complete the command held in the accumulator with as few bytes of `chunk` as it
   * needs. Returns the index in `chunk` where direct parsing resumes.
   */
  private feedAccumulator(chunk: Buffer, from: number, out: StreamCommand[]): number {
    let cpos = from;
    while (this.acc !== null && cpos < chunk.length) {
      let want: number;
      if (this.stage === Stage.BULK_DATA) {
        want = this.cmdStart + this.argRel + this.argLen + 2 - this.accLen;
      } else {
        // A header line (or keepalive): take bytes up to and including the next LF.
        const lf = chunk.indexOf(LF, cpos);
        want = lf === -1 ? chunk.length - cpos : lf - cpos + 1;
        if (want > MAX_HEADER_LINE + 2) want = MAX_HEADER_LINE + 2;
      }
      const n = Math.min(want, chunk.length - cpos);
      this.ensureCapacity(this.accLen + n);
      chunk.copy(this.acc!, this.accLen, cpos, cpos + n);
      this.accLen += n;
      cpos += n;
      this.run(this.acc!, this.accLen, out);
      if ((this.stage === Stage.COMMAND && this.pos === this.accLen) || this.stage === Stage.BODY) {
        // The held command completed; its views stay valid, the buffer is never written again.
        this.acc = null;
        this.accLen = 0;
        this.pos = 0;
        this.cmdStart = 0;
      }
    }
    return cpos;
  }

  /** Parses from `from`; returns where a body starts, or the chunk's end (an incomplete command is held). */
  private parseChunk(chunk: Buffer, from: number, out: StreamCommand[]): number {
    this.pos = from;
    this.cmdStart = from;
    this.run(chunk, chunk.length, out);
    if (this.stage === Stage.BODY) return this.pos;
    if (this.stage === Stage.COMMAND && this.pos === chunk.length) return chunk.length;
    // Incomplete command at the end: move its bytes into a fresh accumulator, rebased to 0.
    const base = this.cmdStart;
    const have = chunk.length - base;
    const capacity = this.growTarget(have, 0);
    const acc = Buffer.allocUnsafe(capacity);
    chunk.copy(acc, 0, base, chunk.length);
    this.pos -= base;
    this.cmdStart = 0;
    this.acc = acc;
    this.accLen = have;
    return chunk.length;
  }

  private ensureCapacity(needed: number): void {
    const acc = this.acc!;
    if (needed <= acc.length) return;
    const capacity = this.growTarget(needed, acc.length);
    const grown = Buffer.allocUnsafe(capacity);
    acc.copy(grown, 0, 0, this.accLen);
    this.acc = grown;
  }

  /**
   * Capacity for the accumulator (which holds the command from its start): at least
   * `needed`, doubling (so copies stay linear), but never more than the current command
   * can use when its argument length is known. Doubling instead of allocating a declared
   * length up front keeps a garbage length from allocating gigabytes before any of its
   * bytes arrived.
   */
  private growTarget(needed: number, current: number): number {
    let capacity = Math.max(needed, current * 2, 256);
    if (this.stage === Stage.BULK_DATA) {
      const argEnd = this.argRel + this.argLen + 2;
      // Room for the argument plus a little for the next header line.
      capacity = Math.max(needed, Math.min(capacity, argEnd + MAX_HEADER_LINE + 2));
    }
    return capacity;
  }

  /** Stream offset of byte `i` of `buf` (the buffer whose command starts at cmdStart). */
  private offsetAt(i: number): number {
    return this.committed + (i - this.cmdStart) + 1;
  }

  /** Parse `buf[pos..end)`, emitting complete commands; stops at the end or when a command is incomplete. */
  private run(buf: Buffer, end: number, out: StreamCommand[]): void {
    let pos = this.pos;
    const line = this.headerScratch;
    for (;;) {
      if (this.stage === Stage.COMMAND) {
        if (pos >= end) break;
        const c = buf[pos]!;
        if (c === STAR) {
          if (!this.readHeaderLine(buf, pos, end, line)) break;
          if (line.value < 1 || line.value > MAX_ARGC) {
            throw new ProtocolError(`invalid multibulk length ${line.value} (expected 1..${MAX_ARGC})`, this.offsetAt(pos));
          }
          this.argc = line.value;
          this.argsSeen = 0;
          this.keyRel = -1;
          this.keyLen = 0;
          pos = line.next;
          this.stage = Stage.BULK_HEADER;
        } else if (c === LF) {
          // Keepalive newline: a no-op that still advances the offset.
          pos++;
          this.committed++;
          this.cmdStart = pos;
          continue;
        } else if (c === CR) {
          if (pos + 1 >= end) break;
          if (buf[pos + 1] !== LF) {
            throw new ProtocolError(`expected LF after CR in a keepalive, got byte 0x${hex(buf[pos + 1]!)}`, this.offsetAt(pos + 1));
          }
          pos += 2;
          this.committed += 2;
          this.cmdStart = pos;
          continue;
        } else {
          throw new ProtocolError(
            `expected '*' (multibulk) or a keepalive newline, got byte 0x${hex(c)} (inline commands are not valid in a replication stream)`,
            this.offsetAt(pos),
          );
        }
      }
      if (this.stage === Stage.BULK_HEADER) {
        if (pos >= end) break;
        if (buf[pos] !== DOLLAR) {
          throw new ProtocolError(`expected '$' (bulk string header) for argument ${this.argsSeen + 1} of ${this.argc}, got byte 0x${hex(buf[pos]!)}`, this.offsetAt(pos));
        }
        if (!this.readHeaderLine(buf, pos, end, line)) break;
        if (line.value < 0 || line.value > MAX_ARG_LENGTH) {
          throw new ProtocolError(`invalid bulk length ${line.value} (expected 0..${MAX_ARG_LENGTH})`, this.offsetAt(pos));
        }
        if (this.argsSeen >= 2 && line.value >= this.bigArgBytes) {
          this.openBody(buf, line.next, line.value, out);
          pos = line.next;
          break;
        }
        const rel = line.next - this.cmdStart;
        if (this.argsSeen === 0) {
          this.nameRel = rel;
          this.nameLen = line.value;
        } else if (this.argsSeen === 1) {
          this.keyRel = rel;
          this.keyLen = line.value;
        }
        this.argsSeen++;
        this.argLen = line.value;
        this.argRel = rel;
        pos = line.next;
        this.stage = Stage.BULK_DATA;
      }
      // Stage.BULK_DATA
      const dataEnd = this.cmdStart + this.argRel + this.argLen;
      if (dataEnd + 2 > end) {
        pos = Math.min(end, dataEnd);
        break;
      }
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) {
        const at = buf[dataEnd] !== CR ? dataEnd : dataEnd + 1;
        throw new ProtocolError(`expected CRLF after a ${this.argLen}-byte bulk string, got byte 0x${hex(buf[at]!)}`, this.offsetAt(at));
      }
      pos = dataEnd + 2;
      if (this.argsSeen < this.argc) {
        this.stage = Stage.BULK_HEADER;
        continue;
      }
      this.emit(buf, pos, out);
    }
    this.pos = pos;
  }

  private emit(buf: Buffer, cmdEnd: number, out: StreamCommand[]): void {
    const cmdStart = this.cmdStart;
    const length = cmdEnd - cmdStart;
    this.committed += length;
    const name = commandName(buf, cmdStart + this.nameRel, this.nameLen);
    out.push(new StreamCommand(name, this.committed, length, buf.subarray(cmdStart, cmdEnd), this.argc, this.keyRel, this.keyLen));
    this.stage = Stage.COMMAND;
    this.cmdStart = cmdEnd;
  }

  /** A big argument's header ends at `next`: the head goes out, the rest will go to its body. */
  private openBody(buf: Buffer, next: number, argLen: number, out: StreamCommand[]): void {
    const headLen = next - this.cmdStart;
    const body = new StreamBody(this.argsSeen);
    const name = commandName(buf, this.cmdStart + this.nameRel, this.nameLen);
    out.push(new StreamCommand(name, this.committed + headLen, headLen, buf.subarray(this.cmdStart, next), this.argc, this.keyRel, this.keyLen, body));
    this.rest.open(body, argLen, this.argc - this.argsSeen - 1, headLen);
    this.stage = Stage.BODY;
  }

  /**
   * Hands the bytes of `chunk` from `from` to the open body, checking the rest of the command's
   * framing as it goes (CRLF after each argument, `$<len>` headers); returns where the command
   * ended, or the chunk's end.
   */
  private feedBody(chunk: Buffer, from: number): number {
    const r = this.rest;
    let p = from;
    const at = (i: number) => this.committed + r.length + (i - from) + 1;
    while (p < chunk.length && !r.complete) {
      if (r.data > 0) {
        const n = Math.min(r.data, chunk.length - p);
        // The argument's CRLF may be cut by a chunk boundary too.
        if (r.data - 2 >= 0 && r.data - 2 < n && chunk[p + r.data - 2] !== CR) throw new ProtocolError(`expected CR after a bulk string, got byte 0x${hex(chunk[p + r.data - 2]!)}`, at(p + r.data - 2));
        if (r.data - 1 < n && chunk[p + r.data - 1] !== LF) throw new ProtocolError(`expected LF after a bulk string, got byte 0x${hex(chunk[p + r.data - 1]!)}`, at(p + r.data - 1));
        p += n;
        r.data -= n;
        continue;
      }
      // A `$<len>\r\n` header, gathered (it may be cut) into the scratch line.
      const lf = chunk.indexOf(LF, p);
      const stop = lf === -1 ? chunk.length : lf + 1;
      const hdrStart = r.length + (p - from) - r.lineLen;
      if (r.lineLen + stop - p > MAX_HEADER_LINE + 2) throw new ProtocolError('bulk header line too long', at(p));
      chunk.copy(r.line, r.lineLen, p, stop);
      r.lineLen += stop - p;
      p = stop;
      if (lf === -1) break;
      if (r.line[0] !== DOLLAR) throw new ProtocolError(`expected '$' (bulk string header), got byte 0x${hex(r.line[0]!)}`, this.committed + hdrStart + 1);
      this.cmdStart = -hdrStart;
      const line = this.headerScratch;
      if (!this.readHeaderLine(r.line, 0, r.lineLen, line) || line.value < 0 || line.value > MAX_ARG_LENGTH) {
        throw new ProtocolError(`invalid bulk header in a command with a big argument`, this.committed + hdrStart + 1);
      }
      r.nextArg(line.value);
    }
    r.body!.add(chunk.subarray(from, p));
    r.length += p - from;
    if (r.complete) {
      this.committed += r.length;
      r.body!.end(this.committed, r.length);
      r.close();
      this.stage = Stage.COMMAND;
      this.cmdStart = p;
    }
    return p;
  }

  /**
   * Read `<prefix><digits>\r\n` at `pos`. Returns false when the line is not complete yet;
   * throws when it cannot become a valid header.
   */
  private readHeaderLine(buf: Buffer, pos: number, end: number, out: HeaderLine): boolean {
    let i = pos + 1;
    let value = 0;
    let digits = 0;
    let negative = false;
    if (i < end && buf[i] === 0x2d) {
      negative = true;
      i++;
    }
    for (; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x30 && c <= 0x39) {
        value = value * 10 + (c - 0x30);
        if (++digits > 15) throw new ProtocolError(`number in a '${String.fromCharCode(buf[pos]!)}' header is longer than 15 digits`, this.offsetAt(i));
        continue;
      }
      if (c !== CR) {
        throw new ProtocolError(`expected a digit or CR in a '${String.fromCharCode(buf[pos]!)}' header, got byte 0x${hex(c)}`, this.offsetAt(i));
      }
      if (digits === 0) throw new ProtocolError(`empty number in a '${String.fromCharCode(buf[pos]!)}' header`, this.offsetAt(i));
      if (i + 1 >= end) return false;
      if (buf[i + 1] !== LF) throw new ProtocolError(`expected LF after CR in a header, got byte 0x${hex(buf[i + 1]!)}`, this.offsetAt(i + 1));
      out.value = negative ? -value : value;
      out.next = i + 2;
      return true;
    }
    // Incomplete, and bounded: at most a sign and 15 digits can be pending.
    return false;
  }
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

/**
 * Cut the argument views of a complete command that the parser already validated
 * (`*<argc>\r\n` then `$<len>\r\n<data>\r\n` per argument), so no checks are repeated.
 */
function splitArgs(raw: Buffer, argc: number): Buffer[] {
  const args = new Array<Buffer>(argc);
  let pos = raw.indexOf(LF) + 1;
  for (let i = 0; i < argc; i++) {
    let len = 0;
    pos++; // '$'
    for (let c = raw[pos]!; c !== CR; c = raw[++pos]!) len = len * 10 + (c - 0x30);
    pos += 2;
    args[i] = raw.subarray(pos, pos + len);
    pos += len + 2;
  }
  return args;
}
