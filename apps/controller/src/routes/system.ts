import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Controller } from '../controller.js';

const errorRef = { $ref: 'ErrorResponse#' } as const;
const healthRef = { $ref: 'HealthView#' } as const;

/** `/healthz` (the process is up), `/readyz` (etcd answers and the caches are synced), `/metrics`. */
export function systemRoutes(controller: Controller): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/healthz',
      { schema: { tags: ['system'], summary: 'Liveness: answers while the process runs, even without etcd', response: { 200: healthRef } } },
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
        const unsynced = controller.informers.filter((i) => !i.ready).map((i) => i.prefix);
        const problems: string[] = [];
        if (!controller.health.reachable) problems.push(controller.health.problem);
        if (unsynced.length > 0) problems.push(`watch cache not synced yet for ${unsynced.join(', ')}`);
        if (problems.length > 0) {
          const error = controller.health.reachable ? 'NOT_READY' : 'ETCD_UNAVAILABLE';
          return reply.status(503).send({ error, message: problems.join('; ') });
        }
        return { status: 'ready', checks: { etcd: 'ok', caches: 'synced' } };
      },
    );

    app.get('/metrics', { schema: { tags: ['system'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
      void reply.type(controller.metrics.registry.contentType);
      return controller.metrics.registry.metrics();
    });
  };
}
