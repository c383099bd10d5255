/**
 * TLS end to end with the CLI against redis-server processes that serve TLS only
 * (`--port 0 --tls-port`): certificates from a CA made by the test (openssl), server
 * certificate for 127.0.0.1 (IP SAN) and localhost (DNS SAN).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli, startCli } from '../helpers/cli.js';
import { startCluster, type RedisCluster } from '../helpers/cluster.js';
import { startRedis, waitFor, type RedisServer } from '../helpers/redis.js';
import { sentinelMaster, startSentinel, type SentinelProcess } from '../helpers/sentinel.js';
import { digestWithoutReserved } from '../helpers/sync.js';
import { makeTlsFiles, type TlsFiles } from '../helpers/tls.js';

let files: TlsFiles;
const servers: Array<RedisServer | SentinelProcess | RedisCluster> = [];

beforeAll(async () => {
  files = makeTlsFiles();
  await ensureBuilt();
}, 180_000);
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(() => files.remove());

async function tlsServer(authClients = false, args: string[] = []): Promise<RedisServer> {
  const s = await startRedis({ tls: { files, authClients }, args });
  servers.push(s);
  return s;
}

async function seed(s: RedisServer, n = 300): Promise<void> {
  const c = s.client();
  await c.call('DEBUG', 'POPULATE', n, 'key', 20);
  await c.hset('h', 'a', '1', 'b', '2');
  await c.rpush('l', 'x', 'y', 'z');
  await c.zadd('z', 1, 'one', 2, 'two');
  await c.set('ttl', 'v', 'PX', 600_000);
}

/** The last line of stderr: the error the CLI printed. */
function lastLine(stderr: string): string {
  return stderr.trim().split('\n').at(-1) ?? '';
}

function expectOneLineError(stderr: string): void {
  expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(stderr).not.toMatch(/internal error|SSL routines/);
}

const quick = ['--no-progress', '--connect-timeout', '3s'];

