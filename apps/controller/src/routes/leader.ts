import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Controller } from '../controller.js';

/** `GET /v1/leader` and `GET /v1/cluster`, answered from this replica's watch cache. */
export function leaderRoutes(controller: Controller): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/leader',
      {
        schema: {
          tags: ['cluster'],
          summary: 'The current leader, as recorded in etcd (every replica gives the same answer)',
          response: { 200: { $ref: 'LeaderView#' } },
        },
      },
      async () => controller.leaderView(),
    );

    app.get(
      '/cluster',
      {
        schema: {
          tags: ['cluster'],
          summary: 'Leader, term, replicas and this replica\'s own view',
          response: { 200: { $ref: 'ClusterView#' } },
        },
      },
      async () => ({
        leader: controller.leaderView(),
        self: {
          id: controller.info.id,
          role: controller.elector.isLeader ? ('leader' as const) : ('follower' as const),
          term: controller.elector.fence?.term ?? null,
          ready: controller.informers.every((i) => i.ready) && controller.health.reachable,
          cacheRevision: controller.cacheRevision,
        },
        replicas: controller.replicaViews(),
        leaseTtlSeconds: controller.config.leaseTtl,
        etcd: { endpoints: controller.config.etcd, reachable: controller.health.reachable },
      }),
    );
  };
}
