/**
 * ARRAY values (type 28, Redis 8.8; redis-internals §2.10): len(count > 0), len(flag),
 * [len(insert index)], then count × (len(index), len(tag), value by tag).
 */
import type { ArrayItem } from '../types.js';
import type { ValueContext, ValueReader } from './context.js';

const TAG_SDS = 0;
const TAG_INT = 1;
const TAG_FLOAT = 2;
const TAG_SMALLSTR = 3;

function floatText(d: number): string {
  if (d === Infinity) return 'inf';
  if (d === -Infinity) return '-inf';
  if (Object.is(d, -0)) return '-0';
  return String(d);
}

export class ArrayReader implements ValueReader {
  private remaining = -1;
  private total = 0;
  constructor(private readonly ctx: ValueContext) {}

  begin(): void {
    this.remaining = -1;
    this.ctx.itemKind('arrayItems');
  }

  step(): boolean {
    const input = this.ctx.input;
    if (this.remaining < 0) {
      const at = input.offset;
      const n = input.len('array element count');
      if (n === 0) throw input.error('array element count is 0', at);
      const flagAt = input.offset;
      const flag = input.len('array insert-index flag');
      if (flag > 1) throw input.error(`array insert-index flag ${flag} is not 0 or 1`, flagAt);
      const insertIndex = flag === 1 ? input.len('array insert index') : null;
      this.remaining = n;
      this.total = n;
      this.ctx.emit({ kind: 'arrayMeta', insertIndex });
      return false;
    }
    const index = input.len('array index');
    const tagAt = input.offset;
    const tag = input.len('array element tag');
    let item: ArrayItem;
    switch (tag) {
      case TAG_SDS:
      case TAG_SMALLSTR: {
        const at = input.offset;
        const value = input.str('array element');
        if (tag === TAG_SMALLSTR && value.length > 7) throw input.error(`array small string is ${value.length} bytes (at most 7)`, at);
        item = { index, value, encoding: 'string' };
        break;
      }
      case TAG_INT:
        item = { index, value: Buffer.from(input.i64leBig().toString(), 'latin1'), encoding: 'int' };
        break;
      case TAG_FLOAT: {
        const at = input.offset;
        const d = input.f64le();
        if (Number.isNaN(d)) throw input.error('array float element is NaN', at);
        item = { index, value: Buffer.from(floatText(d), 'latin1'), encoding: 'float' };
        break;
      }
      default:
        throw input.error(`unknown array element tag ${tag}`, tagAt);
    }
    this.ctx.addItem(item, item.value.length + 8);
    return --this.remaining === 0;
  }

  describe(): string {
    return this.remaining < 0 ? 'the array header' : `array element ${this.total - this.remaining + 1} of ${this.total}`;
  }
}
