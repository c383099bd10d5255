/**
 * A fake replication master for fault tests: a TCP server on 127.0.0.1 (port 0) that
 * answers the replica handshake and then serves a scripted byte sequence (keepalives,
 * +FULLRESYNC, the RDB with `$len` or EOF framing, stream bytes), optionally in small
 * pieces, with delays, or cut off. It records what the replica sent (ACK offsets, commands).
 *
 * Also: `readFullSync`, a test-only RDB-end detector that consumes a spool without the
 * real RDB decoder (by `$len`, or by finding the EOF mark), and `emptyRdb()`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { RdbFraming } from '../../src/replication/rdb-trailer.js';
import { RdbTrailer } from '../../src/replication/rdb-trailer.js';
import { ReplicationStreamParser } from '../../src/resp/stream-parser.js';
import type { Spool } from '../../src/spool/spool.js';

export type ScriptStep =
  | Buffer
  | string
  /** Pause before the next step. */
  | { delayMs: number }
  /** Destroy the connection. */
  | { close: true }
  /** Wait until the replica has sent `REPLCONF ACK` (any offset) since PSYNC. */
  | { waitForAck: true };

export interface PsyncRequest {
  replid: string;
  offset: number;
}

export interface FakeMasterOptions {
  /** Require AUTH with this password (and `username`, if given). */
  password?: string;
  username?: string;
  /** What to send after PSYNC (called per connection). */
  onPsync: (req: PsyncRequest, connection: number) => ScriptStep[];
  /** Write script bytes in pieces of at most this many bytes, each in its own macrotask. */
  chunkSize?: number;
}

