/**
 * JSON Lines export: one object per key, written in pieces as the decoder's records arrive,
 * so a 10-million-element list is never held whole:
 *
 *   {"db":0,"key":"k","type":"list","rdb_type":18,"expire_ms":null,"value":["a","b"]}
 *
 * Per-key fields follow ../shared/rdb-corpus/README.md: byte strings per ./json-bytes.ts;
 * list values in order; set/hash/zset in file order; zset `[[member, score]]`; hash
 * `[[field, value]]` plus `field_expire_ms` `[[field, ms]]` for fields with a TTL; streams as
 * an object with `entries`, `length`, `last_id`, `max_deleted_id`, `entries_added`,
 * `first_id`, `groups`; `lru_idle_s` / `lfu_freq` only when the file has them; module values
 * as `"type":"module","module":name,"value":{"b64":payload}`; Redis 8.8 arrays as
 * `"type":"array","insert_index":n,"value":[[index, value], ...]`. AUX fields and functions are
 * lines without a `key`: `{"aux":k,"value":v}`, `{"function":code}`.
 *
 * Held in memory per key: the field TTL pairs of a hash, and one consumer group's PEL and
 * consumers (a group's PEL lists its owner only in the consumer records that follow it).
 * A long string value (`stringPart` records) is written as it comes by ./json-bytes-stream.ts,
 * which keeps a text one in a temporary file until its last byte.
 *
 * Empty collections (which Redis skips on load) print nothing and are counted. A key the
 * decoder skips as corrupt is removed from the output when its start is still buffered,
 * else its object is closed early and marked `"corrupt": "<message>"`.
 */
import type { KeyHeader, RdbRecord, StreamConsumer, StreamGroupHeader, StreamMeta, StreamPelEntry } from '../rdb/types.js';
import { jsonScore, writeJsonBytes } from './json-bytes.js';
import { JsonBytesStream } from './json-bytes-stream.js';
import type { OutputBuffer, OutputMark } from './output.js';

export interface JsonlStats {
  keys: number;
  emptySkipped: number;
  corruptSkipped: number;
}

interface GroupBuffer {
  header: StreamGroupHeader;
  pel: StreamPelEntry[];
  consumers: StreamConsumer[];
}

export class JsonlWriter {
  readonly stats: JsonlStats = { keys: 0, emptySkipped: 0, corruptSkipped: 0 };
  private readonly out: OutputBuffer;

  private cur: KeyHeader | null = null;
  private started = false;
  private mark: OutputMark | null = null;
  /** Closing brackets of the structures open in the current key, innermost last. */
  private closers: string[] = [];
  /** Elements written in the innermost open array (for commas). */
  private count = 0;
  private fieldTtls: [Buffer, number][] = [];
  private streamPhase: 'entries' | 'groups' = 'entries';
  private group: GroupBuffer | null = null;
  private groupsWritten = 0;
  /** A long string value being written as its pieces come. */
  private longString: JsonBytesStream | null = null;

  /** `tmpDir`: where a long text string waits until its last byte says it is text (default: the OS temp dir). */
  constructor(
    out: OutputBuffer,
    private readonly tmpDir?: string,
  ) {
    this.out = out;
  }

  push(rec: RdbRecord): void {
    const out = this.out;
    switch (rec.kind) {
      case 'aux':
        out.ascii('{"aux":');
        writeJsonBytes(out, rec.key);
        out.ascii(',"value":');
        writeJsonBytes(out, rec.value);
        out.ascii('}\n');
        return;
      case 'function':
        out.ascii('{"function":');
        writeJsonBytes(out, rec.code);
        out.ascii('}\n');
        return;
      case 'moduleAux':
        out.ascii(`{"module_aux":${JSON.stringify(rec.moduleName)},"enc_version":${rec.encVersion},"when":${rec.when},"payload":{"b64":"`);
        out.ascii(rec.payload.toString('base64'));
        out.ascii('"}}\n');
        return;
      case 'keyStart':
        this.startKey(rec);
        return;
      case 'keyEnd':
        this.endKey();
        return;
      case 'keySkipped':
        this.skipKey(rec.error);
        return;
      default:
        if (this.cur !== null) this.value(rec);
    }
  }

  private startKey(h: KeyHeader): void {
    this.endLongString();
    this.cur = h;
    this.started = false;
    this.closers = [];
    this.count = 0;
    this.fieldTtls = [];
    this.streamPhase = 'entries';
    this.group = null;
    this.groupsWritten = 0;
  }

