import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import { BerthError, roleAllows } from '@berth/core';
import { accessDescription, isMutation, PROXY_ROUTE, requiredAccess } from './access.js';
import type { AuditTrail } from './audit.js';
import type { Principal, TokenService } from './tokens.js';

/** How a replica authenticates, limits and audits its API. */
export interface AuthSettings {
  /** False: no token needed (loopback only, or `--insecure-no-auth`); limits and the audit trail still apply. */
  enabled: boolean;
  /** Off on purpose on a non-loopback address (`--insecure-no-auth`): the dashboard says so. */
  insecure: boolean;
  tokens: TokenService;
  audit: AuditTrail;
  /** Key session cookies are signed with (derived from the bootstrap admin token); undefined when auth is off. */
  sessionKey?: string;
  /** The API is served over TLS: session cookies get `Secure`. */
  tls: boolean;
  metricsPublic: boolean;
  /** Requests per second per token (per client address without one); 0: unlimited. */
  rateLimit: { read: number; write: number };
}

/** The session cookie's name. */
export const SESSION_COOKIE = 'berth_session';
/** How long a dashboard login lasts. */
export const SESSION_SECONDS = 12 * 3600;

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request (null: nobody we know, or auth off). */
    principal: Principal | null;
    /** How `principal` was found. */
    authVia: 'bearer' | 'cookie' | 'none';
  }
}

const errorRef = { $ref: 'ErrorResponse#' } as const;

/** The session cookie's value: the token's hash and when the session ends (signed by @fastify/cookie). */
export function sessionValue(hash: string, nowMs = Date.now()): string {
  return `${hash}.${Math.floor(nowMs / 1000) + SESSION_SECONDS}`;
}

/** The principal a signed session cookie stands for: undefined when unsigned, expired, or its token revoked. */
function sessionPrincipal(req: FastifyRequest, tokens: TokenService): Principal | undefined {
  const raw = req.cookies[SESSION_COOKIE];
  if (raw === undefined) return undefined;
  const unsigned = req.unsignCookie(raw);
  if (!unsigned.valid || unsigned.value === null) return undefined;
  const [hash = '', until = '0'] = unsigned.value.split('.');
  if (!/^[0-9a-f]{64}$/.test(hash) || Number(until) * 1000 < Date.now()) return undefined;
  return tokens.resolveHash(hash);
}

