import { EtcdRoleExistsError, EtcdUserExistsError, Range, type Etcd3 } from 'etcd3';
import { nameKey, prefixes, ROOT } from '@berth/core';

/** One grant of an etcd role: a permission on every key under a prefix, or on one key. */
export interface EtcdGrant {
  permission: 'Read' | 'Write' | 'Readwrite';
  prefix?: string;
  key?: string;
}

/**
 * The etcd roles of Berth's components, the one place they are defined (the
 * tests, `npm start --etcd-auth` and compose's init step all apply these).
 *
 * Controllers own everything under /berth/. Agents get exactly what they
 * write: their node record and its name claim, heartbeats, pod records (pod
 * status, and deleting a pod they stopped, with its name claim), events, and
 * their node credential. They read only those prefixes too, not all of
 * /berth/: tokens' hashes, the audit trail, services and jobs (payloads and
 * results of other workloads) are none of a node's business, and a node that
 * is taken over must not learn them. The node credential prefix is
 * write-only: an agent publishes its own secret and can read nobody's.
 */
export const ETCD_ROLES: Readonly<Record<'berth-controller' | 'berth-agent', readonly EtcdGrant[]>> = {
  'berth-controller': [{ permission: 'Readwrite', prefix: ROOT }],
  'berth-agent': [
    { permission: 'Readwrite', prefix: prefixes.nodes },
    { permission: 'Readwrite', prefix: nameKey('nodes', '') },
    { permission: 'Readwrite', prefix: prefixes.heartbeats },
    { permission: 'Readwrite', prefix: prefixes.pods },
    { permission: 'Readwrite', prefix: nameKey('pods', '') },
    { permission: 'Write', prefix: prefixes.events },
    { permission: 'Write', prefix: prefixes.nodeCreds },
    // The key /berth/ itself (never written): a guard-less transaction (commit() in txn.ts) compares its version.
    { permission: 'Read', key: ROOT },
  ],
};

/** Users and the role each gets. */
export const ETCD_USERS = { controller: 'berth-controller', agent: 'berth-agent' } as const;

/**
 * A user with no role at all, for health probes: with auth on, etcd refuses
 * an anonymous `etcdctl endpoint health` ("user name is empty": unhealthy),
 * while a user etcd knows but permits nothing is refused with "permission
 * denied", which etcdctl counts as healthy (the request went through
 * consensus). It can read and write nothing, so its password is no secret:
 * `ETCDCTL_USER=health:health etcdctl endpoint health`.
 */
export const ETCD_HEALTH_USER = { name: 'health', password: 'health' } as const;

/** Passwords of the users `applyEtcdAuth` creates. */
export interface EtcdAuthPasswords {
  root: string;
  controller: string;
  agent: string;
}

/**
 * Creates (or updates: it can run again) the roles, the users `root`,
 * `controller`, `agent` and the role-less `health` (ETCD_HEALTH_USER), and
 * turns etcd's auth on. `client` must be able
 * to manage users: unauthenticated before auth is on, root after.
 */
export async function applyEtcdAuth(client: Etcd3, passwords: EtcdAuthPasswords): Promise<void> {
  for (const [name, grants] of Object.entries(ETCD_ROLES)) {
    const role = client.role(name);
    await role.create().catch((err: unknown) => {
      if (!(err instanceof EtcdRoleExistsError)) throw err;
    });
    // A re-run applies the table as it is now: what it no longer grants goes.
    for (const held of await role.permissions()) await role.revoke(held);
    for (const g of grants) await role.grant(g.prefix !== undefined ? { permission: g.permission, range: Range.prefix(g.prefix) } : { permission: g.permission, key: g.key! });
  }
  const users: Array<[string, string, string]> = [
    ['root', passwords.root, 'root'],
    ['controller', passwords.controller, ETCD_USERS.controller],
    ['agent', passwords.agent, ETCD_USERS.agent],
  ];
  for (const [name, password, role] of users) {
    const user = client.user(name);
    await user.create(password).catch(async (err: unknown) => {
      if (!(err instanceof EtcdUserExistsError)) throw err;
      await user.setPassword(password);
    });
    await user.addRole(role);
  }
  await client
    .user(ETCD_HEALTH_USER.name)
    .create(ETCD_HEALTH_USER.password)
    .catch((err: unknown) => {
      if (!(err instanceof EtcdUserExistsError)) throw err;
    });
  await client.auth.authEnable();
}
