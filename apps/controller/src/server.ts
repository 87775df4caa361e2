import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import {
  AuditList,
  AuditRecord,
  BerthEvent,
  ClusterView,
  CreatedToken,
  ErrorResponse,
  EventList,
  HealthView,
  JobList,
  JobView,
  LIMITS,
  LeaderView,
  NodeList,
  NodeView,
  PodList,
  PodTemplate,
  PodView,
  ReplicaView,
  ServiceList,
  ServiceView,
  SessionView,
  TokenList,
  TokenView,
  errors,
} from '@berth/core';
import { answerFrameworkError } from '@berth/http';
import { installErrorHandling } from './errors.js';
import { servicesPlugin, type Services } from './plugins/services.js';
import { systemRoutes } from './routes/system.js';
import { leaderRoutes } from './routes/leader.js';
import { nodeRoutes } from './routes/nodes.js';
import { podRoutes } from './routes/pods.js';
import { eventRoutes } from './routes/events.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { serviceRoutes } from './routes/services.js';
import { proxyRoutes } from './routes/proxy.js';
import { jobRoutes } from './routes/jobs.js';
import { authRoutes } from './routes/auth.js';
import { documentAccess, installAuth } from './auth/plugin.js';
import { installSecurityHeaders, swaggerUiCsp } from './plugins/security-headers.js';

/** What the API of one replica is built from: its services, a logger, and the URL it is reached at. */
export interface ServerDeps extends Services {
  log: Logger;
  /** Where clients reach this replica (the OpenAPI document's server). */
  advertiseUrl: string;
  /** TLS: the API's certificate and key (PEM). */
  https?: { cert: Buffer; key: Buffer };
  /** Largest request body, JSON or proxied (default `LIMITS.bodyBytes`). */
  bodyLimit?: number;
}

const errorRef = { $ref: 'ErrorResponse#' } as const;

/**
 * `/v1` routes that stay up while etcd is down: the diagnostic view (it
 * reports etcd.reachable and this replica's role), the event stream, which
 * stays open and resumes (an EventSource gives up for good on a non-200
 * answer), and the service proxy.
 */
function servedWhileEtcdDown(path: string, query: string): boolean {
  return path === '/v1/cluster' || (path === '/v1/events' && /(^|&)watch=(1|true)\b/.test(query)) || PROXY_PATH.test(path);
}

/**
 * Routed requests keep flowing while etcd is away: the data path goes to
 * the pods the caches last knew (a pod that died meanwhile fails its
 * requests and is ejected), as a proxy keeps its last configuration.
 */
const PROXY_PATH = /^\/v1\/services\/[^/]+\/proxy(\/|$)/;

/** Methods whose requests Fastify reads a body for (with a content-type or a length): any of them can be sent bad JSON or too much of it. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Completes every documented route's responses with the errors the server
 * itself gives, so the OpenAPI document lists them all: 400 where the route
 * validates input or reads a body (bad JSON, an unaccepted content type),
 * 413 where it reads a body, 503 on `/v1` routes turned away while etcd is
 * down. A route without a success response is a mistake caught at start-up.
 */
function documentCommonErrors(route: RouteOptions): void {
  const schema = route.schema;
  if (schema === undefined || schema.hide === true) return;
  const response = (schema.response ?? {}) as Record<string, unknown>;
  if (!Object.keys(response).some((status) => status.startsWith('2'))) {
    throw new Error(`route ${String(route.method)} ${route.url} documents no success response`);
  }
  const readsBody = [route.method].flat().some((m) => BODY_METHODS.has(m));
  if ((schema.params !== undefined || schema.querystring !== undefined || readsBody) && response[400] === undefined) response[400] = errorRef;
  if (readsBody && response[413] === undefined) response[413] = errorRef;
  if (route.url.startsWith('/v1/') && route.url !== '/v1/cluster' && response[503] === undefined) response[503] = errorRef;
  schema.response = response;
}

