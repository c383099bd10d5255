/**
 * Benchmark datasets, written into a running redis-server. Big collections are built by a
 * server-side Lua loop with variadic commands (fast, no client round trips); many small keys
 * with random (incompressible) content come from pipelined client writes.
 * Every loop is bounded by the requested sizes.
 */
import { randomBytes } from 'node:crypto';
import { encodeCommand } from '../../dist/resp/encode.js';
import { spawnOwned } from './processes.mjs';

/** 1M (or `count`) small string keys: `key:N` → 16-byte values (DEBUG POPULATE). */
export async function populateSmallKeys(client, count = 1_000_000, valueBytes = 16) {
  await client.call('DEBUG', 'POPULATE', String(count), 'key', String(valueBytes));
}

// Fills KEYS[1] with ARGV[2] elements using command ARGV[1], 1000 elements per call.
// ARGV[3] picks the element shape: 'str' (element:N), 'int' (N), 'zset', 'hash', 'stream'.
const FILL_SCRIPT = `
local key, cmd, n, shape = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local i = 0
while i < n do
  local m = math.min(1000, n - i)
  if shape == 'stream' then
    for j = 1, m do redis.call('XADD', key, '*', 'field', 'value:' .. (i + j), 'n', i + j) end
  else
    local a = {}
    for j = 1, m do
      local k = i + j
      if shape == 'str' then a[#a + 1] = 'element:' .. k
      elseif shape == 'int' then a[#a + 1] = k * 7
      elseif shape == 'zset' then a[#a + 1] = k * 1.5; a[#a + 1] = 'member:' .. k
      elseif shape == 'hash' then a[#a + 1] = 'field:' .. k; a[#a + 1] = 'value:' .. k
      end
    end
    redis.call(cmd, key, unpack(a))
  end
  i = i + m
end
return n
`;

/** One big collection built server-side. `shape`: str | int | zset | hash | stream. */
export async function fillCollection(client, key, cmd, count, shape) {
  await client.eval(FILL_SCRIPT, 1, key, cmd, String(count), shape);
}

/** Large collections and big strings (≈ 170 MB RDB): the "few huge keys" case. */
export async function writeLargeCollections(client) {
  await fillCollection(client, 'list:big', 'RPUSH', 1_000_000, 'str');
  await fillCollection(client, 'list:ints', 'RPUSH', 500_000, 'int');
  await fillCollection(client, 'set:big', 'SADD', 1_000_000, 'str');
  await fillCollection(client, 'set:ints', 'SADD', 500_000, 'int');
  await fillCollection(client, 'zset:big', 'ZADD', 1_000_000, 'zset');
  await fillCollection(client, 'hash:big', 'HSET', 1_000_000, 'hash');
  await fillCollection(client, 'stream:big', 'XADD', 200_000, 'stream');
  // Incompressible strings, and one LZF-friendly (zero-filled) one.
  await client.set('string:random:1', randomBytes(32 * 1024 * 1024));
  await client.set('string:random:2', randomBytes(32 * 1024 * 1024));
  await client.setrange('string:zeros', 64 * 1024 * 1024 - 1, 'x');
}

/**
 * ≈ 200k keys of every type (≈ 150–180 MB RDB): mostly small keys with random content,
 * 10 % with a TTL, plus a few large collections and big strings. `cliArgs`: extra redis-cli
 * arguments for the bulk-load pipe (e.g. ['--tls', '--cacert', ca] for a TLS-only server).
 */
