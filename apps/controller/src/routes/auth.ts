import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { BerthError, CreateTokenRequest, DNS_LABEL, LoginRequest, type SessionView } from '@berth/core';
import { routePlugin } from '../plugins/services.js';
import { clearSession, setSession } from '../auth/plugin.js';

const errorRef = { $ref: 'ErrorResponse#' } as const;
const sessionRef = { $ref: 'Session#' } as const;
const TokenParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63, pattern: DNS_LABEL.source, description: 'token name' }) });
const AuditQuery = Type.Object({
  since: Type.Optional(Type.String({ format: 'date-time', maxLength: 40, description: 'records at or after this time (default: the newest `limit`)' })),
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: DNS_LABEL.source, description: "only this token's records (`anonymous`: requests without a valid token)" })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: 500 })),
}, { additionalProperties: false });

/** `/v1/tokens` (admin), `/v1/audit` (admin) and `/v1/session` (the dashboard's login). */
export const authRoutes = routePlugin('auth-routes', ['auth'], async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { auth } = fastify;
  const { tokens } = auth;

  app.get('/tokens', { schema: { tags: ['auth'], summary: 'API tokens: names, roles, creation (never their secrets)', response: { 200: { $ref: 'TokenList#' } } } }, async () => ({
    items: tokens.list(),
  }));

  app.post(
    '/tokens',
    {
      schema: {
        tags: ['auth'],
        summary: 'Create a token; the answer holds its secret, shown only this once',
        body: CreateTokenRequest,
        response: { 201: { $ref: 'CreatedToken#' }, 409: errorRef },
      },
    },
    async (req, reply) => reply.status(201).send(await tokens.create(req.body, req.principal?.name ?? 'anonymous')),
  );

  app.delete(
    '/tokens/:name',
    { schema: { tags: ['auth'], summary: 'Revoke a token: every replica refuses it once its watch cache sees the delete', params: TokenParams, response: { 200: { $ref: 'Token#' }, 404: errorRef, 409: errorRef } } },
    async (req) => tokens.remove(req.params.name, req.principal?.name ?? 'anonymous'),
  );

  app.get(
    '/audit',
    { schema: { tags: ['auth'], summary: 'The audit trail: every API mutation, allowed or refused, oldest first', querystring: AuditQuery, response: { 200: { $ref: 'AuditList#' } } } },
    async (req) => {
      const { since, actor, limit = 500 } = req.query;
      return { items: await auth.audit.list({ ...(since === undefined ? {} : { since: new Date(since) }), ...(actor === undefined ? {} : { actor }), limit }) };
    },
  );

  const session = (req: { principal: { name: string; role: SessionView['role'] } | null; authVia: SessionView['via'] }): SessionView =>
    auth.enabled || req.principal !== null
      ? { auth: auth.enabled ? 'on' : 'off', name: req.principal?.name ?? 'anonymous', role: req.principal?.role ?? 'viewer', via: req.authVia, insecure: auth.insecure }
      : { auth: 'off', name: 'anonymous', role: 'admin', via: 'none', insecure: auth.insecure };

  app.get('/session', { schema: { tags: ['auth'], summary: 'Who this request is: token name and role (the dashboard shows them)', response: { 200: sessionRef } } }, async (req) => session(req));

  app.post(
    '/session',
    { schema: { tags: ['auth'], summary: 'Log in: trade a token for an HttpOnly, SameSite=Strict session cookie (the dashboard and its event stream use it)', body: LoginRequest, response: { 200: sessionRef } } },
    async (req, reply) => {
      if (!auth.enabled) return session(req);
      const principal = tokens.resolve(req.body.token);
      if (principal === undefined) throw new BerthError('UNAUTHENTICATED', 'unknown or revoked token');
      req.principal = principal;
      setSession(reply, principal, auth.tls);
      return { auth: 'on', name: principal.name, role: principal.role, via: 'cookie', insecure: false } satisfies SessionView;
    },
  );

  app.delete('/session', { schema: { tags: ['auth'], summary: 'Log out: clears the session cookie', response: { 204: Type.Null() } } }, async (_req, reply) => {
    clearSession(reply, auth.tls);
    return reply.status(204).send(null);
  });
});
