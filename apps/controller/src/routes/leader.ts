import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { routePlugin } from '../plugins/services.js';

/** `GET /v1/leader` and `GET /v1/cluster`, answered from this replica's watch cache. */
export const leaderRoutes = routePlugin('leader-routes', ['leadership', 'clusterState', 'etcdHealth'], async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { leadership, clusterState: state, etcdHealth: health } = fastify;

  app.get(
    '/leader',
    {
      schema: {
        tags: ['cluster'],
        summary: 'The current leader, as recorded in etcd (every replica gives the same answer)',
        response: { 200: { $ref: 'LeaderView#' } },
      },
    },
    async () => leadership.leaderView(),
  );

  app.get(
    '/cluster',
    {
      schema: {
        tags: ['cluster'],
        summary: "Leader, term, replicas and this replica's own view",
        response: { 200: { $ref: 'ClusterView#' } },
      },
    },
    async () => ({
      leader: leadership.leaderView(),
      self: {
        id: leadership.self.id,
        role: leadership.isLeader ? ('leader' as const) : ('follower' as const),
        term: leadership.term,
        ready: state.synced && health.reachable,
        cacheRevision: state.revision,
      },
      replicas: leadership.replicaViews(),
      leaseTtlSeconds: leadership.leaseTtlSeconds,
      etcd: { endpoints: health.endpointUrls, reachable: health.reachable },
    }),
  );
});
