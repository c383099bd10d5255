/**
 * `--format resp`: the commands that rebuild the dataset, as RESP, ready for
 * `redis-cli --pipe`. The translation itself is ../translate/translator.ts; this only writes.
 */
import type { RdbRecord } from '../rdb/types.js';
import { Translator, type Command } from '../translate/translator.js';
import type { TranslateOptions } from '../translate/options.js';
import type { OutputBuffer } from './output.js';

export class RespWriter {
  readonly translator: Translator;
  private readonly out: OutputBuffer;
  private readonly scratch: Command[] = [];
  /** Commands written. */
  commands = 0;

  constructor(out: OutputBuffer, opts: TranslateOptions) {
    this.out = out;
    this.translator = new Translator(opts);
  }

  push(rec: RdbRecord): void {
    const cmds = this.translator.push(rec, this.scratch);
    if (cmds.length === 0) return;
    for (const c of cmds) this.out.command(c);
    this.commands += cmds.length;
    cmds.length = 0;
  }
}
