/**
 * The rest of a replication-stream command whose big argument is relayed in pieces instead of
 * being assembled (ReplicationStreamParser's `bigArgBytes`): the parser hands out the command's
 * head (a StreamCommand with the arguments before the big one) and appends the wire bytes after
 * it here as they arrive, as views of the pushed chunks, until the command's last byte.
 */

/** Longest valid header line (`*`/`$`, sign, 15 digits) plus slack; bounds what is copied per header. */
export const MAX_HEADER_LINE = 24;

export class StreamBody {
  /** Index of the big argument: the head holds arguments 0 … argIndex - 1 and its header. */
  readonly argIndex: number;
  /** The command's last byte arrived: `offset` and `length` are final. */
  done = false;
  /** Replication offset of the command's last byte (once done). */
  offset = -1;
  /** Bytes of the whole command, head included (once done). */
  length = 0;
  private pieces: Buffer[] = [];

  constructor(argIndex: number) {
    this.argIndex = argIndex;
  }

  /** The wire bytes that arrived since the last take(), in order (views: do not modify). */
  take(): Buffer[] {
    const p = this.pieces;
    if (p.length > 0) this.pieces = [];
    return p;
  }

  /** @internal the parser's: the next bytes of the command. */
  add(piece: Buffer): void {
    if (piece.length > 0) this.pieces.push(piece);
  }

  /** @internal the parser's: the command ended at `offset`, `length` bytes in all. */
  end(offset: number, length: number): void {
    this.done = true;
    this.offset = offset;
    this.length = length;
  }
}

/** @internal where the rest of a command relayed in pieces stands (ReplicationStreamParser.feedBody). */
export class BodyState {
  body: StreamBody | null = null;
  /** Bytes left of the current argument, its CRLF included (0: a header is next). */
  data = 0;
  /** Arguments after the current one. */
  args = 0;
  /** Bytes of the command so far, head included. */
  length = 0;
  /** A header line being gathered. */
  readonly line = Buffer.alloc(MAX_HEADER_LINE + 2);
  lineLen = 0;

  get complete(): boolean {
    return this.data === 0 && this.args === 0 && this.lineLen === 0;
  }

  open(body: StreamBody, argLen: number, argsAfter: number, headLen: number): void {
    this.body = body;
    this.data = argLen + 2;
    this.args = argsAfter;
    this.length = headLen;
    this.lineLen = 0;
  }

  nextArg(len: number): void {
    this.data = len + 2;
    this.args--;
    this.lineLen = 0;
  }

  close(): void {
    this.body = null;
  }
}
