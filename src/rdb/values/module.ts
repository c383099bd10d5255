/**
 * Module values (type 7, MODULE_2) and MODULE_AUX records: a module type id, then a stream of
 * (opcode, value) pairs ending with opcode 0 (redis-internals §2.13). The values are opaque
 * without the module, so they are walked one opcode per unit and handed on as raw bytes.
 */
import { decodeModuleId } from '../module-id.js';
import type { RdbInput } from '../input.js';
import type { ValueContext, ValueReader } from './context.js';

const OP_EOF = 0;
const OP_SINT = 1;
const OP_UINT = 2;
const OP_FLOAT = 3;
const OP_DOUBLE = 4;
const OP_STRING = 5;

/** Step over one module opcode and its value; returns false at the EOF opcode. */
export function skipModuleOpcode(input: RdbInput): boolean {
  const at = input.offset;
  const op = input.len('module opcode');
  switch (op) {
    case OP_EOF:
      return false;
    case OP_SINT:
    case OP_UINT:
      input.lenBig('module integer');
      return true;
    case OP_FLOAT:
      input.skip(4);
      return true;
    case OP_DOUBLE:
      input.skip(8);
      return true;
    case OP_STRING:
      input.skipStr('module string');
      return true;
    default:
      throw input.error(`unknown module opcode ${op}`, at);
  }
}

export class ModuleReader implements ValueReader {
  private moduleId: bigint | null = null;
  private when = 0;
  /** MODULE_AUX (top level) rather than a key value. */
  private aux = false;

  constructor(private readonly ctx: ValueContext) {}

  begin(rdbType: number): void {
    this.aux = rdbType < 0;
    this.moduleId = null;
    this.when = 0;
  }

  step(): boolean {
    const input = this.ctx.input;
    if (this.moduleId === null) {
      const id = input.lenBig('module type id');
      let when = 0;
      if (this.aux) {
        const at = input.offset;
        const op = input.len('module aux "when" opcode');
        if (op !== OP_UINT) throw input.error(`module aux "when" must be a UINT opcode (2), got ${op}`, at);
        when = input.len('module aux "when"');
      }
      this.moduleId = id;
      this.when = when;
      return false;
    }
    if (skipModuleOpcode(input)) return false;
    const raw = this.ctx.capturedValue();
    const { name, encVersion } = decodeModuleId(this.moduleId);
    if (this.aux) {
      this.ctx.emit({ kind: 'moduleAux', moduleId: this.moduleId, moduleName: name, encVersion, when: this.when, payload: raw });
    } else {
      // raw starts with the type byte; the payload is what follows it.
      this.ctx.emit({ kind: 'module', moduleId: this.moduleId, moduleName: name, encVersion, payload: raw.subarray(1) });
    }
    return true;
  }

  describe(): string {
    return this.moduleId === null ? 'the module type id' : 'a module opcode';
  }
}
