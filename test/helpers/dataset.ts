/**
 * Test datasets and load for real servers: every type and encoding, TTLs, several dbs,
 * big keys, streams with groups/PELs/consumers, functions; and a concurrent writer of
 * non-idempotent commands (INCR, LPUSH, APPEND, HINCRBY, XADD, MULTI/EXEC, EVAL).
 */
import type { Redis } from 'ioredis';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DatasetOptions {
  seed?: number;
  /** Elements in the big collections (over the translator's 512-element / 1 MiB batches). */
  bigElements?: number;
  /** Bytes of the big string. */
  bigStringBytes?: number;
  /** Keys of small random types per db. */
  smallKeys?: number;
  dbs?: number[];
  functions?: boolean;
}

export const FUNCTION_LIB = "#!lua name=testlib\nredis.register_function('incrby2', function(keys, args) return redis.call('INCRBY', keys[1], 2) end)\nredis.register_function{function_name='ro', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}, description='read only'}";

/** Fill a server with every type. Returns the number of keys written. */
export async function populate(c: Redis, opts: DatasetOptions = {}): Promise<number> {
  const rand = rng(opts.seed ?? 1);
  const big = opts.bigElements ?? 3000;
  const smallKeys = opts.smallKeys ?? 300;
  const dbs = opts.dbs ?? [0, 1, 5];
  const future = Date.now() + 3_600_000;
  let n = 0;
  for (const db of dbs) {
    await c.select(db);
    const p = c.pipeline();
    for (let i = 0; i < smallKeys; i++) {
      const k = `d${db}:k${i}`;
      switch (Math.floor(rand() * 8)) {
        case 0: p.set(k, String(Math.floor(rand() * 1e6))); break;
        case 1: p.set(k, Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)))); break;
        case 2: p.rpush(k, ...Array.from({ length: 1 + Math.floor(rand() * 20) }, (_, j) => `e${j}-${Math.floor(rand() * 1000)}`)); break;
        case 3: p.sadd(k, ...Array.from({ length: 1 + Math.floor(rand() * 20) }, (_, j) => (rand() < 0.5 ? String(j * 7) : `m${j}`))); break;
        case 4: p.zadd(k, ...Array.from({ length: 1 + Math.floor(rand() * 20) }, (_, j) => [String((rand() - 0.5) * 1e6), `z${j}`]).flat()); break;
        case 5: p.hset(k, ...Array.from({ length: 1 + Math.floor(rand() * 20) }, (_, j) => [`f${j}`, rand() < 0.5 ? String(j) : `v${j}`]).flat()); break;
        case 6: p.xadd(k, '*', 'a', String(i), 'b', 'x'); break;
        default: p.set(k, 'ttl'); p.pexpireat(k, future + i); break;
      }
      if (rand() < 0.1) p.pexpireat(k, future + i * 1000);
      n++;
    }
    await p.exec();
  }
  await c.select(0);
  const p = c.pipeline();
  // Big keys: more elements than one translator batch, some as hashtable/skiplist encodings.
  p.rpush('big:list', ...Array.from({ length: big }, (_, i) => `item-${i}`));
  p.sadd('big:set', ...Array.from({ length: big }, (_, i) => `member-${i}`));
  p.sadd('big:intset', ...Array.from({ length: 400 }, (_, i) => String(i * 3 - 600)));
  p.zadd('big:zset', ...Array.from({ length: big }, (_, i) => [String(i / 3), `zm-${i}`]).flat());
  p.hset('big:hash', ...Array.from({ length: big }, (_, i) => [`field-${i}`, `value-${i}`]).flat());
  p.set('big:string', 'x'.repeat(opts.bigStringBytes ?? 2 * 1024 * 1024));
  p.set('int:neg', '-12345');
  p.set('empty:string', '');
  p.set('bin:key:\x00\xff', Buffer.from([0, 1, 2, 255, 13, 10]));
  p.zadd('zset:special', 'inf', 'pinf', '-inf', 'ninf', '0', 'zero', '1.5', 'x');
  p.pexpireat('big:hash', future);
  n += 9;
  await p.exec();
  // Streams with groups, PEL, consumers.
  for (let i = 0; i < 300; i++) await c.xadd('stream:g', `${1000 + i}-${i % 3}`, 'n', String(i), 'payload', 'p'.repeat(i % 17));
  await c.xdel('stream:g', '1005-2', '1010-1');
  await c.xgroup('CREATE', 'stream:g', 'g1', '0');
  await c.xgroup('CREATE', 'stream:g', 'g2', '$');
  await c.xreadgroup('GROUP', 'g1', 'alice', 'COUNT', 40, 'STREAMS', 'stream:g', '>');
  await c.xreadgroup('GROUP', 'g1', 'bob', 'COUNT', 25, 'STREAMS', 'stream:g', '>');
  await c.xack('stream:g', 'g1', '1000-0', '1001-1');
  await c.xgroup('CREATECONSUMER', 'stream:g', 'g1', 'carol');
  await c.xgroup('CREATE', 'stream:empty', 'grp', '$', 'MKSTREAM');
  n += 2;
  if (opts.functions !== false) {
    await c.call('FUNCTION', 'LOAD', 'REPLACE', FUNCTION_LIB);
  }
  return n;
}

export interface Load {
  /** Stop and wait for in-flight commands; resolves with the number of commands sent. */
  stop(): Promise<number>;
}

/**
 * A concurrent writer of non-idempotent commands across dbs 0 and 2, with MULTI/EXEC and
 * EVAL, paced by `delayMs` between rounds. Runs until stop().
 */
export function startLoad(c: Redis, opts: { seed?: number; delayMs?: number; functions?: boolean } = {}): Load {
  const rand = rng(opts.seed ?? 7);
  let running = true;
  let sent = 0;
  const loop = (async () => {
    let i = 0;
    while (running) {
      const r = Math.floor(rand() * 1000);
      const p = c.pipeline();
      p.select(0);
      p.incr(`load:counter:${r % 10}`);
      p.lpush(`load:list:${r % 5}`, `v${i}`);
      p.append(`load:str:${r % 7}`, `a${i}`);
      p.hincrby(`load:hash:${r % 3}`, `f${r % 11}`, 3);
      p.xadd('load:stream', '*', 'i', String(i));
      p.zincrby('load:zset', 1.25, `m${r % 13}`);
      p.select(2);
      p.incrby(`load2:counter`, r);
      p.rpoplpush('load2:src', 'load2:dst');
      p.lpush('load2:src', `s${i}`);
      p.pexpire(`load:str:${r % 7}`, 3_600_000);
      p.select(0);
      p.eval("redis.call('INCR', KEYS[1]); return redis.call('APPEND', KEYS[2], ARGV[1])", 2, 'load:eval:n', 'load:eval:s', `e${i % 10}`);
      if (opts.functions !== false && i % 10 === 0) p.fcall('incrby2', 1, 'load:fcall');
      if (i % 50 === 0) p.del(`load:list:${r % 5}`);
      await p.exec();
      await c.multi().incr('load:tx:a').lpush('load:tx:b', String(i)).hincrby('load:tx:c', 'n', 1).exec();
      sent += 19;
      i++;
      if (opts.delayMs) await new Promise((res) => setTimeout(res, opts.delayMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return sent;
    },
  };
}
