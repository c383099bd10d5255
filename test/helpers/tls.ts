/**
 * Throw-away certificates for TLS tests, made with the openssl CLI in a private temp dir:
 * a CA, a server certificate for 127.0.0.1 (IP SAN) and localhost (DNS SAN), a client
 * certificate from the same CA, and a second, unrelated CA (for "wrong CA" cases).
 * EC keys: generating them takes milliseconds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TlsFiles {
  dir: string;
  /** CA that issued serverCert and clientCert. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that issued nothing here. */
  otherCa: string;
  /** Client certificate and key issued by otherCa (a server trusting `ca` refuses it). */
  strangerCert: string;
  strangerKey: string;
  /** ioredis `tls` options that trust `ca` and present the client certificate. */
  clientOptions(): { ca: Buffer; cert: Buffer; key: Buffer };
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir: string, name: string): void {
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', name]);
}

function newCa(dir: string, name: string, cn: string): void {
  newKey(dir, `${name}.key`);
  openssl(dir, ['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-days', '2', '-out', `${name}.crt`]);
}

/** A certificate for `cn` signed by `ca`, with the given extensions (subjectAltName...). */
function issue(dir: string, ca: string, name: string, cn: string, ext: string): void {
  newKey(dir, `${name}.key`);
  openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`]);
  writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
}

export function makeTlsFiles(): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), 'replicant-tls-'));
  newCa(dir, 'ca', 'Replicant Test CA');
  newCa(dir, 'other-ca', 'Unrelated Test CA');
  issue(dir, 'ca', 'server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth');
  issue(dir, 'ca', 'client', 'replicant', 'extendedKeyUsage=clientAuth');
  issue(dir, 'other-ca', 'stranger', 'stranger', 'extendedKeyUsage=clientAuth');
  const p = (f: string) => join(dir, f);
  return {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.crt'),
    strangerCert: p('stranger.crt'),
    strangerKey: p('stranger.key'),
    clientOptions: () => ({ ca: readFileSync(p('ca.crt')), cert: readFileSync(p('client.crt')), key: readFileSync(p('client.key')) }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
