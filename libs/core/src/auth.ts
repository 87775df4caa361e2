import { createHash, randomBytes } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { DateTime, DnsLabel, Ref, StringEnum } from './schemas.js';
import { ROLES, type Role } from './access.js';

/**
 * API tokens and roles. A token is a random secret shown once; etcd keeps
 * only its sha-256 with the token's name, role and creation time, so a read
 * of etcd (or a backup) gives nobody a usable token.
 */

/**
 * What each role is for, as the OpenAPI document and `berth` say it:
 * viewers read (every GET, the event stream, logs), operators also run
 * workloads (pods, services, jobs), admins also change the cluster (nodes,
 * tokens) and read the audit trail.
 */
export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  viewer: 'every read: GET routes, the event stream, logs, metrics',
  operator: 'viewer, and writes of pods, services and jobs',
  admin: 'operator, and nodes, tokens and the audit trail',
};

/** Secrets start with this, so a leaked one is easy to recognise (and to scan for). */
export const TOKEN_PREFIX = 'berth_';

/** A new token secret: 32 random bytes (256 bits), base64url. */
export function newTokenSecret(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** What etcd keeps of a secret: its sha-256, hex. */
export function tokenHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** `/berth/tokens/<name>`. */
export interface TokenRecord {
  name: string;
  role: Role;
  /** sha-256 of the secret, hex. */
  hash: string;
  createdAt: string;
  /** Token name of whoever created it. */
  createdBy: string;
}

const TokenName = DnsLabel({ minLength: 1, maxLength: 63, description: 'DNS-1123 label naming the token (who or what holds it)' });
const RoleField = StringEnum(ROLES, { description: `viewer: ${ROLE_DESCRIPTIONS.viewer}; operator: ${ROLE_DESCRIPTIONS.operator}; admin: ${ROLE_DESCRIPTIONS.admin}` });

export const CreateTokenRequest = Type.Object({ name: TokenName, role: RoleField }, { additionalProperties: false });
export type CreateTokenRequest = Static<typeof CreateTokenRequest>;

export const TokenView = Type.Object(
  { name: Type.String(), role: RoleField, createdAt: DateTime(), createdBy: Type.String() },
  { $id: 'Token', description: 'An API token as listed: never its secret.' },
);
export type TokenView = Static<typeof TokenView>;

export const TokenList = Type.Object({ items: Type.Array(Ref(TokenView)) }, { $id: 'TokenList' });

export const CreatedToken = Type.Object(
  {
    name: Type.String(),
    role: RoleField,
    createdAt: DateTime(),
    createdBy: Type.String(),
    token: Type.String({ description: 'the secret: shown only in this answer; send it as `Authorization: Bearer <token>`' }),
  },
  { $id: 'CreatedToken' },
);
export type CreatedToken = Static<typeof CreatedToken>;

/** Who a request is, as the API and the dashboard show it. */
export const SessionView = Type.Object(
  {
    auth: StringEnum(['on', 'off'] as const, { description: 'off: the controller runs without authentication (loopback only, or --insecure-no-auth)' }),
    name: Type.String({ description: "the token's name; `anonymous` while auth is off" }),
    role: RoleField,
    via: StringEnum(['bearer', 'cookie', 'none'] as const, { description: 'how this request authenticated' }),
    insecure: Type.Boolean({ description: 'true when the replica serves a non-loopback address without authentication (--insecure-no-auth): the dashboard says so loudly' }),
  },
  { $id: 'Session' },
);
export type SessionView = Static<typeof SessionView>;

export const LoginRequest = Type.Object({ token: Type.String({ minLength: 1, maxLength: 200, description: 'an API token secret' }) }, { additionalProperties: false });
export type LoginRequest = Static<typeof LoginRequest>;

/** `/berth/audit/<time>-<id>`: one API mutation, allowed or refused. */
export const AuditRecord = Type.Object(
  {
    id: Type.String(),
    time: DateTime(),
    actor: Type.String({ description: "the token's name, `anonymous` without one" }),
    role: Type.Union([RoleField, Type.Null()], { description: 'the role the request had; null when it had no valid token' }),
    replica: Type.String({ description: 'the controller replica that answered' }),
    method: Type.String(),
    route: Type.String({ description: 'the route pattern, e.g. /v1/pods/:id' }),
    target: Type.Union([Type.String(), Type.Null()], { description: 'the id or name acted on, when the route names one' }),
    status: Type.Integer({ description: 'the HTTP status the API answered' }),
    ip: Type.String(),
  },
  { $id: 'AuditRecord' },
);
export type AuditRecord = Static<typeof AuditRecord>;

export const AuditList = Type.Object({ items: Type.Array(Ref(AuditRecord)) }, { $id: 'AuditList' });
