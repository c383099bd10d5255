/**
 * The size of the RDB the source will send, from a sample: DUMP payloads use the RDB encoding
 * of each value (compression included), so their mean size per key, times the number of keys,
 * is close to the file. Keys above 8 MB are not DUMPed (that would load the source); their
 * MEMORY USAGE stands in. Without DUMP/MEMORY permission, used_memory_dataset is the estimate.
 */
import type { ServerInfo } from '../replication/server-info.js';
import { ServerReply, type VerifySide } from '../verify/side.js';

export interface RdbEstimate {
  bytes: number;
  sampledKeys: number;
  method: 'dump-sample' | 'used-memory';
}

const BIG_KEY_BYTES = 8 * 1024 * 1024;
/** DUMP's trailer (RDB version and CRC64), not in the file. */
const DUMP_TRAILER = 10;
/** RDB header, aux fields, db selectors and checksum. */
const RDB_OVERHEAD = 200;

function usedMemory(info: ServerInfo, sampled: number): RdbEstimate {
  const v = Number(info.fields.get('used_memory_dataset'));
  return { bytes: Number.isFinite(v) && v > 0 ? v : info.usedMemory, sampledKeys: sampled, method: 'used-memory' };
}

export async function estimateRdbBytes(side: VerifySide, info: ServerInfo, perDb: number): Promise<RdbEstimate> {
  let total = RDB_OVERHEAD;
  let sampled = 0;
  for (const [db, keys] of info.keys) {
    if (keys === 0) continue;
    const picks = await side.randomKeys(db, Math.min(perDb, keys));
    if (picks.some((p) => p instanceof ServerReply)) return usedMemory(info, sampled);
    const names = [...new Map(picks.filter(Buffer.isBuffer).map((k) => [k.toString('latin1'), k])).values()];
    if (names.length === 0) continue;
    const mem = await side.pipeline(db, names.map((k) => ['MEMORY', 'USAGE', k, 'SAMPLES', '0']));
    if (mem.some((m) => m instanceof ServerReply)) return usedMemory(info, sampled);
    const small = names.filter((_, i) => Number(mem[i]) <= BIG_KEY_BYTES);
    const dumps = await side.pipeline(db, small.map((k) => ['DUMP', k]));
    if (dumps.some((d) => d instanceof ServerReply)) return usedMemory(info, sampled);
    let bytes = 0;
    let dumpIndex = 0;
    names.forEach((k, i) => {
      // Type byte, length-prefixed key, optional expiry: about key + 10 bytes around the value.
      const around = k.length + 10;
      if (Number(mem[i]) > BIG_KEY_BYTES) bytes += Number(mem[i]) + around;
      else {
        const d = dumps[dumpIndex++];
        // A key deleted between RANDOMKEY and DUMP counts as an average one (it is left out).
        if (Buffer.isBuffer(d)) bytes += d.length - DUMP_TRAILER + around;
      }
    });
    sampled += names.length;
    total += (bytes / names.length) * keys;
  }
  return { bytes: Math.round(total), sampledKeys: sampled, method: 'dump-sample' };
}
