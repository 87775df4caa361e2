import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { ClusterView, ErrorResponse, HealthView, LeaderView, NodeList, NodeView, PodList, PodView, ReplicaView, errors } from '@berth/core';
import type { Controller } from './controller.js';
import { installErrorHandling } from './errors.js';
import { systemRoutes } from './routes/system.js';
import { leaderRoutes } from './routes/leader.js';
import { nodeRoutes } from './routes/nodes.js';
import { podRoutes } from './routes/pods.js';
import { eventRoutes } from './routes/events.js';
import { dashboardRoutes } from './routes/dashboard.js';

/** The Fastify app of one replica: OpenAPI at /openapi.json, Swagger UI at /docs, every route schema-validated. */
export async function buildServer(controller: Controller): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: controller.log.child({ component: 'api' }) as FastifyBaseLogger,
    // Per-request logs would drown the leadership story; /metrics times every route instead.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  });

  for (const schema of [ErrorResponse, LeaderView, ReplicaView, ClusterView, HealthView, NodeView, NodeList, PodView, PodList]) app.addSchema(schema);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Berth API',
        version: '1',
        description: 'Highly-available container orchestrator. Every replica serves this API; the elected leader schedules.',
      },
      servers: [{ url: controller.config.advertiseUrl }],
      tags: [
        { name: 'system', description: 'health, readiness, metrics' },
        { name: 'cluster', description: 'leader election and replicas' },
        { name: 'nodes', description: 'nodes: agents that heartbeat through etcd leases' },
        { name: 'pods', description: 'pods: scheduled by the leader, run by node agents' },
        { name: 'events', description: 'audit events and the live Server-Sent Events stream the dashboard uses' },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  installErrorHandling(app, () => (controller.health.down ? controller.health.problem : undefined));
  controller.metrics.instrument(app);
  // While etcd does not answer (down, or no quorum), the API says so instead of
  // serving a frozen watch cache as if it were current: every /v1 request
  // answers 503 ETCD_UNAVAILABLE, like a write would after its deadline, only at
  // once. Exempt: /v1/cluster (the diagnostic view: it reports etcd.reachable
  // and this replica's role) and the event stream, which stays open and resumes
  // (an EventSource gives up for good on a non-200 answer).
  app.addHook('onRequest', async (req) => {
    if (!controller.health.down || !req.url.startsWith('/v1/')) return;
    const path = req.url.split('?')[0];
    if (path === '/v1/cluster' || (path === '/v1/events' && /[?&]watch=(1|true)\b/.test(req.url))) return;
    throw errors.etcdUnavailable(controller.health.problem);
  });
  await app.register(systemRoutes(controller));
  await app.register(leaderRoutes(controller), { prefix: '/v1' });
  await app.register(nodeRoutes(controller), { prefix: '/v1' });
  await app.register(podRoutes(controller), { prefix: '/v1' });
  await app.register(eventRoutes(controller, controller.feed), { prefix: '/v1' });
  await app.register(dashboardRoutes());
  return app;
}
