import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { routePlugin } from '../plugins/services.js';

const errorRef = { $ref: 'ErrorResponse#' } as const;
const healthRef = { $ref: 'HealthView#' } as const;

/** `/healthz` (the process is up), `/readyz` (etcd answers and the caches are synced), `/metrics`. */
export const systemRoutes = routePlugin('system-routes', ['clusterState', 'etcdHealth', 'metrics'], async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { clusterState: state, etcdHealth: health, metrics } = fastify;

  app.get(
    '/healthz',
    {
      schema: { tags: ['system'], summary: 'Liveness: answers while the process runs, even without etcd', response: { 200: healthRef } },
      // The dashboard of another replica probes this (a no-cors fetch) to fail over: the browser
      // must see that the answer came, which the default same-origin resource policy hides.
      helmet: { crossOriginResourcePolicy: { policy: 'cross-origin' } },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['system'],
        summary: 'Readiness: etcd reachable with quorum and every watch cache synced',
        response: { 200: healthRef, 503: errorRef },
      },
    },
    async (_req, reply) => {
      const unsynced = state.unsynced();
      const problems: string[] = [];
      if (!health.reachable) problems.push(health.problem);
      if (unsynced.length > 0) problems.push(`watch cache not synced yet for ${unsynced.join(', ')}`);
      if (problems.length > 0) {
        const error = health.reachable ? 'NOT_READY' : 'ETCD_UNAVAILABLE';
        return reply.status(503).send({ error, message: problems.join('; ') });
      }
      return { status: 'ready', checks: { etcd: 'ok', caches: 'synced' } };
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['system'],
        summary: 'Prometheus metrics',
        response: {
          200: {
            description: 'Prometheus text exposition format',
            content: { 'text/plain': { schema: Type.String() } },
          },
        },
      },
    },
    async (_req, reply) => {
      void reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );
});
