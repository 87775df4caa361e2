import type { Etcd3 } from 'etcd3';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import type { ReplicaInfo } from '@berth/core';
import { createEtcdClient, EventRecorder, LeaderElector, onWatchIncident, urlHost } from '@berth/store';
import type { ControllerConfig } from './config.js';
import { ClusterState } from './cluster-state.js';
import { LiveFeed } from './dashboard/feed.js';
import { EtcdHealth } from './etcd-health.js';
import { LeadershipView } from './leadership.js';
import { LeaderLoops } from './leader-loops.js';
import { Metrics } from './metrics.js';
import { NodeLifecycle } from './nodes/lifecycle.js';
import { NodeProvisioner } from './nodes/provisioner.js';
import { NodeService } from './nodes/service.js';
import { PodScheduler } from './pods/scheduler.js';
import { PodService } from './pods/service.js';
import { buildServer, type ServerDeps } from './server.js';
import { JobDispatcher } from './jobs/dispatcher.js';
import { JobService } from './jobs/service.js';
import { Router } from './routing/router.js';
import { ServiceCatalog } from './services/catalog.js';
import { ServiceController } from './services/controller.js';
import { Discovery } from './services/discovery.js';
import fs from 'node:fs';
import { createAuth } from './auth/bootstrap.js';
import type { AuthSettings } from './auth/plugin.js';

/**
 * One controller replica: constructs its parts, wires them, and starts and
 * stops them in order. Every replica serves the API from its watch caches;
 * only the elected leader runs the leader loops (node lifecycle, scheduler).
 * The parts do not know about this class: the API gets only the services it
 * reads (`ServerDeps`).
 */
export class Controller {
  readonly log: Logger;
  private readonly client: Etcd3;
  private readonly elector: LeaderElector;
  private readonly health: EtcdHealth;
  private readonly state: ClusterState;
  private readonly feed: LiveFeed;
  private readonly nodeLifecycle: NodeLifecycle;
  private readonly scheduler: PodScheduler;
  private readonly leaderLoops: LeaderLoops;
  private readonly router: Router;
  private readonly jobs: JobDispatcher;
  private readonly deps: ServerDeps;
  private readonly auth: AuthSettings;
  /** Said once the API listens: where the admin token is, or that auth is off. */
  private authNotice: (() => void) | undefined;
  private server: FastifyInstance | undefined;
  /** Stops logging the etcd watch faults the store contained for this replica. */
  private readonly stopIncidentLog: () => void;

