import fs from 'node:fs';
import { errors } from '@berth/core';
import type { EtcdCredentials } from './client.js';

/** The etcd credential flags every component takes: file paths, never secrets themselves. */
export interface EtcdCredentialFlags {
  etcdUser?: string;
  etcdPasswordFile?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw errors.validation(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * Reads the files the flags name into the client's credentials. The password
 * comes from a file (its first line) so it never shows in `ps` or a shell
 * history; its content never appears in an error.
 */
export function loadEtcdCredentials(f: EtcdCredentialFlags): EtcdCredentials | undefined {
  if ((f.etcdUser === undefined) !== (f.etcdPasswordFile === undefined)) {
    throw errors.validation('--etcd-user and --etcd-password-file go together: give both or neither');
  }
  if ((f.etcdCert === undefined) !== (f.etcdKey === undefined)) throw errors.validation('--etcd-cert and --etcd-key go together: give both or neither');
  if (f.etcdCert !== undefined && f.etcdCa === undefined) throw errors.validation('--etcd-cert needs --etcd-ca (the CA that signed etcd\'s server certificate)');
  const out: EtcdCredentials = {};
  if (f.etcdUser !== undefined && f.etcdPasswordFile !== undefined) {
    const password = readFlagFile('--etcd-password-file', f.etcdPasswordFile).toString('utf8').split(/\r?\n/)[0]!;
    if (password.length === 0) throw errors.validation(`--etcd-password-file ${f.etcdPasswordFile}: the file is empty`);
    out.user = f.etcdUser;
    out.password = password;
  }
  if (f.etcdCa !== undefined) out.ca = readFlagFile('--etcd-ca', f.etcdCa);
  if (f.etcdCert !== undefined) out.cert = readFlagFile('--etcd-cert', f.etcdCert);
  if (f.etcdKey !== undefined) out.key = readFlagFile('--etcd-key', f.etcdKey);
  return Object.keys(out).length === 0 ? undefined : out;
}

/** The flags (commander spelling), their help and environment variables: controllers and agents declare the same ones. */
export const ETCD_CREDENTIAL_FLAGS: ReadonlyArray<readonly [flags: string, help: string, env: string]> = [
  ['--etcd-user <name>', "this component's etcd user (etcd auth; needs --etcd-password-file)", 'BERTH_ETCD_USER'],
  ['--etcd-password-file <file>', "file holding the etcd user's password (first line)", 'BERTH_ETCD_PASSWORD_FILE'],
  ['--etcd-ca <file>', "CA certificate (PEM) that signed etcd's server certificates: connect with TLS", 'BERTH_ETCD_CA'],
  ['--etcd-cert <file>', 'client certificate (PEM) presented to etcd (with --etcd-key)', 'BERTH_ETCD_CERT'],
  ['--etcd-key <file>', "the client certificate's private key (PEM)", 'BERTH_ETCD_KEY'],
];
