/**
 * Fast path in front of redis-parser for the replies that dominate a pipelined write load:
 * simple strings (`+OK`, `+QUEUED`) and integers (`:1`). Their value is never looked at when they
 * answer a plain command or a command queued inside MULTI, so they are counted straight off the
 * chunk instead of being turned into JS strings/numbers through the parser's callbacks.
 *
 * Anything else (errors, bulk strings, arrays, or a simple reply whose value matters: a control-
 * plane call, EXEC, an unexpected reply) ends the fast path and the rest of the chunk goes to
 * redis-parser, so both paths see every byte exactly once and in order. A simple reply cut at the
 * end of a chunk is carried (a few bytes) to the next one, so that the parser is not left holding a
 * partial reply that would force every following chunk through it.
 */
import type RedisParser from 'redis-parser';

const PLUS = 43; // '+'
const COLON = 58; // ':'
const CR = 13;
/** A carried partial reply longer than this goes to the parser (a long status line is rare). */
const CARRY_LIMIT = 256;

/** The part of redis-parser's internal state the fast path must respect: non-null while it holds a partial reply. */
interface ParserState {
  buffer: Buffer | null;
}

export interface SimpleReplySink {
  /** True when the next reply would be counted without reading its value. */
  acceptsSimple(): boolean;
  /** Credits one simple reply to its command. Returns false when reply handling must stop (writer failed or closed). */
  simpleReply(): boolean;
}

export class SimpleReplyScanner {
  /** A simple reply cut at the end of the previous chunk (the parser holds nothing meanwhile). */
  private carry: Buffer | undefined;

  constructor(
    private readonly parser: RedisParser,
    private readonly sink: SimpleReplySink,
  ) {}

  /** Consumes one chunk of the reply stream. */
  execute(chunk: Buffer): void {
    let pos = 0;
    if (this.carry !== undefined) {
      pos = this.finishCarry(chunk);
      if (pos < 0) return;
    }
    const len = chunk.length;
    if ((this.parser as unknown as ParserState).buffer === null) {
      const sink = this.sink;
      while (pos < len) {
        const type = chunk[pos]!;
        if ((type !== PLUS && type !== COLON) || !sink.acceptsSimple()) break;
        // Like redis-parser: the line ends at the first CR, and the byte after it (LF) must be in the buffer.
        let cr = pos + 1;
        while (cr < len && chunk[cr] !== CR) cr++;
        if (cr + 1 >= len) {
          if (len - pos > CARRY_LIMIT) break;
          this.carry = Buffer.from(chunk.subarray(pos));
          return;
        }
        pos = cr + 2;
        if (!sink.simpleReply()) return;
      }
    }
    if (pos < len) this.parser.execute(pos === 0 ? chunk : chunk.subarray(pos));
  }

  /** Completes the carried reply with the start of `chunk`; returns where the rest of `chunk` starts, or -1 when all of it was taken. */
  private finishCarry(chunk: Buffer): number {
    const carry = this.carry!;
    let end: number;
    if (carry[carry.length - 1] === CR) {
      if (chunk.length === 0) return -1;
      end = 1;
    } else {
      let cr = 0;
      while (cr < chunk.length && chunk[cr] !== CR) cr++;
      if (cr + 1 >= chunk.length) {
        const joined = Buffer.concat([carry, chunk]);
        if (joined.length > CARRY_LIMIT) {
          this.carry = undefined;
          this.parser.execute(joined);
        } else {
          this.carry = joined;
        }
        return -1;
      }
      end = cr + 2;
    }
    this.carry = undefined;
    if (!this.sink.acceptsSimple()) {
      // Only when the writer stopped meanwhile: let the parser see the bytes as it would have.
      this.parser.execute(Buffer.concat([carry, chunk]));
      return -1;
    }
    return this.sink.simpleReply() ? end : -1;
  }
}
