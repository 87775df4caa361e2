import fs from 'node:fs';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { newTokenSecret, tokenHash } from '@berth/core';
import type { EventRecorder } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';
import type { AuthConfig } from '../config.js';
import { AuditTrail } from './audit.js';
import type { AuthSettings } from './plugin.js';
import { TokenService } from './tokens.js';

/** What the bootstrap admin token file gave: the secret and whether this replica created the file. */
export interface AdminToken {
  secret: string;
  created: boolean;
  /** Set when the file can be read by other users: the operator should tighten it. */
  warning?: string;
}

/** Shortest secret accepted from a file an operator wrote. */
const MIN_SECRET_LENGTH = 16;

/**
 * Reads the bootstrap admin token from `file`, creating it (mode 0600, a new
 * random secret) when it is missing. Creation is atomic (a temporary file
 * linked into place), so replicas that start together on one file end up
 * with the one secret whichever of them wins.
 */
export function loadAdminToken(file: string): AdminToken {
  let created = false;
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${newTokenSecret()}\n`, { mode: 0o600 });
    try {
      fs.linkSync(tmp, file);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  const secret = fs.readFileSync(file, 'utf8').trim();
  if (secret.length < MIN_SECRET_LENGTH || /\s/.test(secret)) {
    throw new Error(`--admin-token-file ${file}: expected one token of at least ${MIN_SECRET_LENGTH} characters without spaces (delete the file to have a new one made)`);
  }
  const mode = fs.statSync(file).mode & 0o777;
  return {
    secret,
    created,
    ...((mode & 0o077) !== 0 ? { warning: `--admin-token-file ${file} is readable by other users (mode ${mode.toString(8)}): chmod 600 it` } : {}),
  };
}

/**
 * The key session cookies are signed with, derived from the bootstrap
 * secret: every replica that shares the admin token accepts the others'
 * cookies, and replacing the admin token ends every session.
 */
export function sessionKey(adminSecret: string): string {
  return createHmac('sha256', adminSecret).update('berth session cookie v1').digest('base64url');
}

/**
 * A replica's auth: loads (or creates) the bootstrap admin token, builds the
 * token service and the audit trail. `notice` logs, once the API listens,
 * where the admin token is, or loudly that auth is off.
 */
export function createAuth(opts: { client: Etcd3; state: ClusterState; events: EventRecorder; replica: string; config: AuthConfig; tls: boolean; log: Logger }): {
  settings: AuthSettings;
  notice: (listen: string) => void;
} {
  const { config, log } = opts;
  const admin = config.adminTokenFile === undefined ? undefined : loadAdminToken(config.adminTokenFile);
  const tokens = new TokenService(opts.client, opts.state, opts.events, admin === undefined ? undefined : tokenHash(admin.secret), log);
  const notice = (listen: string): void => {
    if (admin === undefined && config.insecure) log.warn({ listen }, 'INSECURE: --insecure-no-auth: anyone who reaches this API can do anything, including running any command on the nodes');
    else if (admin === undefined) log.warn({ listen }, 'authentication is off: the API listens on loopback only; give --admin-token-file to require tokens');
    else log.info({ adminTokenFile: config.adminTokenFile, created: admin.created }, 'authentication on: the bootstrap admin token is in --admin-token-file');
    if (admin?.warning !== undefined) log.warn(admin.warning);
  };
  const settings: AuthSettings = {
    enabled: admin !== undefined,
    insecure: config.insecure,
    tokens,
    audit: new AuditTrail(opts.client, opts.replica, config.auditTtlSeconds, log),
    ...(admin === undefined ? {} : { sessionKey: sessionKey(admin.secret) }),
    tls: opts.tls,
    metricsPublic: config.metricsPublic,
    rateLimit: config.rateLimit,
  };
  return { settings, notice };
}
