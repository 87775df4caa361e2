import crypto from 'node:crypto';
import fs from 'node:fs';
import { createEtcdClient, type EtcdCredentials } from './client.js';
import { applyEtcdAuth, type EtcdAuthPasswords } from './etcd-roles.js';

/**
 * The password in `file` (its first line), made (random, mode 0600) when the
 * file does not exist yet: a re-run, or a restart, keeps the password etcd
 * already has for that user.
 */
export function passwordInFile(file: string): string {
  if (!fs.existsSync(file)) fs.writeFileSync(file, `${crypto.randomBytes(18).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  const password = fs.readFileSync(file, 'utf8').split(/\r?\n/)[0]!;
  if (password.length === 0) throw new Error(`${file}: the password file is empty`);
  return password;
}

/** etcd with auth on refuses an anonymous request ("user name is empty"), or the request of a certificate's user. */
function isAuthOnAlready(err: unknown): boolean {
  return err instanceof Error && /user name is empty|permission denied|authentication/i.test(err.message);
}

/**
 * Applies Berth's roles and users and turns etcd's auth on (applyEtcdAuth):
 * anonymously while auth is off, as root (with `passwords.root`) once it is
 * on, so it can run again on every start. `tls`: the CA (and client
 * certificate) to reach an etcd that requires them.
 */
export async function ensureEtcdAuth(endpoints: string, passwords: EtcdAuthPasswords, tls: EtcdCredentials = {}): Promise<void> {
  const open = createEtcdClient(endpoints, { credentials: tls });
  try {
    await applyEtcdAuth(open, passwords);
  } catch (err) {
    if (!isAuthOnAlready(err)) throw err;
    const asRoot = createEtcdClient(endpoints, { credentials: { ...tls, user: 'root', password: passwords.root } });
    try {
      await applyEtcdAuth(asRoot, passwords);
    } finally {
      asRoot.close();
    }
  } finally {
    open.close();
  }
}
