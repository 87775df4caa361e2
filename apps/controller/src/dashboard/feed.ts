import type { EventEmitter } from 'node:events';
import {
  idOf,
  jobSummary,
  keyOf,
  newestJobs,
  WATCH_RECENT_JOBS,
  type BerthEvent,
  type EtcdStatus,
  type ServiceRecord,
  type ServiceView,
  type WatchMessage,
  type WatchSnapshot,
} from '@berth/core';
import type { Informer } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';
import type { EtcdHealth } from '../etcd-health.js';
import type { LeadershipView } from '../leadership.js';

/** One message of the live stream (`GET /v1/events?watch=1`): its wire shape is core's `WatchMessage`. */
export type FeedMessage = WatchMessage;

/** Everything a fresh dashboard needs at once (core's `WatchSnapshot`). */
export type FeedSnapshot = WatchSnapshot;

/** What a subscriber receives: batches of messages, each batch after at most `intervalMs` of coalescing. */
export type FeedListener = (batch: FeedMessage[], revision: number) => void;

/** What the feed reads: the caches, who leads, whether etcd answers, and services as this replica routes to them. */
export interface FeedSources {
  state: ClusterState;
  leadership: LeadershipView;
  health: EtcdHealth;
  /** Views of services with their endpoints (the service catalog). */
  services: { list(): ServiceView[]; view(record: ServiceRecord): ServiceView };
  /** Says `changed` with a service's name when its endpoints may have changed (discovery: its pods, their nodes, the service). */
  serviceChanges: EventEmitter<{ changed: [string] }>;
}

/** How many recent events a snapshot carries. */
const SNAPSHOT_EVENTS = 50;

/**
 * Turns the replica's watch caches into a coalesced change stream for the
 * dashboard. Changes are collected as dirty ids (a node is dirty when its
 * record, heartbeat, reservations or bound pods change) and flushed at most
 * every `intervalMs`, so a burst of heartbeats or a mass reschedule costs one
 * message per entity, not one per etcd event. Jobs can come by the thousand:
 * a batch carries only the newest `WATCH_RECENT_JOBS` changed jobs, as
 * summaries. Listeners are attached to the informers only while someone is
 * subscribed.
 */
export class LiveFeed {
  private readonly listeners = new Set<FeedListener>();
  private readonly dirtyNodes = new Set<string>();
  private readonly dirtyPods = new Set<string>();
  private readonly dirtyServices = new Set<string>();
  /** Changed jobs, with their creation time (which decides which of them a batch carries). */
  private readonly dirtyJobs = new Map<string, string>();
  private leaderDirty = false;
  private etcdDirty = false;
  private pendingEvents: BerthEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private detach: Array<() => void> = [];

  constructor(
    private readonly sources: FeedSources,
    private readonly intervalMs = 100,
  ) {}

  /** Number of connected streams. */
  get subscribers(): number {
    return this.listeners.size;
  }

  /** The current state, read from the caches. */
  snapshot(): FeedSnapshot {
    const { state, leadership } = this.sources;
    const events = state.auditEvents.list();
    return {
      self: { id: leadership.self.id, role: leadership.isLeader ? 'leader' : 'follower' },
      leader: leadership.leaderView(),
      replicas: leadership.replicaViews(),
      nodes: state.nodes.list().map((n) => state.nodeView(n.value)),
      pods: state.pods.list().map((p) => p.value),
      services: this.sources.services.list(),
      jobs: newestJobs(state.jobs.values(), WATCH_RECENT_JOBS, (j) => j.value).map((j) => jobSummary(j.value)),
      events: events.slice(-SNAPSHOT_EVENTS).map((e) => e.value),
      revision: state.revision,
      etcd: this.etcdStatus(),
    };
  }

  private etcdStatus(): EtcdStatus {
    const h = this.sources.health;
    return h.down ? { reachable: false, message: h.problem } : { reachable: true, message: null };
  }