export async function writeMixedDataset(client, { scale = 1, cliArgs = [] } = {}) {
  const pool = randomBytes(4 * 1024 * 1024);
  let poolAt = 0;
  // Slices of a random pool: incompressible, no per-value allocation of fresh random bytes.
  const rnd = (n) => {
    if (poolAt + n > pool.length) poolAt = 0;
    const b = pool.subarray(poolAt, poolAt + n);
    poolAt += n;
    return b;
  };
  const hex = (n) => rnd(n).toString('base64');
  const expireAt = Date.now() + 3_600_000;
  const n = (x) => Math.max(1, Math.round(x * scale));
  const counts = { string: n(100_000), hash: n(30_000), list: n(30_000), set: n(15_000), zset: n(15_000), stream: n(5_000) };

  const pipe = new RespPipe(client.options.port, cliArgs);
  const add = async (key, i, args) => {
    await pipe.send(args);
    if (i % 10 === 0) await pipe.send(['PEXPIREAT', key, expireAt + i]);
  };

  for (let i = 0; i < counts.string; i++) {
    // 10..2000 bytes, mean ≈ 1000.
    const size = 10 + ((i * 7919) % 1991);
    await add(`string:${i}`, i, ['SET', `string:${i}`, rnd(size)]);
  }
  for (let i = 0; i < counts.hash; i++) {
    const args = ['HSET', `hash:${i}`];
    for (let j = 0; j < 20; j++) args.push(`f${j}`, hex(12));
    await add(args[1], i, args);
  }
  for (let i = 0; i < counts.list; i++) {
    const args = ['RPUSH', `list:${i}`];
    for (let j = 0; j < 20; j++) args.push(j % 4 === 0 ? String(i * 31 + j) : hex(12));
    await add(args[1], i, args);
  }
  for (let i = 0; i < counts.set; i++) {
    const args = ['SADD', `set:${i}`];
    // Half intsets, half hashtables of short strings.
    for (let j = 0; j < 20; j++) args.push(i % 2 === 0 ? String(i * 1000 + j) : hex(9));
    await add(args[1], i, args);
  }
  for (let i = 0; i < counts.zset; i++) {
    const args = ['ZADD', `zset:${i}`];
    for (let j = 0; j < 20; j++) args.push(String((i * 20 + j) / 3), hex(9));
    await add(args[1], i, args);
  }
  for (let i = 0; i < counts.stream; i++) {
    for (let j = 0; j < 10; j++) await pipe.send(['XADD', `stream:${i}`, '*', 'sensor', String(j), 'reading', hex(6)]);
    if (i % 10 === 0) await pipe.send(['PEXPIREAT', `stream:${i}`, expireAt + i]);
  }
  await pipe.end();
  // A stream with a consumer group and pending entries.
  await client.xgroup('CREATE', 'stream:0', 'group', '0');
  await client.xreadgroup('GROUP', 'group', 'consumer', 'COUNT', '5', 'STREAMS', 'stream:0', '>');

  await fillCollection(client, 'big:hash:1', 'HSET', n(100_000), 'hash');
  await fillCollection(client, 'big:hash:2', 'HSET', n(100_000), 'hash');
  await fillCollection(client, 'big:list:1', 'RPUSH', n(250_000), 'str');
  await fillCollection(client, 'big:list:2', 'RPUSH', n(250_000), 'int');
  await fillCollection(client, 'big:set:1', 'SADD', n(200_000), 'str');
  await fillCollection(client, 'big:zset:1', 'ZADD', n(200_000), 'zset');
  await fillCollection(client, 'big:stream:1', 'XADD', n(100_000), 'stream');
  await client.set('big:string:1', randomBytes(n(8 * 1024 * 1024)));
  await client.set('big:string:2', randomBytes(n(8 * 1024 * 1024)));
}

/**
 * Commands written through `redis-cli --pipe` (the fastest bulk-load path), with backpressure.
 * end() fails if redis-cli reports any error reply.
 */
class RespPipe {
  constructor(port, cliArgs = []) {
    this.child = spawnOwned('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...cliArgs, '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.out = '';
    this.child.stdout.on('data', (d) => (this.out += d.toString()));
    this.child.stderr.on('data', (d) => (this.out += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.batch = [];
    this.batchBytes = 0;
  }

  async send(args) {
    const b = encodeCommand(args);
    this.batch.push(b);
    this.batchBytes += b.length;
    if (this.batchBytes >= 256 * 1024) await this.flush();
  }

  async flush() {
    if (this.batch.length === 0) return;
    const buf = Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    if (!this.child.stdin.write(buf)) await new Promise((r) => this.child.stdin.once('drain', r));
  }

  async end() {
    await this.flush();
    this.child.stdin.end();
    const code = await this.exited;
    const m = /errors: (\d+), replies: (\d+)/.exec(this.out);
    if (code !== 0 || !m || m[1] !== '0') throw new Error(`redis-cli --pipe failed (exit ${code}): ${this.out.slice(-2000)}`);
  }
}
