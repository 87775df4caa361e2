import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  errors,
  keyOf,
  leaderRecordKey,
  prefixes,
  TERMINAL_PHASES,
  TERMINAL_JOB_STATUSES,
  type BerthEvent,
  type LeaderRecord,
  type ReplicaInfo,
  type HeartbeatRecord,
  type NodeRecord,
  type NodeView,
  type AllocationRecord,
  type PodRecord,
  type Resources,
  type ServiceRecord,
  type JobRecord,
  type TokenRecord,
} from '@berth/core';
import { Informer, type Versioned } from '@berth/store';
import { reservedTotal } from '@berth/scheduler';

/** A node as the API shows it: its record plus what heartbeats and pods say (the type of core's `NodeView` schema). */
export type { NodeView };


/** Informer index names of the caches. */
const BY_NAME = 'byName';
const BY_NODE = 'byNode';
const BY_SERVICE = 'byService';
/** Jobs that have not finished, so a scan for orphans does not walk every kept result. */
const UNFINISHED = 'unfinished';
const BY_HASH = 'byHash';

/**
 * The watch caches every replica keeps of the cluster, so reads never go to
 * etcd: nodes, heartbeats, pods and reservations (the objects), the election
 * keys and the leader record (who leads), and audit events. The caches index
 * what the API looks up (a node or pod by its unique name, the pods bound to
 * a node), so nobody keeps a map of their own.
 */
export class ClusterState {
  readonly nodes: Informer<NodeRecord>;
  readonly heartbeats: Informer<HeartbeatRecord>;
  readonly pods: Informer<PodRecord>;
  /** The leader's reservations per node. */
  readonly allocations: Informer<AllocationRecord>;
  /** Election keys: one per campaigning replica; the oldest leads. */
  readonly replicas: Informer<ReplicaInfo>;
  /** The leader record (`/berth/leader`), written once by each leader in office. */
  readonly leaderRecord: Informer<LeaderRecord>;
  /** Audit events (`/berth/events/`), for `GET /v1/events` and the live feed. */
  readonly auditEvents: Informer<BerthEvent>;
  /** Services (`/berth/services/<name>`), by name. */
  readonly services: Informer<ServiceRecord>;
  /** Jobs (`/berth/jobs/<id>`), finished ones until their result TTL runs out. */
  readonly jobs: Informer<JobRecord>;
  /** Job claims (`/berth/jobclaims/<id>` -> replica id, on that replica's lease). */
  readonly jobClaims: Informer<string>;
  /** API tokens (`/berth/tokens/<name>`), indexed by the secret's hash: a request's token is one lookup. */
  readonly tokens: Informer<TokenRecord>;

  constructor(client: Etcd3, log: Logger) {
    const l = log.child({ component: 'informer' });
    this.nodes = new Informer<NodeRecord>(client, prefixes.nodes, l);
    this.heartbeats = new Informer<HeartbeatRecord>(client, prefixes.heartbeats, l);
    this.pods = new Informer<PodRecord>(client, prefixes.pods, l);
    this.allocations = new Informer<AllocationRecord>(client, prefixes.allocations, l);
    this.replicas = new Informer<ReplicaInfo>(client, prefixes.election, l);
    this.leaderRecord = new Informer<LeaderRecord>(client, leaderRecordKey, l);
    this.auditEvents = new Informer<BerthEvent>(client, prefixes.events, l);
    this.services = new Informer<ServiceRecord>(client, prefixes.services, l);
    this.jobs = new Informer<JobRecord>(client, prefixes.jobs, l);
    this.jobClaims = new Informer<string>(client, prefixes.jobClaims, l);
    this.tokens = new Informer<TokenRecord>(client, prefixes.tokens, l);
    this.tokens.addIndex(BY_HASH, (t) => t.hash);
    this.nodes.addIndex(BY_NAME, (n) => n.name);
    this.pods.addIndex(BY_NAME, (p) => p.name);
    this.pods.addIndex(BY_NODE, (p) => p.status.nodeId);
    this.pods.addIndex(BY_SERVICE, (p) => p.service ?? null);
    this.jobs.addIndex(BY_SERVICE, (j) => j.service);
    this.jobs.addIndex(UNFINISHED, (j) => (TERMINAL_JOB_STATUSES.has(j.status) ? null : UNFINISHED));
  }

  /** Every cache; the replica is ready once all of them have synced. */
  get informers(): Informer<unknown>[] {
    return [this.nodes, this.heartbeats, this.pods, this.allocations, this.replicas, this.leaderRecord, this.auditEvents, this.services, this.jobs, this.jobClaims, this.tokens] as Informer<unknown>[];
  }

  /** True once every cache has listed etcd. */
  get synced(): boolean {
    return this.informers.every((i) => i.ready);
  }

  /** Prefixes of the caches that have not listed etcd yet. */
  unsynced(): string[] {
    return this.informers.filter((i) => !i.ready).map((i) => i.prefix);
  }

