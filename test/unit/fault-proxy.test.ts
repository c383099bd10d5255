/**
 * FaultProxy against a plain TCP echo server: byte-exact forwarding, and each fault (cut, stall,
 * slow, refuse, reset) observed from the client side.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../helpers/fault-proxy.js';

let echo: Server;
let echoPort: number;
let echoSockets: Set<Socket>;
/** Error codes the echo server's sockets ended with. */
let echoErrors: string[];
const cleanup: Array<() => Promise<void> | void> = [];

beforeEach(async () => {
  echoSockets = new Set();
  echoErrors = [];
  echo = createServer({ allowHalfOpen: true }, (s) => {
    echoSockets.add(s);
    s.on('close', () => echoSockets.delete(s));
    s.on('error', (e: NodeJS.ErrnoException) => echoErrors.push(e.code ?? 'ERROR'));
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as { port: number }).port;
});

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  for (const s of echoSockets) s.destroy();
  await new Promise<void>((r) => echo.close(() => r()));
});

async function proxy(port = echoPort): Promise<FaultProxy> {
  const p = await FaultProxy.start({ target: { host: '127.0.0.1', port } });
  cleanup.push(() => p.close());
  return p;
}

/** A client that records what it receives and how it ended. */
interface Client {
  socket: Socket;
  received(): Buffer;
  /** Resolves with the error code the socket ended with ('' for a clean close). */
  closed: Promise<string>;
}