describe('sync and verify over TLS', () => {
  it('copies the snapshot and streams the changes with TLS at both ends; verify over TLS says equal', async () => {
    const source = await tlsServer();
    const target = await tlsServer();
    await seed(source);
    // The source by IP (checked against the IP SAN, no SNI), the target by name (DNS SAN, SNI).
    const ends = ['--source', `rediss://127.0.0.1:${source.port}`, '--target', `rediss://localhost:${target.port}`, '--tls-ca', files.ca];
    const r = startCli(['sync', ...ends, ...quick]);
    await waitFor(() => /phase: streaming/.test(r.stderr()), 'streaming', 20_000);
    const src = source.client();
    for (let i = 0; i < 50; i++) await src.incr('counter');
    await src.multi().lpush('l', 'live').hincrby('h', 'a', 5).exec();
    await src.set('marker', 'last');
    const tgt = target.client();
    await waitFor(async () => (await tgt.get('marker')) === 'last', 'the live writes to reach the target', 15_000);
    expect(await tgt.get('counter')).toBe('50');
    expect(await digestWithoutReserved(tgt)).toBe(await digestWithoutReserved(src));

    // cutover and plan reach both servers over TLS too.
    const cut = await runCli(['cutover', ...ends, '--unpause', '--sample', '20', '--json'], { timeoutMs: 30_000 });
    expect(cut.code, cut.stderr).toBe(0);
    expect(JSON.parse(cut.stdout.toString()).verify.differences).toBe(0);
    const plan = await runCli(['plan', ...ends, '--sample-time', '1s'], { timeoutMs: 30_000 });
    expect([0, 12], plan.stderr).toContain(plan.code);
    expect(plan.stdout.toString()).toContain(`source 127.0.0.1:${source.port}: Redis`);

    r.kill('SIGTERM');
    expect(await r.code, r.stderr()).toBe(0);

    const v = await runCli(['verify', ...ends, '--no-progress'], { timeoutMs: 30_000 });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.toString()).toContain('EQUAL');

    // bench on the same TLS servers: its clients and its sync child use the same settings (the
    // finished sync is forgotten first: a second sync of the same source would be refused).
    await tgt.hdel('__replicant:syncs', `127.0.0.1:${source.port}`);
    const bench = await runCli(['bench', ...ends, '--existing', 'replace', '--keys', '500', '--duration', '1s', '--no-progress', '--json'], { timeoutMs: 60_000 });
    expect(bench.code, bench.stderr).toBe(0);
    expect(JSON.parse(bench.stdout.toString()).replicant.fullSync.keys).toBeGreaterThanOrEqual(500);
    expect(await src.keys('replicant-bench:*')).toEqual([]);
  });

  it('a wrong or missing CA is refused with one line naming the server: exit 4 for the source, 5 for the target', async () => {
    const source = await tlsServer();
    const target = await tlsServer();
    await seed(source, 10);
    const ends = ['--source', source.url, '--target', target.url];

    const wrongSource = await runCli(['sync', ...ends, ...quick, '--source-tls-ca', files.otherCa, '--target-tls-ca', files.ca], { timeoutMs: 30_000 });
    expect(wrongSource.code, wrongSource.stderr).toBe(4);
    expect(lastLine(wrongSource.stderr)).toBe(
      `replicant: TLS: certificate of source 127.0.0.1:${source.port} not trusted (issued by a self-signed CA that is not trusted; the CA in ${files.otherCa} did not issue it)`,
    );
    expectOneLineError(wrongSource.stderr);

    const wrongTarget = await runCli(['sync', ...ends, ...quick, '--source-tls-ca', files.ca, '--target-tls-ca', files.otherCa], { timeoutMs: 30_000 });
    expect(wrongTarget.code, wrongTarget.stderr).toBe(5);
    expect(lastLine(wrongTarget.stderr)).toMatch(new RegExp(`^replicant: TLS: certificate of target 127\\.0\\.0\\.1:${target.port} not trusted \\(.*the CA in ${files.otherCa} did not issue it\\)$`));
    expectOneLineError(wrongTarget.stderr);

    // No CA given: the system CAs do not know the test CA.
    const noCa = await runCli(['verify', ...ends, '--no-progress'], { timeoutMs: 30_000 });
    expect(noCa.code, noCa.stderr).toBe(4);
    expect(lastLine(noCa.stderr)).toMatch(/^replicant: TLS: certificate of source 127\.0\.0\.1:\d+ not trusted \(.*give the CA that issued it with --tls-ca\)$/);
    expectOneLineError(noCa.stderr);
    expect(await target.client().dbsize()).toBe(0);
  });

  it('checks the name: an address the certificate does not hold is refused', async () => {
    // Listening on 127.0.0.2 too, which the certificate (127.0.0.1, localhost) does not name.
    const source = await tlsServer(false, ['--bind', '127.0.0.1', '127.0.0.2']);
    const target = await tlsServer();
    const r = await runCli(['sync', '--source', `rediss://127.0.0.2:${source.port}`, '--target', target.url, '--tls-ca', files.ca, ...quick], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(4);
    expect(lastLine(r.stderr)).toBe(
      `replicant: TLS: certificate of source 127.0.0.2:${source.port} is not valid for "127.0.0.2" (it names IP Address:127.0.0.1, DNS:localhost); connect by one of those names`,
    );
  });

  it('mutual TLS: no client certificate or one from another CA is refused; the right one works', async () => {
    const source = await tlsServer(true);
    const target = await tlsServer(true);
    await seed(source, 100);
    const ends = ['--source', source.url, '--target', target.url, '--tls-ca', files.ca];

    // Under TLS 1.3 the refusal comes after the client's handshake: as an alert, or as a bare
    // reset when the alert is lost; both are explained.
    const none = await runCli(['sync', ...ends, ...quick, '--exit-after-full-sync', '--target-tls-cert', files.clientCert, '--target-tls-key', files.clientKey], { timeoutMs: 30_000 });
    expect(none.code, none.stderr).toBe(4);
    expect(lastLine(none.stderr)).toMatch(new RegExp(`^replicant: TLS: source 127\\.0\\.0\\.1:${source.port} (requires|closed the connection after the handshake, before any reply: it probably requires) a client certificate \\(give --tls-cert and --tls-key\\)$`));
    expectOneLineError(none.stderr);

    // The source accepts the certificate, the target gets one from an unknown CA.
    const stranger = await runCli(['sync', ...ends, ...quick, '--exit-after-full-sync', '--source-tls-cert', files.clientCert, '--source-tls-key', files.clientKey, '--target-tls-cert', files.strangerCert, '--target-tls-key', files.strangerKey], { timeoutMs: 30_000 });
    expect(stranger.code, stranger.stderr).toBe(5);
    expect(lastLine(stranger.stderr)).toMatch(new RegExp(`^replicant: TLS: target 127\\.0\\.0\\.1:${target.port} (refused the client certificate \\(tlsv1 alert unknown ca\\)|closed the connection after the handshake, before any reply: it probably refused the client certificate)$`));
    expectOneLineError(stranger.stderr);

    const mine = ['--tls-cert', files.clientCert, '--tls-key', files.clientKey];
    const ok = await runCli(['sync', ...ends, ...mine, ...quick, '--exit-after-full-sync'], { timeoutMs: 30_000 });
    expect(ok.code, ok.stderr).toBe(0);
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(source.client()));
    const v = await runCli(['verify', ...ends, ...mine, '--no-progress'], { timeoutMs: 30_000 });
    expect(v.code, v.stderr).toBe(0);
  });

  it('--tls-insecure connects without a CA and logs a warning; --target-tls-insecure only spares the target', async () => {
    const source = await tlsServer();
    const target = await tlsServer();
    await seed(source, 50);
    const ends = ['--source', source.url, '--target', target.url];
    const r = await runCli(['sync', ...ends, ...quick, '--exit-after-full-sync', '--tls-insecure'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/the source's certificate and name are NOT verified/);
    expect(r.stderr).toMatch(/the target's certificate and name are NOT verified/);
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(source.client()));

    // Only the target is exempt: the source, without a CA, is still checked and refused.
    const v = await runCli(['verify', ...ends, '--target-tls-insecure', '--no-progress'], { timeoutMs: 30_000 });
    expect(v.code, v.stderr).toBe(4);
    expect(v.stderr).toMatch(/TLS: certificate of source 127\.0\.0\.1:\d+ not trusted/);
    expect(v.stderr).not.toMatch(/the source's certificate and name are NOT verified/);
  });

  it('writes into a TLS cluster target: every node connection is verified', async () => {
    const source = await tlsServer();
    await seed(source, 200);
    const cluster = await startCluster(3, undefined, files);
    servers.push(cluster);
    const dir = files.dir;
    const r = startCli(['sync', '--source', source.url, '--target', `rediss://127.0.0.1:${cluster.seed.port}`, '--tls-ca', files.ca, '--checkpoint', `file:${dir}/cluster.cp`, ...quick]);
    await waitFor(() => /phase: streaming/.test(r.stderr()), 'streaming', 20_000);
    const src = source.client();
    for (let i = 0; i < 20; i++) await src.incr(`live:${i}`);
    await src.set('marker', 'last');
    const c = cluster.client();
    await waitFor(async () => (await c.get('marker')) === 'last', 'the live writes to reach the cluster', 15_000);
    r.kill('SIGTERM');
    expect(await r.code, r.stderr()).toBe(0);
    // Every source key, with the same DUMP payload, spread over the three masters.
    const keys = (await src.keys('*')).sort();
    expect(keys.length).toBe(200 + 4 + 21);
    for (const k of keys) expect((await c.dumpBuffer(k))?.equals((await src.dumpBuffer(k))!), k).toBe(true);
    const perNode = await Promise.all(cluster.nodes.map((n) => n.client().dbsize()));
    expect(perNode.every((n) => n > 0)).toBe(true);
  });

  it('sentinels:// reaches the sentinel and the master it names over TLS', async () => {
    const master = await tlsServer();
    const target = await tlsServer();
    await seed(master, 100);
    const sentinel = await startSentinel({ masterName: 'tlsmaster', masterPort: master.port, tls: files });
    servers.push(sentinel);
    expect((await sentinelMaster(sentinel.client(), 'tlsmaster')).port).toBe(master.port);
    const ends = ['--source', `sentinels://127.0.0.1:${sentinel.port}/tlsmaster`, '--target', target.url, '--tls-ca', files.ca];
    const r = await runCli(['sync', ...ends, ...quick, '--exit-after-full-sync'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/sentinel named the source master/);
    expect(await digestWithoutReserved(target.client())).toBe(await digestWithoutReserved(master.client()));
    const v = await runCli(['verify', ...ends, '--no-progress'], { timeoutMs: 30_000 });
    expect(v.code, v.stderr).toBe(0);
    // The plain form does not speak TLS to the sentinel, and TLS options make no sense for it.
    const plain = await runCli(['verify', '--source', `sentinel://127.0.0.1:${sentinel.port}/tlsmaster`, '--target', target.url, '--target-tls-ca', files.ca, '--source-tls-ca', files.ca, '--no-progress'], { timeoutMs: 30_000 });
    expect(plain.code, plain.stderr).toBe(2);
    expect(lastLine(plain.stderr)).toMatch(/--source-tls-ca: the source URL is plain TCP; write rediss:\/\/ \(or sentinels:\/\/\)/);
  });

  it('rediss:// to a plain port and redis:// to a TLS port fail with a hint', async () => {
    const tlsOnly = await tlsServer();
    const plain = await startRedis();
    servers.push(plain);
    const toPlain = await runCli(['sync', '--source', `rediss://127.0.0.1:${plain.port}`, '--target', plain.url, '--tls-ca', files.ca, '--no-progress', '--connect-timeout', '1s'], { timeoutMs: 30_000 });
    expect(toPlain.code, toPlain.stderr).toBe(4);
    expect(lastLine(toPlain.stderr)).toMatch(/no TLS handshake answer: a plain port\? use redis:\/\//);
    const toTls = await runCli(['verify', '--source', plain.url, '--target', `redis://127.0.0.1:${tlsOnly.port}`, '--no-progress'], { timeoutMs: 30_000 });
    expect(toTls.code, toTls.stderr).toBe(5);
    expect(lastLine(toTls.stderr)).toMatch(/ECONNRESET.*\(if the port takes TLS only, use rediss:\/\/\)$/);
    expectOneLineError(toTls.stderr);
  });
});

describe('TLS options', () => {
  it('refuses options that cannot apply, and bad files, before connecting (exit 2)', async () => {
    const plain = ['--source', 'redis://127.0.0.1:1', '--target', 'redis://127.0.0.1:2'];
    const secure = ['--source', 'rediss://127.0.0.1:1', '--target', 'rediss://127.0.0.1:2'];
    const cases: [string[], RegExp][] = [
      [[...plain, '--tls-ca', files.ca], /--tls-ca: neither --source nor --target uses TLS/],
      [['--source', 'rediss://127.0.0.1:1', '--target', 'redis://127.0.0.1:2', '--target-tls-ca', files.ca], /--target-tls-ca: the target URL is plain TCP; write rediss:\/\//],
      [[...secure, '--tls-cert', files.clientCert], /--tls-cert needs --tls-key/],
      [[...secure, '--tls-cert', files.clientCert, '--tls-key', files.strangerKey], /the key does not belong to the certificate/],
      [[...secure, '--tls-ca', `${files.dir}/missing.pem`], /--tls-ca .*missing\.pem: no such file/],
      [[...secure, '--source-tls-ca', files.clientKey], /--source-tls-ca .*client\.key: no PEM certificate/],
    ];
    for (const [args, message] of cases) {
      for (const command of ['sync', 'verify']) {
        const r = await runCli([command, ...args, '--no-progress'], { timeoutMs: 20_000 });
        expect(r.code, `${command} ${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(lastLine(r.stderr)).toMatch(message);
      }
    }
  });
});
