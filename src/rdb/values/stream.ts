/**
 * Streams (types 15, 19, 21, 26, 27; redis-internals §2.12). Units: one listpack node, the
 * metadata, one group header, one PEL entry, one consumer header, one consumer PEL id, one
 * NACK id, one IDMP producer / entry. IDs are uint64 pairs: numbers while they are exact,
 * BigInt only when a part reaches 2^53 (BigInt is confined to this file).
 */
import type { StreamConsumer, StreamEntry, StreamId, StreamPelEntry } from '../types.js';
import { BlobError } from '../structure/blob-error.js';
import { ListpackCursor } from '../structure/listpack.js';
import type { ValueContext, ValueReader } from './context.js';

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;
const U64 = 1n << 64n;

const FLAG_DELETED = 1;
const FLAG_SAMEFIELDS = 2;

const enum Phase {
  NodeCount,
  Node,
  Meta,
  Group,
  Pel,
  ConsumerCount,
  Consumer,
  ConsumerPel,
  NackCount,
  Nack,
  IdmpHead,
  Producer,
  ProducerEntry,
  IdmpTail,
}

/** A uint64 as a number when exact, else a bigint. */
type U64Value = number | bigint;

function u64be(buf: Buffer, at: number): U64Value {
  const hi = buf.readUInt32BE(at);
  const lo = buf.readUInt32BE(at + 4);
  if (hi < 0x200000) return hi * TWO_POW_32 + lo;
  return buf.readBigUInt64BE(at);
}

/** A raw 16-byte big-endian stream ID as "ms-seq". */
export function rawStreamId(buf: Buffer, at: number): StreamId {
  return `${u64be(buf, at)}-${u64be(buf, at + 8)}`;
}

/** (base + diff) modulo 2^64, exact. */
function addU64(base: U64Value, diff: number | bigint): U64Value {
  if (typeof base === 'number' && typeof diff === 'number') {
    const r = base + diff;
    if (r >= 0 && r < TWO_POW_53) return r;
  }
  let r = (BigInt(base) + BigInt(diff)) % U64;
  if (r < 0n) r += U64;
  return r < BigInt(TWO_POW_53) ? Number(r) : r;
}

export class StreamReader implements ValueReader {
  private phase = Phase.NodeCount;
  private rdbType = 15;
  private remaining = 0;
  private groupsLeft = 0;
  private pelLeft = 0;
  private consumersLeft = 0;
  private producersLeft = 0;
  private consumer: StreamConsumer | null = null;

  constructor(private readonly ctx: ValueContext) {}

  begin(rdbType: number): void {
    this.rdbType = rdbType;
    this.phase = Phase.NodeCount;
    this.consumer = null;
    this.ctx.itemKind('streamEntries');
  }

  /** A stream ID written as two RDB lengths (uint64 each). */
  private lenId(what: string): StreamId {
    const input = this.ctx.input;
    const ms = input.lenBig(`${what} (ms)`);
    const seq = input.lenBig(`${what} (seq)`);
    return `${ms}-${seq}`;
  }

  private rawId(): StreamId {
    const input = this.ctx.input;
    input.ensure(16);
    const at = input.p;
    input.p += 16;
    return rawStreamId(input.buf, at);
  }