  /** Subscribes to change batches; returns the unsubscribe function. */
  subscribe(listener: FeedListener): () => void {
    if (this.listeners.size === 0) this.attach();
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** Detaches from the caches and drops pending changes. */
  stop(): void {
    for (const off of this.detach) off();
    this.detach = [];
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dirtyNodes.clear();
    this.dirtyPods.clear();
    this.dirtyServices.clear();
    this.dirtyJobs.clear();
    this.pendingEvents = [];
    this.leaderDirty = false;
    this.etcdDirty = false;
  }

  private attach(): void {
    const { state, health, serviceChanges } = this.sources;
    const onService = (name: string) => {
      this.dirtyServices.add(name);
      this.schedule();
    };
    serviceChanges.on('changed', onService);
    this.detach.push(() => serviceChanges.off('changed', onService));
    const onHealth = () => {
      this.etcdDirty = true;
      this.schedule();
    };
    health.on('change', onHealth);
    this.detach.push(() => health.off('change', onHealth));
    const on = <T>(informer: Informer<T>, fn: (key: string, item: T | undefined, prev: T | undefined) => void) => {
      const handler = (ch: { key: string; item?: { value: T }; prev?: { value: T } }) => {
        fn(ch.key, ch.item?.value, ch.prev?.value);
        this.schedule();
      };
      informer.on('change', handler);
      this.detach.push(() => informer.off('change', handler));
    };
    on(state.nodes, (key) => this.markNode(idOf('nodes', key)));
    on(state.heartbeats, (key) => this.markNode(idOf('heartbeats', key)));
    on(state.allocations, (key) => this.markNode(idOf('allocations', key)));
    on(state.pods, (key, item, prev) => {
      const id = idOf('pods', key);
      if (id !== undefined) this.dirtyPods.add(id);
      // A node's bound pods are part of its view.
      if (item?.status.nodeId !== prev?.status.nodeId || item?.status.phase !== prev?.status.phase) {
        this.markNode(item?.status.nodeId ?? undefined);
        this.markNode(prev?.status.nodeId ?? undefined);
      }
    });
    on(state.jobs, (key, item, prev) => {
      const id = idOf('jobs', key);
      const createdAt = (item ?? prev)?.createdAt;
      if (id !== undefined && createdAt !== undefined) this.dirtyJobs.set(id, createdAt);
    });
    on(state.replicas, () => (this.leaderDirty = true));
    on(state.leaderRecord, () => (this.leaderDirty = true));
    on(state.auditEvents, (key, item, prev) => {
      if (item !== undefined && prev === undefined) this.pendingEvents.push(item);
    });
  }

  private markNode(id: string | undefined): void {
    if (id !== undefined) this.dirtyNodes.add(id);
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.intervalMs);
  }

  private flush(): void {
    const { state, leadership } = this.sources;
    const batch: FeedMessage[] = [];
    if (this.etcdDirty) batch.push({ event: 'etcd', data: this.etcdStatus() });
    if (this.leaderDirty) batch.push({ event: 'leader', data: { leader: leadership.leaderView(), replicas: leadership.replicaViews() } });
    for (const id of this.dirtyNodes) {
      const node = state.nodes.get(keyOf('nodes', id))?.value;
      batch.push({ event: 'node', data: { id, node: node === undefined ? null : state.nodeView(node) } });
    }
    for (const id of this.dirtyPods) {
      batch.push({ event: 'pod', data: { id, pod: state.pods.get(keyOf('pods', id))?.value ?? null } });
    }
    for (const name of this.dirtyServices) {
      const record = state.services.get(keyOf('services', name))?.value;
      batch.push({ event: 'service', data: { name, service: record === undefined ? null : this.sources.services.view(record) } });
    }
    // Any job among the newest WATCH_RECENT_JOBS has fewer changed jobs newer than it: its change is always sent.
    const changed = newestJobs([...this.dirtyJobs].map(([id, createdAt]) => ({ id, createdAt })), WATCH_RECENT_JOBS, (j) => j);
    for (const { id } of changed) {
      const job = state.jobs.get(keyOf('jobs', id))?.value;
      batch.push({ event: 'job', data: { id, job: job === undefined ? null : jobSummary(job) } });
    }
    for (const e of this.pendingEvents) batch.push({ event: 'event', data: e });
    this.leaderDirty = false;
    this.etcdDirty = false;
    this.dirtyNodes.clear();
    this.dirtyPods.clear();
    this.dirtyServices.clear();
    this.dirtyJobs.clear();
    this.pendingEvents = [];
    if (batch.length === 0) return;
    const revision = state.revision;
    for (const listener of [...this.listeners]) listener(batch, revision);
  }
}