  /** The key's opening fields, written with its first value record (empty keys print nothing). */
  private begin(): void {
    if (this.started) return;
    const h = this.cur!;
    const out = this.out;
    this.started = true;
    this.mark = out.mark();
    out.ascii(`{"db":${h.db},"key":`);
    writeJsonBytes(out, h.key);
    out.ascii(`,"type":"${h.type}","rdb_type":${h.rdbType},"expire_ms":${h.expireMs === null ? 'null' : h.expireMs}`);
    if (h.lruIdle !== null) out.ascii(`,"lru_idle_s":${h.lruIdle}`);
    if (h.lfuFreq !== null) out.ascii(`,"lfu_freq":${h.lfuFreq}`);
    this.closers.push('}');
  }

  private openArray(prefix: string): void {
    this.out.ascii(prefix);
    this.closers.push(']');
    this.count = 0;
  }

  private close(): void {
    this.out.ascii(this.closers.pop()!);
  }

  private comma(): void {
    if (this.count++ > 0) this.out.byte(0x2c);
  }

  private value(rec: RdbRecord): void {
    const out = this.out;
    switch (rec.kind) {
      case 'string':
        this.begin();
        out.ascii(',"value":');
        writeJsonBytes(out, rec.value);
        return;
      case 'stringPart':
        if (rec.offset === 0) {
          this.begin();
          out.ascii(',"value":');
          this.longString = new JsonBytesStream(out, this.tmpDir);
        }
        this.longString?.push(rec.value, rec.offset + rec.value.length === rec.total);
        return;
      case 'listItems':
      case 'setItems':
        if (!this.started) {
          this.begin();
          this.openArray(',"value":[');
        }
        for (const item of rec.items) {
          this.comma();
          writeJsonBytes(out, item);
        }
        return;
      case 'zsetItems':
        if (!this.started) {
          this.begin();
          this.openArray(',"value":[');
        }
        for (const z of rec.items) {
          this.comma();
          out.byte(0x5b);
          writeJsonBytes(out, z.member);
          out.byte(0x2c);
          out.ascii(jsonScore(z.score));
          out.byte(0x5d);
        }
        return;
      case 'hashItems':
        if (!this.started) {
          this.begin();
          this.openArray(',"value":[');
        }
        for (const it of rec.items) {
          this.comma();
          out.byte(0x5b);
          writeJsonBytes(out, it.field);
          out.byte(0x2c);
          writeJsonBytes(out, it.value);
          out.byte(0x5d);
          if (it.expireMs !== null) this.fieldTtls.push([it.field, it.expireMs]);
        }
        return;
      case 'arrayMeta':
        this.begin();
        out.ascii(`,"insert_index":${rec.insertIndex === null ? 'null' : rec.insertIndex}`);
        this.openArray(',"value":[');
        return;
      case 'arrayItems':
        if (!this.started) {
          this.begin();
          this.openArray(',"value":[');
        }
        for (const a of rec.items) {
          this.comma();
          out.ascii(`[${a.index},`);
          writeJsonBytes(out, a.value);
          out.byte(0x5d);
        }
        return;
      case 'module':
        this.begin();
        out.ascii(`,"module":${JSON.stringify(rec.moduleName)},"module_enc_version":${rec.encVersion},"value":{"b64":"`);
        out.ascii(rec.payload.toString('base64'));
        out.ascii('"}');
        return;
      case 'streamEntries':
        this.beginStream();
        for (const e of rec.entries) {
          this.comma();
          out.ascii(`["${e.id}",[`);
          for (let i = 0; i < e.fields.length; i++) {
            if (i > 0) out.byte(0x2c);
            writeJsonBytes(out, e.fields[i]!);
          }
          out.ascii(']]');
        }
        return;
      case 'streamMeta':
        this.beginStream();
        this.writeStreamMeta(rec.meta);
        return;
      case 'streamGroup':
        this.flushGroup();
        this.group = { header: rec.group, pel: [], consumers: [] };
        return;
      case 'streamPel':
        if (this.group) for (const p of rec.entries) this.group.pel.push(p);
        return;
      case 'streamConsumer':
        if (this.group) this.group.consumers.push(rec.consumer);
        return;
      default:
        return;
    }
  }