  step(): boolean {
    const ctx = this.ctx;
    const input = ctx.input;
    switch (this.phase) {
      case Phase.NodeCount: {
        const n = input.len('stream listpack count');
        this.remaining = n;
        this.phase = n === 0 ? Phase.Meta : Phase.Node;
        return false;
      }
      case Phase.Node: {
        const keyAt = input.offset;
        const nodeKey = input.str('stream node key');
        const lpAt = input.offset;
        const lp = input.str('stream node listpack');
        if (--this.remaining === 0) this.phase = Phase.Meta;
        if (ctx.corrupt !== null) return false;
        try {
          if (nodeKey.length !== 16) throw new BlobError(`stream node key is ${nodeKey.length} bytes, expected 16`, keyAt);
          this.decodeNode(nodeKey, lp, lpAt);
        } catch (e) {
          if (!(e instanceof BlobError)) throw e;
          ctx.blobError(e);
        }
        return false;
      }
      case Phase.Meta: {
        const length = input.len('stream length');
        const lastId = this.lenId('stream last id');
        let firstId: StreamId | null = null;
        let maxDeletedId: StreamId | null = null;
        let entriesAdded: number | null = null;
        if (this.rdbType >= 19) {
          firstId = this.lenId('stream first id');
          maxDeletedId = this.lenId('stream max deleted id');
          entriesAdded = input.len('stream entries added');
        }
        const groups = input.len('stream consumer group count');
        ctx.flushItems();
        ctx.emit({ kind: 'streamMeta', meta: { length, lastId, firstId, maxDeletedId, entriesAdded } });
        this.groupsLeft = groups;
        return this.afterGroups();
      }
      case Phase.Group: {
        const name = input.str('consumer group name');
        const lastId = this.lenId('consumer group last id');
        let entriesRead: number | null = null;
        if (this.rdbType >= 19) {
          const v = input.lenOrMax('consumer group entries read');
          entriesRead = v < 0 ? null : v;
        }
        const pel = input.len('consumer group PEL size');
        ctx.emit({ kind: 'streamGroup', group: { name, lastId, entriesRead } });
        ctx.itemKind('streamPel');
        this.pelLeft = pel;
        this.phase = pel === 0 ? Phase.ConsumerCount : Phase.Pel;
        return false;
      }
      case Phase.Pel: {
        const id = this.rawId();
        const deliveryTimeMs = input.i64le('PEL delivery time');
        const deliveryCount = input.len('PEL delivery count');
        const e: StreamPelEntry = { id, deliveryTimeMs, deliveryCount };
        ctx.addItem(e, 32);
        if (--this.pelLeft === 0) this.phase = Phase.ConsumerCount;
        return false;
      }
      case Phase.ConsumerCount: {
        const n = input.len('consumer count');
        ctx.flushItems();
        this.consumersLeft = n;
        if (n > 0) this.phase = Phase.Consumer;
        else return this.endGroup();
        return false;
      }
      case Phase.Consumer: {
        const name = input.str('consumer name');
        const seenTimeMs = input.i64le('consumer seen time');
        const activeTimeMs = this.rdbType >= 21 ? input.i64le('consumer active time') : null;
        const pel = input.len('consumer PEL size');
        const consumer: StreamConsumer = { name, seenTimeMs, activeTimeMs, pel: [] };
        this.pelLeft = pel;
        if (pel > 0) {
          this.consumer = consumer;
          this.phase = Phase.ConsumerPel;
          return false;
        }
        ctx.emit({ kind: 'streamConsumer', consumer });
        return this.endConsumer();
      }
      case Phase.ConsumerPel: {
        const id = this.rawId();
        const c = this.consumer!;
        c.pel.push(id);
        if (--this.pelLeft > 0) return false;
        this.consumer = null;
        ctx.emit({ kind: 'streamConsumer', consumer: c });
        return this.endConsumer();
      }
      case Phase.NackCount: {
        const n = input.len('NACK count');
        this.pelLeft = n;
        if (n > 0) this.phase = Phase.Nack;
        else return this.nextGroup();
        return false;
      }
      case Phase.Nack: {
        // XNACK zone ids (type 27): parsed to stay in sync, not part of the records.
        input.skip(16);
        if (--this.pelLeft > 0) return false;
        return this.nextGroup();
      }
      case Phase.IdmpHead: {
        input.len('IDMP duration');
        input.len('IDMP max entries');
        const producers = input.len('IDMP producer count');
        this.producersLeft = producers;
        this.phase = producers > 0 ? Phase.Producer : Phase.IdmpTail;
        return false;
      }
      case Phase.Producer: {
        input.str('IDMP producer id');
        const n = input.len('IDMP entry count');
        this.remaining = n;
        if (n > 0) this.phase = Phase.ProducerEntry;
        else this.nextProducer();
        return false;
      }
      case Phase.ProducerEntry: {
        input.str('IDMP iid');
        input.lenBig('IDMP entry id (ms)');
        input.lenBig('IDMP entry id (seq)');
        if (--this.remaining === 0) this.nextProducer();
        return false;
      }
      case Phase.IdmpTail: {
        input.lenBig('IDMP iids added');
        input.lenBig('IDMP iids duplicates');
        return true;
      }
    }
  }

  private nextProducer(): void {
    this.phase = --this.producersLeft > 0 ? Phase.Producer : Phase.IdmpTail;
  }

