/**
 * Group the records of each key into one RdbKey, for callers that want whole values and know
 * their keys are small. Non-key records (header, aux, selectDb, function, keySkipped, end...)
 * pass through unchanged, in order.
 */
import type { KeyRecord } from './format.js';
import type { ArrayItem, HashItem, KeyHeader, RdbKey, RdbRecord, StreamGroup, StreamValue, ZsetItem } from './types.js';

export type { KeyRecord };

const KEY_KINDS: ReadonlySet<string> = new Set<KeyRecord['kind']>([
  'keyStart',
  'string',
  'stringPart',
  'listItems',
  'setItems',
  'zsetItems',
  'hashItems',
  'streamEntries',
  'streamMeta',
  'streamGroup',
  'streamPel',
  'streamConsumer',
  'arrayMeta',
  'arrayItems',
  'module',
  'keyEnd',
]);

export function isKeyRecord(rec: RdbRecord): rec is KeyRecord {
  return KEY_KINDS.has(rec.kind);
}

/** Synchronous assembler: push every record; returns the whole key at its keyEnd. */
export class KeyAssembler {
  private header: KeyHeader | null = null;
  private elements: unknown[] = [];
  private stringValue: Buffer | null = null;
  private stream: StreamValue | null = null;
  private group: StreamGroup | null = null;
  private moduleValue: Extract<RdbRecord, { kind: 'module' }> | null = null;
  private insertIndex: number | null = null;

  push(rec: RdbRecord): RdbKey | null {
    switch (rec.kind) {
      case 'keyStart':
        this.header = rec;
        this.elements = [];
        this.stringValue = null;
        this.stream = null;
        this.group = null;
        this.moduleValue = null;
        this.insertIndex = null;
        return null;
      case 'string':
        this.stringValue = rec.value;
        return null;
      case 'stringPart':
        // Whole values are what this assembler is for: a big string is gathered here.
        if (rec.offset === 0) this.stringValue = Buffer.allocUnsafe(rec.total);
        rec.value.copy(this.stringValue!, rec.offset);
        return null;
      case 'listItems':
      case 'setItems':
      case 'zsetItems':
      case 'hashItems':
      case 'arrayItems':
        for (const it of rec.items) this.elements.push(it);
        return null;
      case 'arrayMeta':
        this.insertIndex = rec.insertIndex;
        return null;
      case 'streamEntries':
        for (const e of rec.entries) this.elements.push(e);
        return null;
      case 'streamMeta':
        this.stream = { entries: this.elements as StreamValue['entries'], meta: rec.meta, groups: [] };
        return null;
      case 'streamGroup':
        this.group = { name: rec.group.name, lastId: rec.group.lastId, entriesRead: rec.group.entriesRead, pel: [], consumers: [] };
        this.stream?.groups.push(this.group);
        return null;
      case 'streamPel':
        if (this.group) for (const e of rec.entries) this.group.pel.push(e);
        return null;
      case 'streamConsumer':
        this.group?.consumers.push(rec.consumer);
        return null;
      case 'module':
        this.moduleValue = rec;
        return null;
      case 'keyEnd':
        return this.finishKey(rec.raw);
      case 'keySkipped':
        this.header = null;
        return null;
      default:
        return null;
    }
  }

  private finishKey(raw: Buffer | null): RdbKey | null {
    const h = this.header;
    if (h === null) return null;
    this.header = null;
    const { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset } = h;
    switch (h.type) {
      case 'string':
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'string', value: this.stringValue ?? Buffer.alloc(0) };
      case 'list':
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'list', value: this.elements as Buffer[] };
      case 'set':
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'set', value: this.elements as Buffer[] };
      case 'zset':
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'zset', value: this.elements as ZsetItem[] };
      case 'hash':
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'hash', value: this.elements as HashItem[] };
      case 'array':
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'array', value: this.elements as ArrayItem[], insertIndex: this.insertIndex };
      case 'stream': {
        const value = this.stream ?? {
          entries: this.elements as StreamValue['entries'],
          meta: { length: 0, lastId: '0-0', firstId: null, maxDeletedId: null, entriesAdded: null },
          groups: [],
        };
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'stream', value };
      }
      case 'module': {
        const m = this.moduleValue;
        if (m === null) return null;
        const value = { moduleId: m.moduleId, moduleName: m.moduleName, encVersion: m.encVersion, payload: m.payload };
        return { db, key, rdbType, expireMs, lruIdle, lfuFreq, offset, raw, type: 'module', value };
      }
    }
  }
}

/** Async version: whole keys plus the non-key records, in file order. */
export async function* assembleKeys(records: AsyncIterable<RdbRecord>): AsyncGenerator<RdbKey | Exclude<RdbRecord, KeyRecord>> {
  const asm = new KeyAssembler();
  for await (const rec of records) {
    if (isKeyRecord(rec)) {
      const key = asm.push(rec);
      if (key !== null) yield key;
    } else {
      if (rec.kind === 'keySkipped') asm.push(rec);
      yield rec;
    }
  }
}