  private beginStream(): void {
    if (this.started) return;
    this.begin();
    this.out.ascii(',"value":{');
    this.closers.push('}');
    this.openArray('"entries":[');
  }

  private writeStreamMeta(m: StreamMeta): void {
    this.close(); // entries
    const id = (v: string | null) => (v === null ? 'null' : `"${v}"`);
    this.out.ascii(
      `,"length":${m.length},"last_id":"${m.lastId}","max_deleted_id":${id(m.maxDeletedId)},` +
        `"entries_added":${m.entriesAdded === null ? 'null' : m.entriesAdded},"first_id":${id(m.firstId)}`,
    );
    this.openArray(',"groups":[');
    this.streamPhase = 'groups';
  }

  /** Write the buffered consumer group, joining PEL entries with their owners. */
  private flushGroup(): void {
    const g = this.group;
    if (g === null) return;
    this.group = null;
    const out = this.out;
    const owner = new Map<string, Buffer>();
    for (const c of g.consumers) for (const id of c.pel) owner.set(id, c.name);
    const nacks = new Map<string, StreamPelEntry>();
    for (const p of g.pel) nacks.set(p.id, p);
    if (this.groupsWritten++ > 0) out.byte(0x2c);
    out.ascii('{"name":');
    writeJsonBytes(out, g.header.name);
    out.ascii(`,"last_delivered_id":"${g.header.lastId}","entries_read":${g.header.entriesRead === null ? 'null' : g.header.entriesRead},"pel":[`);
    g.pel.forEach((p, i) => {
      if (i > 0) out.byte(0x2c);
      out.ascii(`["${p.id}",`);
      const name = owner.get(p.id);
      if (name === undefined) out.ascii('null');
      else writeJsonBytes(out, name);
      out.ascii(`,${p.deliveryTimeMs},${p.deliveryCount}]`);
    });
    out.ascii('],"consumers":[');
    g.consumers.forEach((c, i) => {
      if (i > 0) out.byte(0x2c);
      out.ascii('{"name":');
      writeJsonBytes(out, c.name);
      out.ascii(`,"seen_time_ms":${c.seenTimeMs},"active_time_ms":${c.activeTimeMs === null ? 'null' : c.activeTimeMs},"pel":[`);
      c.pel.forEach((id, j) => {
        if (j > 0) out.byte(0x2c);
        const p = nacks.get(id);
        out.ascii(p === undefined ? `["${id}",null,null]` : `["${id}",${p.deliveryTimeMs},${p.deliveryCount}]`);
      });
      out.ascii(']}');
    });
    out.ascii(']}');
  }

  private endLongString(): void {
    this.longString?.close();
    this.longString = null;
  }

  private endKey(): void {
    this.endLongString();
    const h = this.cur;
    if (h === null) return;
    this.cur = null;
    if (!this.started) {
      this.stats.emptySkipped++;
      return;
    }
    if (h.type === 'stream') {
      if (this.streamPhase === 'entries') this.writeStreamMeta({ length: 0, lastId: '0-0', firstId: null, maxDeletedId: null, entriesAdded: null });
      this.flushGroup();
    }
    // Close the value (array or stream object); the key object stays open for trailing fields.
    while (this.closers.length > 1) this.close();
    if (this.fieldTtls.length > 0) {
      const out = this.out;
      out.ascii(',"field_expire_ms":[');
      this.fieldTtls.forEach(([f, ms], i) => {
        if (i > 0) out.byte(0x2c);
        out.byte(0x5b);
        writeJsonBytes(out, f);
        out.ascii(`,${ms}]`);
      });
      out.byte(0x5d);
      this.fieldTtls = [];
    }
    this.close();
    this.out.byte(0x0a);
    this.stats.keys++;
  }

  private skipKey(error: Error): void {
    const long = this.longString;
    this.endLongString();
    if (this.cur === null) return;
    this.cur = null;
    this.stats.corruptSkipped++;
    if (!this.started) return;
    if (this.mark !== null && this.out.rollback(this.mark)) return;
    // Part of the key already left the buffer: end it as valid JSON, marked corrupt.
    long?.abort();
    this.group = null;
    while (this.closers.length > 1) this.close();
    this.out.ascii(`,"corrupt":${JSON.stringify(error.message)}`);
    this.close();
    this.out.byte(0x0a);
  }
}