/** The Fastify app of one replica: OpenAPI at /openapi.json, Swagger UI at /docs, every route schema-validated. */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.https === undefined ? {} : { https: deps.https }),
    loggerInstance: deps.log.child({ component: 'api' }) as FastifyBaseLogger,
    // Per-request logs would drown the leadership story; /metrics times every route instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimit ?? LIMITS.bodyBytes,
    frameworkErrors: answerFrameworkError,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  });

  for (const schema of [ErrorResponse, LeaderView, ReplicaView, ClusterView, HealthView, NodeView, NodeList, PodView, PodList, BerthEvent, EventList, PodTemplate, ServiceView, ServiceList, JobView, JobList, TokenView, TokenList, CreatedToken, SessionView, AuditRecord, AuditList]) {
    app.addSchema(schema);
  }
  app.addHook('onRoute', documentCommonErrors);
  app.addHook('onRoute', (route) => documentAccess(route, deps.auth));
  // First: every route after it, /docs and the dashboard included, gets the headers.
  await installSecurityHeaders(app, { tls: deps.auth.tls });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Berth API',
        version: '1',
        description: 'Highly-available container orchestrator. Every replica serves this API; the elected leader schedules.',
      },
      servers: [{ url: deps.advertiseUrl }],
      tags: [
        { name: 'system', description: 'health, readiness, metrics' },
        { name: 'cluster', description: 'leader election and replicas' },
        { name: 'nodes', description: 'nodes: agents that heartbeat through etcd leases' },
        { name: 'pods', description: 'pods: scheduled by the leader, run by node agents' },
        { name: 'services', description: 'services: replicated pods of a template, and request routing to the ready ones' },
        { name: 'jobs', description: 'jobs: requests to a service, durable in etcd, retried on another pod, answered with the result' },
        { name: 'events', description: 'cluster events and the live Server-Sent Events stream the dashboard uses' },
        { name: 'auth', description: 'API tokens and roles (viewer < operator < admin), dashboard sessions, the audit trail' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'an API token: the bootstrap admin token (--admin-token-file) or one made with POST /v1/tokens' },
          sessionCookie: { type: 'apiKey', in: 'cookie', name: 'berth_session', description: 'the dashboard session from POST /v1/session (HttpOnly, SameSite=Strict)' },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: swaggerUiCsp(deps.auth.tls) });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const health = deps.etcdHealth;
  installErrorHandling(app, () => (health.down ? health.problem : undefined));
  deps.metrics.instrument(app);
  const { log: _log, advertiseUrl: _url, https: _https, bodyLimit: _limit, ...services } = deps;
  await app.register(servicesPlugin, services);
  // Before the routes: the rate limiter hooks the routes registered after it.
  await installAuth(app, deps.auth);
  // While etcd does not answer (down, or no quorum), the API says so instead of
  // serving a frozen watch cache as if it were current: every /v1 request
  // answers 503 ETCD_UNAVAILABLE, like a write would after its deadline, only at once.
  // After authentication (a hook added after installAuth's): a caller without a
  // token learns 401, not the state of etcd and its endpoints.
  app.addHook('preParsing', async (req) => {
    if (!health.down || !req.url.startsWith('/v1/')) return;
    const [path = '', query = ''] = req.url.split('?', 2);
    if (servedWhileEtcdDown(path, query)) return;
    throw errors.etcdUnavailable(health.problem);
  });
  await app.register(systemRoutes);
  await app.register(leaderRoutes, { prefix: '/v1' });
  await app.register(nodeRoutes, { prefix: '/v1' });
  await app.register(podRoutes, { prefix: '/v1' });
  await app.register(eventRoutes, { prefix: '/v1' });
  await app.register(serviceRoutes, { prefix: '/v1' });
  await app.register(proxyRoutes, { prefix: '/v1' });
  await app.register(jobRoutes, { prefix: '/v1' });
  await app.register(authRoutes, { prefix: '/v1' });
  await app.register(dashboardRoutes);
  return app;
}