/** A mutation carried by a cookie must come from our own pages: the browser says where it came from. */
function crossSite(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'cross-site' || site === 'same-site';
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

/**
 * Declares the access of each documented route in the OpenAPI document: the
 * role it needs (`x-berth-role` and a sentence), the schemes it accepts, and
 * the answers auth adds (401, 403, 429).
 */
export function documentAccess(route: RouteOptions, opts: { metricsPublic: boolean }): void {
  const schema = route.schema;
  if (schema === undefined || schema.hide === true) return;
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  const { role, text } = accessDescription(methods, route.url, opts);
  const s = schema as Record<string, unknown>;
  s['x-berth-role'] = role;
  s.description = typeof s.description === 'string' ? `${s.description}\n\n${text}` : text;
  s.security = role === 'public' ? [] : [{ bearerAuth: [] }, { sessionCookie: [] }];
  const response = (schema.response ?? {}) as Record<string, unknown>;
  if (role !== 'public' || route.url === '/v1/session') response[401] ??= errorRef;
  if (role !== 'public' && (role !== 'viewer' || methods.some(isMutation) || PROXY_ROUTE.test(route.url))) response[403] ??= errorRef;
  if (route.url !== '/healthz' && route.url !== '/readyz') response[429] ??= errorRef;
  schema.response = response;
}

/**
 * Authentication, authorization, rate limits and the audit trail, in the
 * order a request meets them: `onRequest` finds who it is (bearer token or
 * session cookie; nothing is refused yet), the rate limiter counts it per
 * token (per address without one, so guessing tokens is limited too), then
 * `preParsing` refuses what its role may not do, before a body is read.
 * Every mutation, refused ones included, is audited when its answer is sent.
 */
export async function installAuth(app: FastifyInstance, auth: AuthSettings): Promise<void> {
  const { tokens } = auth;
  await app.register(cookie, auth.sessionKey === undefined ? {} : { secret: auth.sessionKey });
  app.decorateRequest('principal', null);
  app.decorateRequest('authVia', 'none');

  app.addHook('onRequest', async (req) => {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      const principal = m?.[1] === undefined ? undefined : tokens.resolve(m[1]);
      if (principal !== undefined) {
        req.principal = principal;
        req.authVia = 'bearer';
      }
      return;
    }
    if (auth.sessionKey === undefined) return;
    const principal = sessionPrincipal(req, tokens);
    if (principal !== undefined) {
      req.principal = principal;
      req.authVia = 'cookie';
    }
  });

  const { read, write } = auth.rateLimit;
  const limited = read > 0 || write > 0;
  if (limited) {
    await app.register(rateLimit, {
      global: true,
      timeWindow: 1000,
      max: (_req, key) => (key.endsWith(':w') ? write || Number.MAX_SAFE_INTEGER : read || Number.MAX_SAFE_INTEGER),
      keyGenerator: (req) => `${req.principal === null ? `ip:${req.ip}` : `token:${req.principal.name}`}:${isMutation(req.method) ? 'w' : 'r'}`,
      // Health probes come from whatever watches the replica; they never carry a token.
      allowList: (req) => req.url === '/healthz' || req.url === '/readyz',
      enableDraftSpec: true,
      errorResponseBuilder: (req, ctx) =>
        new BerthError('RATE_LIMITED', `rate limit of ${ctx.max} ${isMutation(req.method) ? 'writes' : 'reads'} per second for ${req.principal === null ? 'this client address' : `token ${req.principal.name}`} exceeded: retry in ${ctx.after}`),
    });
  }

  app.addHook('preParsing', async (req) => {
    const access = requiredAccess(req.method, req.routeOptions.url, auth);
    if (access === 'public') return;
    if (!auth.enabled) return;
    if (req.principal === null) {
      throw new BerthError('UNAUTHENTICATED', 'this API needs a token: send `Authorization: Bearer <token>` (or log in to the dashboard)');
    }
    if (!roleAllows(req.principal.role, access)) {
      throw new BerthError('FORBIDDEN', `role ${req.principal.role} may not ${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}: it needs role ${access}`, { needs: access, role: req.principal.role });
    }
    if (req.authVia === 'cookie' && isMutation(req.method) && crossSite(req)) {
      throw new BerthError('FORBIDDEN', 'a cross-site request may not change anything with the session cookie');
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    if (!isMutation(req.method) || req.routeOptions.url === undefined || PROXY_ROUTE.test(req.routeOptions.url)) return;
    auth.audit.record({
      actor: req.principal?.name ?? 'anonymous',
      role: req.principal?.role ?? null,
      method: req.method,
      route: req.routeOptions.url,
      target: auditTarget(req),
      status: reply.statusCode,
      ip: req.ip,
    });
  });
}

/** What a mutation acted on: the id or name in its path, else the name in its body. */
function auditTarget(req: FastifyRequest): string | null {
  const params = (req.params ?? {}) as Record<string, unknown>;
  for (const key of ['id', 'name']) if (typeof params[key] === 'string') return params[key];
  const body = req.body as Record<string, unknown> | undefined;
  if (body !== null && typeof body === 'object' && typeof body.name === 'string') return body.name;
  return null;
}

/** Sets the session cookie for `principal` (its token's hash, signed). */
export function setSession(reply: FastifyReply, principal: Principal, tls: boolean): void {
  reply.setCookie(SESSION_COOKIE, sessionValue(principal.hash), { signed: true, httpOnly: true, sameSite: 'strict', secure: tls, path: '/', maxAge: SESSION_SECONDS });
}

/** Clears the session cookie. */
export function clearSession(reply: FastifyReply, tls: boolean): void {
  reply.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: tls, path: '/' });
}