export interface FakeMaster {
  host: string;
  port: number;
  /** Every command received, AUTH passwords included (it is a test tool), per connection. */
  commands: string[][];
  /** Offsets of `REPLCONF ACK` received, in order. */
  acks: number[];
  /** Replication connections (those that sent PSYNC); control connections (INFO) do not count. */
  connections: number;
  /** Resolves when an ACK with offset >= `offset` arrives. */
  waitForAck(offset: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeMaster(opts: FakeMasterOptions): Promise<FakeMaster> {
  const sockets = new Set<Socket>();
  const ackWaiters: Array<{ offset: number; resolve: () => void }> = [];
  const state: FakeMaster = {
    host: '127.0.0.1',
    port: 0,
    commands: [],
    acks: [],
    connections: 0,
    waitForAck(offset, timeoutMs = 10_000) {
      if (state.acks.some((a) => a >= offset)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`fake master: no ACK >= ${offset} within ${timeoutMs} ms (got ${state.acks.join(',')})`)), timeoutMs);
        ackWaiters.push({ offset, resolve: () => (clearTimeout(t), resolve()) });
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const parser = new ReplicationStreamParser(0);
    let authed = opts.password === undefined;
    let streaming = false;
    let acksSincePsync = 0;
    let ackWake: (() => void) | null = null;

    const reply = (s: string) => socket.write(s);
    const run = async (steps: ScriptStep[]) => {
      for (const step of steps) {
        if (socket.destroyed) return;
        if (typeof step === 'string' || Buffer.isBuffer(step)) {
          const bytes = typeof step === 'string' ? Buffer.from(step, 'latin1') : step;
          const size = opts.chunkSize ?? bytes.length;
          for (let i = 0; i < bytes.length; i += size) {
            if (socket.destroyed) return;
            socket.write(bytes.subarray(i, i + size));
            if (opts.chunkSize !== undefined) await new Promise((r) => setImmediate(r));
          }
        } else if ('delayMs' in step) {
          await new Promise((r) => setTimeout(r, step.delayMs));
        } else if ('close' in step) {
          socket.destroy();
          return;
        } else {
          while (acksSincePsync === 0 && !socket.destroyed) await new Promise<void>((r) => (ackWake = r));
        }
      }
    };

    socket.on('data', (chunk: Buffer) => {
      let cmds;
      try {
        cmds = parser.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const c of cmds) {
        const args = c.args.map((a) => a.toString('latin1'));
        state.commands.push(args);
        const name = c.name;
        if (name === 'replconf' && args[1]?.toLowerCase() === 'ack') {
          const off = Number(args[2]);
          state.acks.push(off);
          acksSincePsync++;
          const w = ackWake;
          ackWake = null;
          if (w) w();
          for (let i = ackWaiters.length - 1; i >= 0; i--) {
            if (off >= ackWaiters[i]!.offset) ackWaiters.splice(i, 1)[0]!.resolve();
          }
          continue;
        }
        if (streaming) continue;
        if (name === 'ping') reply(authed ? '+PONG\r\n' : '-NOAUTH Authentication required.\r\n');
        else if (name === 'auth') {
          const [user, pass] = args.length === 3 ? [args[1], args[2]] : ['default', args[1]];
          const ok = pass === opts.password && user === (opts.username ?? 'default');
          authed = authed || ok;
          reply(ok ? '+OK\r\n' : '-WRONGPASS invalid username-password pair or user is disabled.\r\n');
        } else if (!authed) reply('-NOAUTH Authentication required.\r\n');
        else if (name === 'replconf') reply('+OK\r\n');
        else if (name === 'psync') {
          streaming = true;
          void run(opts.onPsync({ replid: args[1] ?? '', offset: Number(args[2]) }, ++state.connections));
        } else reply(`-ERR unknown command '${args[0]}'\r\n`);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('fake master: no port');
  state.port = addr.port;
  return state;
}

/** A 40-character replication id. */
export const FAKE_REPLID = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
/** A 40-byte EOF mark. */
export const FAKE_MARK = Buffer.from('0123456789abcdef0123456789abcdef01234567', 'latin1');

/** The smallest valid RDB: magic + version, EOF opcode, checksum 0 ("not computed"). */
export function emptyRdb(version = 10): Buffer {
  return Buffer.concat([Buffer.from(`REDIS${String(version).padStart(4, '0')}`, 'latin1'), Buffer.from([0xff]), Buffer.alloc(8)]);
}

/** +FULLRESYNC, the RDB framed as asked, then `stream`. */
export function fullSyncBytes(o: { replid?: string; offset: number; rdb: Buffer; framing: 'length' | 'eof'; stream?: Buffer; keepalives?: number }): Buffer {
  const ka = '\n'.repeat(o.keepalives ?? 0);
  const head = o.framing === 'length' ? `$${o.rdb.length}\r\n` : `$EOF:${FAKE_MARK.toString('latin1')}\r\n`;
  return Buffer.concat([
    Buffer.from(`${ka}+FULLRESYNC ${o.replid ?? FAKE_REPLID} ${o.offset}\r\n${ka}${head}`, 'latin1'),
    o.rdb,
    o.framing === 'eof' ? FAKE_MARK : Buffer.alloc(0),
    o.stream ?? Buffer.alloc(0),
  ]);
}

/**
 * Test-only stand-in for the RDB decoder: read the spool until the RDB has ended (by
 * `$len`, or by finding the EOF mark; fine for test RDBs), check the trailer with
 * RdbTrailer, and return the RDB and the first command-stream bytes.
 */
export async function readFullSync(spool: Spool, framing: RdbFraming): Promise<{ rdb: Buffer; stream: Buffer; trailer: RdbTrailer }> {
  const parts: Buffer[] = [];
  let have = 0;
  for (;;) {
    const chunk = await spool.read();
    if (chunk === null) throw new Error(`spool ended after ${have} bytes, before the RDB ended`);
    parts.push(chunk);
    have += chunk.length;
    const all = Buffer.concat(parts);
    let rdbLength = -1;
    if (framing.kind === 'length') {
      if (have >= framing.length) rdbLength = framing.length;
    } else {
      rdbLength = all.indexOf(framing.mark);
    }
    if (rdbLength < 0) continue;
    const trailer = new RdbTrailer(framing);
    let stream = trailer.push(all.subarray(rdbLength), rdbLength);
    while (stream === null) {
      const next = await spool.read();
      if (next === null) throw new Error('spool ended inside the EOF mark');
      stream = trailer.push(next);
    }
    return { rdb: all.subarray(0, rdbLength), stream, trailer };
  }
}
