import type { Etcd3 } from 'etcd3';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { leaderRecordKey, prefixes, type BerthEvent, type LeaderRecord, type LeaderView, type ReplicaInfo, type ReplicaView } from '@berth/core';
import { createEtcdClient, EventRecorder, Informer, LeaderElector } from '@berth/store';
import type { ControllerConfig } from './config.js';
import { EtcdHealth } from './etcd-health.js';
import { Metrics } from './metrics.js';
import { buildServer } from './server.js';
import { ClusterState } from './cluster-state.js';
import { LiveFeed } from './dashboard/feed.js';
import { NodeLifecycle } from './nodes/lifecycle.js';
import { NodeProvisioner } from './nodes/provisioner.js';
import { NodeService } from './nodes/service.js';
import { PodScheduler } from './pods/scheduler.js';
import { PodService } from './pods/service.js';

/**
 * One controller replica: watch caches of the cluster state, an etcd health
 * probe, the leader elector, and the REST API. Every replica serves reads
 * from its caches; only the elected leader runs leader loops.
 */
export class Controller {
  readonly log: Logger;
  readonly client: Etcd3;
  readonly events: EventRecorder;
  readonly elector: LeaderElector;
  readonly health: EtcdHealth;
  readonly metrics: Metrics;
  /** Election keys: one per campaigning replica; the oldest leads. */
  readonly replicas: Informer<ReplicaInfo>;
  /** The leader record (`/berth/leader`). */
  readonly leaderRecord: Informer<LeaderRecord>;
  /** Audit events (`/berth/events/`), for `GET /v1/events` and the dashboard. */
  readonly auditEvents: Informer<BerthEvent>;
  /** Coalesced changes of the caches, streamed to dashboards. */
  readonly feed: LiveFeed;
  readonly info: ReplicaInfo;
  /** Watch caches of nodes, heartbeats and pods. */
  readonly state: ClusterState;
  readonly nodeLifecycle: NodeLifecycle;
  readonly nodeService: NodeService;
  readonly podService: PodService;
  readonly scheduler: PodScheduler;
  private server: FastifyInstance | undefined;

  constructor(readonly config: ControllerConfig, log?: Logger) {
    this.log = log ?? pino({ level: config.logLevel, base: { replica: config.id } });
    this.client = createEtcdClient(config.etcd);
    this.info = { id: config.id, address: config.advertiseUrl, pid: process.pid, startedAt: new Date().toISOString() };
    this.events = new EventRecorder(this.client, config.id, this.log.child({ component: 'events' }));
    this.health = new EtcdHealth(config.etcd, this.log.child({ component: 'etcd-health' }));
    this.replicas = new Informer<ReplicaInfo>(this.client, prefixes.election, this.log.child({ component: 'informer' }));
    this.leaderRecord = new Informer<LeaderRecord>(this.client, leaderRecordKey, this.log.child({ component: 'informer' }));
    this.auditEvents = new Informer<BerthEvent>(this.client, prefixes.events, this.log.child({ component: 'informer' }));
    this.elector = new LeaderElector({
      client: this.client,
      replica: this.info,
      ttlSeconds: config.leaseTtl,
      log: this.log.child({ component: 'election' }),
      events: this.events,
    });
    this.metrics = new Metrics({
      isLeader: () => this.elector.isLeader,
      term: () => this.elector.fence?.term ?? 0,
      fencedRejections: () => this.elector.fencedRejections,
      terms: () => this.elector.terms,
      cacheRevision: () => this.cacheRevision,
    });
    this.state = new ClusterState(this.client, this.log);
    this.feed = new LiveFeed(this);
    this.nodeLifecycle = new NodeLifecycle(this.client, this.state, this.elector, this.events, config.nodeGraceMs, this.log.child({ component: 'node-lifecycle' }));
    const provisioner = new NodeProvisioner(config.id, config.image, config.dataDir, this.log.child({ component: 'provisioner' }));
    this.nodeService = new NodeService(
      this.client,
      this.state,
      provisioner,
      this.events,
      config.etcd,
      this.log.child({ component: 'nodes' }),
      config.provisionTimeoutMs,
      () => this.leaderView().leaderId !== null,
    );
    this.podService = new PodService(this.client, this.state, this.events, this.log.child({ component: 'pods' }));
    this.scheduler = new PodScheduler(this.client, this.state, this.elector, this.events, config.policy, this.log.child({ component: 'scheduler' }));
    this.elector.on('elected', (fence) => {
      this.log.info({ term: fence.term }, 'leadership acquired: starting leader loops');
      // Leader loops act on caches: never before they are synced, or a missing heartbeat could look like a dead node.
      void Promise.all(this.informers.map((i) => i.whenSynced())).then(() => {
        if (this.elector.fence !== fence) return;
        this.nodeLifecycle.start(fence);
        this.scheduler.start(fence);
      });
    });
    this.elector.on('deposed', (reason) => {
      this.nodeLifecycle.stop();
      this.scheduler.stop();
      this.log.warn({ reason }, 'leadership lost: leader loops stopped');
    });
  }

  /** Every watch cache; `/readyz` requires all of them synced. */
  get informers(): Informer<unknown>[] {
    return [this.replicas, this.leaderRecord, this.auditEvents, ...this.state.informers] as Informer<unknown>[];
  }

  /** Highest revision applied across the caches. */
  get cacheRevision(): number {
    return Math.max(0, ...this.informers.map((i) => i.revision));
  }

  /** The leader as etcd says: the oldest election key, with the record it wrote once in office. */
  leaderView(): LeaderView {
    const leader = this.replicaViews().find((r) => r.leader);
    if (leader === undefined) return { leaderId: null, address: null, term: null, since: null };
    const record = this.leaderRecord.list()[0]?.value;
    return {
      leaderId: leader.id,
      address: leader.address,
      term: leader.createRevision,
      since: record?.term === leader.createRevision ? record.since : null,
    };
  }

  /** Every campaigning replica, oldest (the leader) first. */
  replicaViews(): ReplicaView[] {
    const keys = this.replicas.list().sort((a, b) => a.createRevision - b.createRevision);
    return keys.map((kv, i) => ({
      id: kv.value.id,
      address: kv.value.address,
      pid: kv.value.pid,
      startedAt: kv.value.startedAt,
      leader: i === 0,
      electionKey: kv.key,
      createRevision: kv.createRevision,
    }));
  }

  /** Starts caches, the health probe and the API, then campaigns. */
  async start(): Promise<void> {
    this.health.start();
    for (const informer of this.informers) void informer.start();
    this.server = await buildServer(this);
    await this.server.listen({ port: this.config.port, host: this.config.host });
    this.log.info({ address: this.config.advertiseUrl, docs: `${this.config.advertiseUrl}/docs` }, 'controller API listening');
    this.elector.start();
  }

  /** Resigns first (so another replica takes over at once), then closes the API and etcd. */
  async stop(): Promise<void> {
    await this.elector.stop();
    this.feed.stop();
    await this.server?.close();
    this.health.stop();
    await Promise.all(this.informers.map((i) => i.stop()));
    this.client.close();
  }
}
