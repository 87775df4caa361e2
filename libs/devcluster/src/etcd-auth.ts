import fs from 'node:fs';
import path from 'node:path';
import { ensureEtcdAuth, passwordInFile, type EtcdAuthPasswords, type EtcdCredentials } from '@berth/store';

/** What `enableEtcdAuth` set up: the password files and each component's flags. */
export interface EtcdAuthSetup {
  /** Password files by user (mode 0600). */
  passwordFiles: Record<keyof EtcdAuthPasswords, string>;
  /** `--etcd-user controller --etcd-password-file ...`, plus `--node-etcd-*` for the agents a controller provisions. */
  controllerArgs: string[];
  /** `--etcd-user agent --etcd-password-file ...`. */
  agentArgs: string[];
  /** Credentials of etcd's root user (manages users; tests use it to look at everything). */
  root: EtcdCredentials;
  /** Credentials of the users themselves, for tests that act as one. */
  controller: EtcdCredentials;
  agent: EtcdCredentials;
}

/**
 * Turns etcd's auth on with Berth's roles and users (applyEtcdAuth), keeping
 * the passwords in `dir` (made on first use, reused after). Runs again on an
 * etcd whose auth is already on, as root. `tls`: the CA and client
 * certificate to reach an etcd that requires them.
 */
export async function enableEtcdAuth(endpoint: string, dir: string, tls: EtcdCredentials = {}): Promise<EtcdAuthSetup> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const users = ['root', 'controller', 'agent'] as const;
  const passwordFiles = Object.fromEntries(users.map((u) => [u, path.join(dir, `${u}.password`)])) as Record<keyof EtcdAuthPasswords, string>;
  const passwords = Object.fromEntries(users.map((u) => [u, passwordInFile(passwordFiles[u])])) as unknown as EtcdAuthPasswords;
  const root: EtcdCredentials = { ...tls, user: 'root', password: passwords.root };
  await ensureEtcdAuth(endpoint, passwords, tls);
  const userArgs = (u: 'controller' | 'agent') => ['--etcd-user', u, '--etcd-password-file', passwordFiles[u]];
  return {
    passwordFiles,
    controllerArgs: [...userArgs('controller'), '--node-etcd-user', 'agent', '--node-etcd-password-file', passwordFiles.agent],
    agentArgs: userArgs('agent'),
    root,
    controller: { ...tls, user: 'controller', password: passwords.controller },
    agent: { ...tls, user: 'agent', password: passwords.agent },
  };
}