  /** Resolves once every cache has listed etcd. */
  async whenSynced(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.whenSynced()));
  }

  /**
   * Resolves true once every cache reflects etcd at `revision` or later (a
   * new leader's barrier: its loops decide on caches that have all seen its
   * first write, so no cache lags another across it); false when `signal`
   * aborts first. A cache under which nothing changed up to `revision` is
   * brought there by asking etcd, not by waiting for an event that may never
   * come (see `Informer.waitForProgress`).
   */
  async caughtUp(revision: number, signal?: AbortSignal): Promise<boolean> {
    const done = await Promise.all(this.informers.map((i) => i.waitForProgress(revision, signal)));
    return done.every(Boolean);
  }

  /** Prefixes of the caches that have not applied `revision` yet. */
  behind(revision: number): string[] {
    return this.informers.filter((i) => i.revision < revision).map((i) => i.prefix);
  }

  /** Highest revision applied across the caches. */
  get revision(): number {
    return Math.max(0, ...this.informers.map((i) => i.revision));
  }

  /** Starts listing and watching every cache (resolves at once; see `whenSynced`). */
  start(): void {
    for (const informer of this.informers) void informer.start();
  }

  /** Stops watching; the caches keep their last content. */
  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** A node by id or unique name; NOT_FOUND otherwise. */
  node(idOrName: string): Versioned<NodeRecord> {
    return lookup(this.nodes, 'nodes', idOrName, 'node');
  }

  /** A pod by id or unique name; NOT_FOUND otherwise. */
  pod(idOrName: string): Versioned<PodRecord> {
    return lookup(this.pods, 'pods', idOrName, 'pod');
  }

  /** The heartbeat of a node, while its agent holds it. */
  heartbeat(nodeId: string): Versioned<HeartbeatRecord> | undefined {
    return this.heartbeats.get(keyOf('heartbeats', nodeId));
  }

  /** Every pod bound to a node, finished ones included. */
  podsOn(nodeId: string): PodRecord[] {
    return this.pods.byIndex(BY_NODE, nodeId).map((p) => p.value);
  }

  /** Every pod of a service, finished ones included. */
  podsOf(service: string): Versioned<PodRecord>[] {
    return this.pods.byIndex(BY_SERVICE, service);
  }

  /** Jobs of a service. */
  jobsOf(service: string): Versioned<JobRecord>[] {
    return this.jobs.byIndex(BY_SERVICE, service);
  }

  /** Jobs that have not finished (Queued or Running). */
  unfinishedJobs(): Versioned<JobRecord>[] {
    return this.jobs.byIndex(UNFINISHED, UNFINISHED);
  }

  /** The token whose secret hashes to `hash`, if there is one. */
  tokenByHash(hash: string): TokenRecord | undefined {
    return this.tokens.byIndex(BY_HASH, hash)[0]?.value;
  }

  /** A service by name; NOT_FOUND otherwise. */
  service(name: string): Versioned<ServiceRecord> {
    const found = name.includes('/') || name.length === 0 ? undefined : this.services.get(keyOf('services', name));
    if (found === undefined) throw errors.notFound('service', name);
    return found;
  }

  /** Pods bound to a node that still hold resources there. */
  activePods(nodeId: string): PodRecord[] {
    return this.podsOn(nodeId).filter((p) => !TERMINAL_PHASES.has(p.status.phase));
  }

  /** The API's view of a node. */
  nodeView(node: NodeRecord): NodeView {
    const hb = this.heartbeat(node.id)?.value;
    const pods = this.activePods(node.id);
    // What the leader reserved (the scheduler's view), not a sum that may lag a binding.
    const record = this.allocations.get(keyOf('allocations', node.id))?.value;
    const reserved = record?.pods ?? {};
    const allocated: Resources = reservedTotal(record);
    const conditions: NodeView['conditions'] = [
      { type: 'Heartbeat', status: hb !== undefined, message: hb ? `last report ${hb.reportedAt}` : 'no heartbeat: the agent\'s lease expired or it deregistered' },
    ];
    if (hb?.runtime) conditions.push({ type: 'RuntimeReady', status: hb.runtime.ready, message: hb.runtime.message });
    return { ...node, conditions, lastHeartbeat: hb?.reportedAt ?? null, usage: hb?.usage ?? null, allocated, pods: pods.map((p) => p.id), reservedPods: Object.keys(reserved) };
  }
}

/**
 * Path parameters accept the id or the unique name. An id is tried first; a
 * name is looked up in the cache's name index (a name claim in etcd is
 * unique, so the index holds at most one live record per name).
 */
function lookup<T>(cache: Informer<T>, collection: 'nodes' | 'pods', idOrName: string, kind: string): Versioned<T> {
  // Ids and names never contain '/'; one that did would build a key outside the collection.
  const found = idOrName.includes('/') ? undefined : (cache.get(keyOf(collection, idOrName)) ?? cache.byIndex(BY_NAME, idOrName)[0]);
  if (found === undefined) throw errors.notFound(kind, idOrName);
  return found;
}