  private endConsumer(): boolean {
    if (--this.consumersLeft > 0) {
      this.phase = Phase.Consumer;
      return false;
    }
    return this.endGroup();
  }

  private endGroup(): boolean {
    if (this.rdbType >= 27) {
      this.phase = Phase.NackCount;
      return false;
    }
    return this.nextGroup();
  }

  private nextGroup(): boolean {
    this.groupsLeft--;
    return this.afterGroups();
  }

  /** Either the next group, the IDMP section (type >= 26), or the end of the value. */
  private afterGroups(): boolean {
    if (this.groupsLeft > 0) {
      this.phase = Phase.Group;
      return false;
    }
    if (this.rdbType >= 26) {
      this.phase = Phase.IdmpHead;
      return false;
    }
    return true;
  }

  /** Turn one node (master id + listpack) into entries; throws BlobError. */
  private decodeNode(nodeKey: Buffer, lp: Buffer, abs: number): void {
    const masterMs = u64be(nodeKey, 0);
    const masterSeq = u64be(nodeKey, 8);
    const c = new ListpackCursor(lp, abs);
    const need = (what: string): void => {
      if (!c.next()) throw c.error(`stream listpack ends before ${what}`);
    };
    need('the master entry count');
    const count = c.smallInt('master entry count');
    need('the deleted count');
    const deleted = c.smallInt('deleted count');
    need('the master field count');
    const numFields = c.smallInt('master field count');
    // Every listpack element takes at least 2 bytes, which bounds any honest count.
    if (numFields > lp.length) throw c.error(`master field count ${numFields} cannot fit the listpack`);
    const masterFields: Buffer[] = [];
    for (let i = 0; i < numFields; i++) {
      need('a master field');
      masterFields.push(c.value());
    }
    need('the master entry terminator');
    if (c.integer() !== 0) throw c.error('master entry terminator is not 0');
    const entries: StreamEntry[] = [];
    let seen = 0;
    while (c.next()) {
      const flags = c.smallInt('entry flags');
      need('the entry ms delta');
      const msDiff = c.integer();
      need('the entry seq delta');
      const seqDiff = c.integer();
      let fields: Buffer[];
      let expectedCount: number;
      if (flags & FLAG_SAMEFIELDS) {
        fields = new Array<Buffer>(numFields * 2);
        for (let i = 0; i < numFields; i++) {
          need('an entry value');
          fields[2 * i] = masterFields[i]!;
          fields[2 * i + 1] = c.value();
        }
        expectedCount = 3 + numFields;
      } else {
        need('the entry field count');
        const nf = c.smallInt('entry field count');
        if (nf > lp.length) throw c.error(`entry field count ${nf} cannot fit the listpack`);
        fields = new Array<Buffer>(nf * 2);
        for (let i = 0; i < nf * 2; i++) {
          need('an entry field or value');
          fields[i] = c.value();
        }
        expectedCount = 4 + 2 * nf;
      }
      need('the entry lp-count');
      if (c.integer() !== expectedCount) throw c.error(`stream entry lp-count is ${String(c.integer())}, expected ${expectedCount}`);
      seen++;
      if (flags & FLAG_DELETED) continue;
      const id = `${addU64(masterMs, msDiff)}-${addU64(masterSeq, seqDiff)}`;
      entries.push({ id, fields });
    }
    if (seen !== count + deleted) throw new BlobError(`stream node holds ${seen} entries, its master entry says ${count} + ${deleted} deleted`, abs);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      let bytes = 16;
      for (let j = 0; j < e.fields.length; j++) bytes += e.fields[j]!.length;
      this.ctx.addItem(e, bytes);
    }
  }

  describe(): string {
    switch (this.phase) {
      case Phase.NodeCount:
        return 'the stream listpack count';
      case Phase.Node:
        return 'a stream listpack node';
      case Phase.Meta:
        return 'the stream metadata';
      case Phase.Group:
        return 'a consumer group';
      case Phase.Pel:
        return 'a consumer group PEL entry';
      case Phase.ConsumerCount:
        return 'the consumer count';
      case Phase.Consumer:
        return 'a consumer';
      case Phase.ConsumerPel:
        return "a consumer's PEL id";
      case Phase.NackCount:
      case Phase.Nack:
        return 'the NACK list';
      default:
        return 'the IDMP section';
    }
  }
}
