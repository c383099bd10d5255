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
 */
import { ProtocolError } from '../errors.js';

export interface StreamCommand {
  /** Arguments, binary (views into the wire bytes; do not modify). */
  args: Buffer[];
  /** Lower-cased command name (args[0]). */
  name: string;
  /** Replication offset of the command's LAST byte: the applied offset once this command is applied. */
  offset: number;
  /** Bytes of the command on the wire. */
  length: number;
  /** Exact wire bytes (a view; copy only if needed). */
  raw: Buffer;
}

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;

/** Longest valid header line (`*`/`$`, sign, 15 digits) plus slack; bounds what is copied per header. */
const MAX_HEADER_LINE = 24;
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

  // --- state of the command being parsed, positions relative to the buffer being parsed ---
  private stage: Stage = Stage.COMMAND;
  private cmdStart = 0;
  private argc = 0;
  private argStarts: number[] = [];
  private argLens: number[] = [];
  private argLen = 0;
  private pos = 0;

  /** Accumulation buffer holding exactly the bytes of a command cut by a chunk boundary. */
  private acc: Buffer | null = null;
  private accLen = 0;

  private readonly headerScratch: HeaderLine = { value: 0, next: -1 };

  /**
   * @param startOffset offset of the last byte before the stream: the +FULLRESYNC offset,
   *   or (after +CONTINUE) the PSYNC offset - 1.
   */
  constructor(startOffset: number) {
    if (!Number.isSafeInteger(startOffset) || startOffset < -1) {
      throw new RangeError(`ReplicationStreamParser: bad start offset ${startOffset}`);
    }
    this.committed = startOffset;
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
      if (this.acc !== null) from = this.feedAccumulator(chunk, out);
      if (from < chunk.length) this.parseChunk(chunk, from, out);
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
  private feedAccumulator(chunk: Buffer, out: StreamCommand[]): number {
    let cpos = 0;
    while (this.acc !== null && cpos < chunk.length) {
      let want: number;
      if (this.stage === Stage.BULK_DATA) {
        want = this.argStarts[this.argStarts.length - 1]! + this.argLen + 2 - this.accLen;
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
      if (this.stage === Stage.COMMAND && this.pos === this.accLen) {
        // The held command completed; its views stay valid, the buffer is never written again.
        this.acc = null;
        this.accLen = 0;
        this.pos = 0;
        this.cmdStart = 0;
      }
    }
    return cpos;
  }

  private parseChunk(chunk: Buffer, from: number, out: StreamCommand[]): void {
    this.pos = from;
    this.cmdStart = from;
    this.run(chunk, chunk.length, out);
    if (this.stage === Stage.COMMAND && this.pos === chunk.length) return;
    // Incomplete command at the end: move its bytes into a fresh accumulator, rebased to 0.
    const base = this.cmdStart;
    const have = chunk.length - base;
    const capacity = this.growTarget(have, 0, base);
    const acc = Buffer.allocUnsafe(capacity);
    chunk.copy(acc, 0, base, chunk.length);
    for (let i = 0; i < this.argStarts.length; i++) this.argStarts[i]! -= base;
    this.pos -= base;
    this.cmdStart = 0;
    this.acc = acc;
    this.accLen = have;
  }

  private ensureCapacity(needed: number): void {
    const acc = this.acc!;
    if (needed <= acc.length) return;
    const capacity = this.growTarget(needed, acc.length, 0);
    const grown = Buffer.allocUnsafe(capacity);
    acc.copy(grown, 0, 0, this.accLen);
    this.acc = grown;
  }

  /**
   * Capacity for the accumulator: at least `needed`, doubling (so copies stay linear),
   * but never more than the current command can use when its argument length is known
   * (`base` = position of the command start in the buffer the argument positions refer to).
   * Doubling instead of allocating a declared length up front keeps a garbage length
   * from allocating gigabytes before any of its bytes arrived.
   */
  private growTarget(needed: number, current: number, base: number): number {
    let capacity = Math.max(needed, current * 2, 256);
    if (this.stage === Stage.BULK_DATA) {
      const argEnd = this.argStarts[this.argStarts.length - 1]! - base + this.argLen + 2;
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
          this.argStarts.length = 0;
          this.argLens.length = 0;
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
          throw new ProtocolError(`expected '$' (bulk string header) for argument ${this.argStarts.length + 1} of ${this.argc}, got byte 0x${hex(buf[pos]!)}`, this.offsetAt(pos));
        }
        if (!this.readHeaderLine(buf, pos, end, line)) break;
        if (line.value < 0 || line.value > MAX_ARG_LENGTH) {
          throw new ProtocolError(`invalid bulk length ${line.value} (expected 0..${MAX_ARG_LENGTH})`, this.offsetAt(pos));
        }
        this.argLen = line.value;
        this.argStarts.push(line.next);
        pos = line.next;
        this.stage = Stage.BULK_DATA;
      }
      // Stage.BULK_DATA
      const start = this.argStarts[this.argStarts.length - 1]!;
      const dataEnd = start + this.argLen;
      if (dataEnd + 2 > end) {
        pos = Math.min(end, dataEnd);
        break;
      }
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) {
        const at = buf[dataEnd] !== CR ? dataEnd : dataEnd + 1;
        throw new ProtocolError(`expected CRLF after a ${this.argLen}-byte bulk string, got byte 0x${hex(buf[at]!)}`, this.offsetAt(at));
      }
      this.argLens.push(this.argLen);
      pos = dataEnd + 2;
      if (this.argStarts.length < this.argc) {
        this.stage = Stage.BULK_HEADER;
        continue;
      }
      this.emit(buf, pos, out);
    }
    this.pos = pos;
  }

  private emit(buf: Buffer, cmdEnd: number, out: StreamCommand[]): void {
    const n = this.argc;
    const args: Buffer[] = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) {
      const s = this.argStarts[i]!;
      args[i] = buf.subarray(s, s + this.argLens[i]!);
    }
    const length = cmdEnd - this.cmdStart;
    this.committed += length;
    out.push({ args, name: commandName(args[0]!), offset: this.committed, length, raw: buf.subarray(this.cmdStart, cmdEnd) });
    this.stage = Stage.COMMAND;
    this.cmdStart = cmdEnd;
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

/** Lower-cased command name (sources keep the client's case: `set`, `SET`, `Set`). */
function commandName(arg: Buffer): string {
  return arg.toString('latin1').toLowerCase();
}
