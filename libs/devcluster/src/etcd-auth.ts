import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { applyEtcdAuth, createEtcdClient, type EtcdAuthPasswords, type EtcdCredentials } from '@berth/store';

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

/** The password in `file`, made (random, 0600) if the file does not exist yet, so a restart keeps it. */
function passwordIn(file: string): string {
  if (!fs.existsSync(file)) fs.writeFileSync(file, `${crypto.randomBytes(18).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  return fs.readFileSync(file, 'utf8').split('\n')[0]!;
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
  const passwords = Object.fromEntries(users.map((u) => [u, passwordIn(passwordFiles[u])])) as unknown as EtcdAuthPasswords;
  const root: EtcdCredentials = { ...tls, user: 'root', password: passwords.root };
  // Before auth is on, anyone may manage users; after, only root.
  const open = createEtcdClient(endpoint, { credentials: tls });
  try {
    await applyEtcdAuth(open, passwords);
  } catch (err) {
    if (!isAuthOnAlready(err)) throw err;
    const asRoot = createEtcdClient(endpoint, { credentials: root });
    try {
      await applyEtcdAuth(asRoot, passwords);
    } finally {
      asRoot.close();
    }
  } finally {
    open.close();
  }
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

/** etcd with auth on refuses an anonymous request ("user name is empty") or its certificate's user. */
function isAuthOnAlready(err: unknown): boolean {
  return err instanceof Error && /user name is empty|permission denied|authentication/i.test(err.message);
}
