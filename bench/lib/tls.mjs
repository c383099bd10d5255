/**
 * Throw-away certificates for TLS benchmark rows, made with the openssl CLI in a temp dir that is
 * removed at exit (see processes.mjs): a CA and one certificate for 127.0.0.1 (IP SAN) and
 * localhost, usable both as the servers' certificate and, with `tls-replication yes`, as a native
 * replica's client certificate towards its master. EC keys: generating them takes milliseconds.
 * (The same approach as test/helpers/tls.ts, which the bench scripts do not import.)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './processes.mjs';

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Returns { dir, ca, cert, key } (file paths) and `clientOptions()` for ioredis's `tls`. */
export function makeTlsFiles() {
  const dir = tempDir('replicant-bench-tls-');
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
  openssl(dir, ['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=Replicant Bench CA', '-days', '2', '-out', 'ca.crt']);
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key']);
  openssl(dir, ['req', '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-out', 'server.csr']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt']);
  const ca = join(dir, 'ca.crt');
  const caPem = readFileSync(ca);
  return {
    dir,
    ca,
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
    // No servername: Node then checks the certificate against the IP literal (its IP SAN), no SNI.
    clientOptions: () => ({ ca: caPem }),
  };
}