  constructor(
    private readonly config: ControllerConfig,
    log?: Logger,
  ) {
    this.log = log ?? pino({ level: config.logLevel, base: { replica: config.id } });
    const child = (component: string) => this.log.child({ component });
    const credentials = config.etcdCredentials ? { credentials: config.etcdCredentials } : {};
    this.client = createEtcdClient(config.etcd, credentials);
    this.stopIncidentLog = onWatchIncident((incident) => child('etcd-watch').warn({ incident }, 'etcd watch stream fault contained'));
    const self: ReplicaInfo = { id: config.id, address: config.advertiseUrl, pid: process.pid, startedAt: new Date().toISOString() };
    const events = new EventRecorder(this.client, config.id, child('events'));
    this.health = new EtcdHealth(config.etcd, child('etcd-health'), undefined, undefined, config.etcdCredentials);
    this.state = new ClusterState(this.client, this.log);
    this.elector = new LeaderElector({ client: this.client, replica: self, ttlSeconds: config.leaseTtl, log: child('election'), events });
    const leadership = new LeadershipView(self, this.state, this.elector, config.leaseTtl);
    const metrics = new Metrics({
      isLeader: () => this.elector.isLeader,
      term: () => this.elector.fence?.term ?? 0,
      fencedRejections: () => this.elector.fencedRejections,
      terms: () => this.elector.terms,
      cacheRevision: () => this.state.revision,
      leaderCatchUpMs: () => this.leaderLoops.lastWaitMs,
      podEjections: () => this.router.balancer.ejections,
      jobs: () => ({ active: this.jobs.active, adopted: this.jobs.adopted, ...this.jobs.batcher.stats }),
    });
    const provisioner = new NodeProvisioner(config.id, config.image, config.dataDir, child('provisioner'));
    const nodeService = new NodeService(this.client, this.state, provisioner, events, config.etcd, child('nodes'), config.provisionTimeoutMs, () => leadership.hasLeader(), config.nodeEtcdArgs);
    const podService = new PodService(this.client, this.state, events, child('pods'));
    this.nodeLifecycle = new NodeLifecycle(this.client, this.state, this.elector, events, config.nodeGraceMs, child('node-lifecycle'));
    this.scheduler = new PodScheduler(this.client, this.state, this.elector, events, config.policy, child('scheduler'), config.nodeGraceMs);
    const discovery = new Discovery(this.state);
    this.router = new Router(discovery, config.id);
    this.jobs = new JobDispatcher(this.client, this.state, this.router, discovery, { replica: config.id, claimTtlSeconds: config.leaseTtl, resultTtlSeconds: config.jobResultTtlSeconds }, child('jobs'));
    const serviceController = new ServiceController(this.client, this.state, this.elector, events, child('services'));
    const serviceCatalog = new ServiceCatalog(this.client, this.state, discovery, this.router, events, child('services'));
    this.feed = new LiveFeed({ state: this.state, leadership, health: this.health, services: serviceCatalog, serviceChanges: discovery });
    const auth = createAuth({ client: this.client, state: this.state, events, replica: config.id, config: config.auth, tls: config.tls !== undefined, log: child('auth') });
    this.auth = auth.settings;
    this.authNotice = () => auth.notice(config.host);
    this.deps = {
      log: this.log,
      advertiseUrl: config.advertiseUrl,
      bodyLimit: config.bodyLimitBytes,
      leadership,
      clusterState: this.state,
      etcdHealth: this.health,
      podService,
      nodeService,
      metrics,
      liveFeed: this.feed,
      serviceCatalog,
      router: this.router,
      jobService: new JobService(this.client, this.state, this.jobs),
      auth: this.auth,
      ...(config.tls === undefined ? {} : { https: { cert: fs.readFileSync(config.tls.cert), key: fs.readFileSync(config.tls.key) } }),
    };

    // Leader loops act on caches: only once every one of them has seen the term's first write.
    this.leaderLoops = new LeaderLoops(this.elector, this.state, [this.nodeLifecycle, this.scheduler, serviceController], child('leader'));
  }

  /** Starts caches, the health probe and the API, then campaigns. */
  async start(): Promise<void> {
    this.health.start();
    this.state.start();
    this.server = await buildServer(this.deps);
    await this.server.listen({ port: this.config.port, host: this.config.host });
    const { addressPlan } = this.config;
    if (addressPlan.warning !== undefined) this.log.warn({ advertise: addressPlan.advertise }, addressPlan.warning);
    this.log.info({ address: this.config.advertiseUrl, listen: this.config.host, addressFrom: this.config.advertiseUrl === `http://${urlHost(addressPlan.advertise)}:${this.config.port}` ? addressPlan.source : '--advertise-url', docs: `${this.config.advertiseUrl}/docs` }, 'controller API listening');
    this.authNotice?.();
    this.elector.start();
    this.jobs.start();
  }

  /** Resigns first (so another replica takes over at once), then closes the API and etcd. */
  async stop(): Promise<void> {
    await this.elector.stop();
    // Jobs under way get a moment to finish; the rest are released for other replicas to adopt.
    await this.jobs.stop();
    this.feed.stop();
    await this.server?.close();
    this.health.stop();
    await this.state.stop();
    await this.router.close();
    this.client.close();
    this.stopIncidentLog();
  }
}
