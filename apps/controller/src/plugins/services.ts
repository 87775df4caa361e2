import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { ClusterState } from '../cluster-state.js';
import type { LiveFeed } from '../dashboard/feed.js';
import type { EtcdHealth } from '../etcd-health.js';
import type { LeadershipView } from '../leadership.js';
import type { Metrics } from '../metrics.js';
import type { NodeService } from '../nodes/service.js';
import type { PodService } from '../pods/service.js';
import type { JobService } from '../jobs/service.js';
import type { Router } from '../routing/router.js';
import type { ServiceCatalog } from '../services/catalog.js';
import type { AuthSettings } from '../auth/plugin.js';

/** The services a replica's API reads; each is one decorator of the root instance. */
export interface Services {
  /** Who leads (from the election cache) and this replica's own role. */
  leadership: LeadershipView;
  /** The watch caches: nodes, heartbeats, pods, reservations, election keys, audit events. */
  clusterState: ClusterState;
  /** Whether etcd answers, and why not. */
  etcdHealth: EtcdHealth;
  /** User writes of pods. */
  podService: PodService;
  /** User writes of nodes, provisioning. */
  nodeService: NodeService;
  /** Prometheus metrics. */
  metrics: Metrics;
  /** Coalesced cache changes for the live stream. */
  liveFeed: LiveFeed;
  /** User writes and views of services. */
  serviceCatalog: ServiceCatalog;
  /** Routes requests to services' pods. */
  router: Router;
  /** Job submission, reads, long polls and cancels. */
  jobService: JobService;
  /** Tokens, sessions, rate limits and the audit trail. */
  auth: AuthSettings;
}

declare module 'fastify' {
  // The decorators `servicesPlugin` adds, typed once from `Services`.
  interface FastifyInstance extends Services {}
}

/**
 * Decorates the root instance with every service, once. Not encapsulated
 * (fastify-plugin), so every route plugin registered after it can read them.
 */
export const servicesPlugin = fp<Services>(
  async (app, services) => {
    for (const [name, service] of Object.entries(services)) app.decorate(name, service);
  },
  { name: 'berth-services', fastify: '5.x' },
);

/**
 * An encapsulated route plugin that declares the services it reads: Fastify
 * refuses to register it (at start-up, naming the missing one) unless they
 * are there, so each plugin's dependencies are stated and checked.
 */
export function routePlugin(name: string, uses: ReadonlyArray<keyof Services>, plugin: FastifyPluginAsync): FastifyPluginAsync {
  return fp(plugin, { name, encapsulate: true, fastify: '5.x', decorators: { fastify: [...uses] } });
}
