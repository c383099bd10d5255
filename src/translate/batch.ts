/**
 * Packs a collection's elements into variadic commands (RPUSH/SADD/ZADD/HSET key ...), at most
 * `maxElements` elements (a pair counts as one) or about `maxBytes` value bytes per command,
 * and follows each HSET with the HPEXPIREAT commands for the TTL fields it wrote, grouped by
 * expiry time.
 */
import type { Arg } from '../resp/encode.js';
import { ARG_OVERHEAD, argBytes } from './format.js';
import type { Command } from './command.js';

const NO_KEY = { key: Buffer.alloc(0) };

export class CommandBatcher {
  private readonly maxElements: number;
  private readonly maxBytes: number;
  private readonly emit: (cmd: Command) => void;
  /** The key's header: its name is read when a command needs it (a string key never does). */
  private header: { readonly key: Buffer } = NO_KEY;
  private pending: Command | null = null;
  private items = 0;
  private bytes = 0;
  /** expiry ms -> fields written in the open command (or earlier) whose TTL is not sent yet. */
  private ttls: Map<number, Buffer[]> | null = null;

  constructor(maxElements: number, maxBytes: number, emit: (cmd: Command) => void) {
    this.maxElements = maxElements;
    this.maxBytes = maxBytes;
    this.emit = emit;
  }

  /** Start a key: drops anything pending from the previous one. */
  reset(header: { readonly key: Buffer }): void {
    this.header = header;
    this.pending = null;
    this.ttls = null;
  }

  /** Add one element (`b` null) or pair to the open `verb` command; sends it when full. */
  add(verb: string, a: Arg, b: Arg | null): void {
    if (this.pending === null) {
      this.pending = [verb, this.header.key];
      this.items = 0;
      this.bytes = 0;
    }
    this.pending.push(a);
    this.bytes += argBytes(a) + ARG_OVERHEAD;
    if (b !== null) {
      this.pending.push(b);
      this.bytes += argBytes(b) + ARG_OVERHEAD;
    }
    if (++this.items >= this.maxElements || this.bytes >= this.maxBytes) this.flush();
  }

  /** A field TTL; call before `add` of the field so the flush that writes it sends it. */
  fieldTtl(field: Buffer, expireMs: number): void {
    this.ttls ??= new Map();
    const fields = this.ttls.get(expireMs);
    if (fields) fields.push(field);
    else this.ttls.set(expireMs, [field]);
  }

  /** Send the open command, then the TTLs of its fields. */
  flush(): void {
    if (this.pending !== null) {
      this.emit(this.pending);
      this.pending = null;
    }
    const ttls = this.ttls;
    if (ttls === null || ttls.size === 0) return;
    for (const [ms, fields] of ttls) {
      for (let i = 0; i < fields.length; i += this.maxElements) {
        const part = fields.slice(i, i + this.maxElements);
        this.emit(['HPEXPIREAT', this.header.key, ms, 'FIELDS', part.length, ...part]);
      }
    }
    ttls.clear();
  }
}
