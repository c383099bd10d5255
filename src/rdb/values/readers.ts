/** One reader per value layout, created once per decoder and reused for every key. */
import { ArrayReader } from './array.js';
import type { ValueContext, ValueReader } from './context.js';
import { ModuleReader } from './module.js';
import { BlobReader, QuicklistReader } from './packed.js';
import { HashReader, SequenceReader, StringReader, ZsetReader } from './plain.js';
import { StreamReader } from './stream.js';

export class ValueReaders {
  readonly module: ModuleReader;
  private readonly string: StringReader;
  private readonly sequence: SequenceReader;
  private readonly zset: ZsetReader;
  private readonly hash: HashReader;
  private readonly blob: BlobReader;
  private readonly quicklist: QuicklistReader;
  private readonly stream: StreamReader;
  private readonly array: ArrayReader;

  constructor(ctx: ValueContext) {
    this.string = new StringReader(ctx);
    this.sequence = new SequenceReader(ctx);
    this.zset = new ZsetReader(ctx);
    this.hash = new HashReader(ctx);
    this.blob = new BlobReader(ctx);
    this.quicklist = new QuicklistReader(ctx);
    this.stream = new StreamReader(ctx);
    this.module = new ModuleReader(ctx);
    this.array = new ArrayReader(ctx);
  }

  /** The reader for object type `t` (a type valueTypeOf() accepts). */
  for(t: number): ValueReader {
    switch (t) {
      case 0:
        return this.string;
      case 1:
      case 2:
        return this.sequence;
      case 3:
      case 5:
        return this.zset;
      case 4:
      case 22:
      case 24:
        return this.hash;
      case 7:
        return this.module;
      case 14:
      case 18:
        return this.quicklist;
      case 15:
      case 19:
      case 21:
      case 26:
      case 27:
        return this.stream;
      case 28:
        return this.array;
      default: // 9-13, 16, 17, 20, 23, 25: one compact blob
        return this.blob;
    }
  }
}