async function client(port: number): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: false });
  const parts: Buffer[] = [];
  let code = '';
  socket.on('data', (d: Buffer) => parts.push(d));
  socket.on('error', (e: NodeJS.ErrnoException) => {
    code = e.code ?? 'ERROR';
  });
  const closed = new Promise<string>((r) => socket.once('close', () => r(code)));
  cleanup.push(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => Buffer.concat(parts), closed };
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FaultProxy', () => {
  it('forwards both ways byte for byte and counts bytes and connections', async () => {
    const p = await proxy();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const c = await client(p.port);
    // Write in uneven pieces so the proxy sees many chunk boundaries.
    for (let i = 0; i < data.length; i += 65_537) c.socket.write(data.subarray(i, i + 65_537));
    await until(() => c.received().length >= data.length, 'the echo');
    expect(c.received().equals(data)).toBe(true);
    const c2 = await client(p.port);
    c2.socket.write('hello');
    await until(() => c2.received().length === 5, 'the second echo');
    expect(c2.received().toString()).toBe('hello');
    expect(p.stats).toMatchObject({ bytesUp: data.length + 5, bytesDown: data.length + 5, connections: 2, active: 2, cut: 0, reset: 0 });
  });

  it('forwards a half-close and forgets the connection once both sides are done', async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.end('bye');
    expect(await c.closed).toBe('');
    expect(c.received().toString()).toBe('bye');
    await until(() => p.stats.active === 0, 'the proxy to drop the connection');
  });

  it('cut() resets both sides of every connection and keeps accepting new ones', async () => {
    const p = await proxy();
    const a = await client(p.port);
    const b = await client(p.port);
    await until(() => echoSockets.size === 2, 'two upstream connections');
    const upstream = [...echoSockets];
    const upstreamClosed = upstream.map((s) => new Promise<void>((r) => s.once('close', () => r())));
    expect(p.cut()).toBe(2);
    expect(await a.closed).toBe('ECONNRESET');
    expect(await b.closed).toBe('ECONNRESET');
    await Promise.all(upstreamClosed);
    expect(p.stats.cut).toBe(2);
    await until(() => p.stats.active === 0, 'no open connection');
    const c = await client(p.port);
    c.socket.write('again');
    await until(() => c.received().length === 5, 'the echo after a cut');
    expect(c.received().toString()).toBe('again');
  });

  it('stall() holds bytes back without dropping them until resume()', async () => {
    const p = await proxy();
    const c = await client(p.port);
    p.stall('down');
    const data = randomBytes(200_000);
    c.socket.write(data);
    // Everything goes up to the echo server, nothing comes back.
    await until(() => p.stats.bytesUp === data.length, 'the bytes to reach the server');
    await sleep(100);
    expect(c.received().length).toBe(0);
    p.resume();
    await until(() => c.received().length === data.length, 'the held bytes');
    expect(c.received().equals(data)).toBe(true);
  });

  it('stall(dir, ms) resumes by itself; an upstream stall also holds new connections', async () => {
    const p = await proxy();
    p.stall('up', 1000);
    const c = await client(p.port);
    c.socket.write('late');
    await sleep(100);
    expect(p.stats.bytesUp).toBe(0);
    expect(c.received().length).toBe(0);
    await until(() => c.received().length === 4, 'the stall to end by itself', 3000);
    expect(c.received().toString()).toBe('late');
  });

  it('stall() pauses the sender past the high-water mark instead of buffering without bound', async () => {
    const p = await proxy();
    const c = await client(p.port);
    p.stall('up');
    const data = randomBytes(32 * 1024 * 1024);
    const flushed = new Promise<void>((r) => c.socket.write(data, () => r()));
    await sleep(300);
    // TCP backpressure reaches the client: its write is not fully handed to the kernel.
    expect(c.socket.writableLength).toBeGreaterThan(0);
    expect(p.stats.bytesUp).toBe(0);
    p.resume();
    await flushed;
    await until(() => c.received().length === data.length, 'the whole echo', 20_000);
    expect(c.received().equals(data)).toBe(true);
  });

  it('slow() throttles a direction and loses nothing; slow(dir, null) lifts it', async () => {
    const p = await proxy();
    const c = await client(p.port);
    p.slow('down', 20_000);
    const data = randomBytes(60_000);
    const t0 = Date.now();
    c.socket.write(data);
    await sleep(250);
    const early = c.received().length;
    const elapsed = Date.now() - t0;
    // Never more than the rate allows (plus one 10 ms tick of burst), whatever the scheduling.
    expect(early).toBeGreaterThan(0);
    expect(early).toBeLessThanOrEqual(Math.ceil((20_000 * elapsed) / 1000) + 200);
    expect(early).toBeLessThan(data.length);
    p.slow('down', null);
    await until(() => c.received().length === data.length, 'the rest after lifting the limit');
    expect(c.received().equals(data)).toBe(true);
    expect(() => p.slow('up', 0)).toThrow(RangeError);
  });

  it('refuse(true) makes new connections fail with ECONNREFUSED, keeps open ones, refuse(false) listens again on the same port', async () => {
    const p = await proxy();
    const port = p.port;
    const open = await client(port);
    await p.refuse(true);
    const err = await client(port).then(() => null, (e: NodeJS.ErrnoException) => e.code);
    expect(err).toBe('ECONNREFUSED');
    open.socket.write('still');
    await until(() => open.received().length === 5, 'the open connection to keep working');
    await p.refuse(false);
    expect(p.port).toBe(port);
    const c = await client(port);
    c.socket.write('back');
    await until(() => c.received().length === 4, 'a new connection after refuse(false)');
    expect(c.received().toString()).toBe('back');
  });

  it('reset(dir, n) forwards exactly n more bytes, then resets that connection (one-shot)', async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write('warmup');
    await until(() => c.received().length === 6, 'the warm-up echo');
    // The client finishes writing first: a peer that is still sending may see the RST as a
    // plain end of stream (its failed write consumes the socket error).
    p.stall('down');
    c.socket.write(randomBytes(50_000));
    await until(() => p.stats.bytesUp === 6 + 50_000, 'the upload');
    const fired = p.reset('down', 1000);
    p.resume();
    await fired;
    // The client may see the RST as ECONNRESET or, when it lands right behind the data, as a
    // plain end of stream; the idle echo server always sees the reset.
    expect(['ECONNRESET', '']).toContain(await c.closed);
    await until(() => echoErrors.length > 0, 'the echo server to see the reset');
    expect(echoErrors).toEqual(['ECONNRESET']);
    expect(p.stats.bytesDown).toBe(6 + 1000);
    expect(c.received().length).toBe(6 + 1000);
    expect(p.stats.reset).toBe(1);
    // One-shot: the next connection is not reset.
    const d = await client(p.port);
    d.socket.write(Buffer.alloc(5000, 1));
    await until(() => d.received().length === 5000, 'a full echo after the trigger fired');
    expect(p.stats.reset).toBe(1);
  });

  it('resets the client when the target refuses the upstream connection', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const deadPort = (dead.address() as { port: number }).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const p = await proxy(deadPort);
    const c = await client(p.port);
    expect(await c.closed).toBe('ECONNRESET');
    expect(p.stats.connections).toBe(1);
    await until(() => p.stats.active === 0, 'the proxy to drop the connection');
  });
});
