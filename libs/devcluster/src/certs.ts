import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** A certificate and its key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** A CA, a server certificate for etcd (127.0.0.1, localhost) and client certificates by common name. */
export interface TestPki {
  ca: string;
  server: CertFiles;
  /** Client certificates by CN; with `--client-cert-auth` and etcd auth on, etcd takes the CN as the user. */
  clients: Record<string, CertFiles>;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Makes a throwaway PKI with `openssl` in `dir` (P-256 keys, valid one day):
 * the same steps docs/security.md shows for a real one.
 */
export function makeTestPki(dir: string, clients: readonly string[]): TestPki {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=berth-test-ca');
  const sign = (name: string, cn: string, ext: string): CertFiles => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(dir, 'req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
    return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  };
  const server = sign('etcd-server', 'etcd', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  const out: Record<string, CertFiles> = {};
  for (const cn of clients) out[cn] = sign(`client-${cn}`, cn, 'extendedKeyUsage=clientAuth\n');
  return { ca: path.join(dir, 'ca.crt'), server, clients: out };
}
