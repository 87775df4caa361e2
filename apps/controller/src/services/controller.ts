import { customAlphabet } from 'nanoid';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { isBerthError, keyOf, newId, serviceSpec, TERMINAL_PHASES, type PodRecord, type ServiceRecord } from '@berth/core';
import { MAX_CREATE_BATCH, PodRepository, WorkQueue, type EventRecorder, type Fence, type LeaderElector, type Versioned } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';
import type { LeaderLoop } from '../leader-loops.js';
import { podReady } from './discovery.js';

/** The random part of a service pod's name, as Kubernetes' ReplicaSets name theirs. */
const podSuffix = customAlphabet('bcdfghjklmnpqrstvwxz2456789', 5);

type Pod = Versioned<PodRecord>;

/** What one pass decided for a service. */
export interface ServicePlan {
  create: number;
  remove: Pod[];
}

/**
 * Decides, purely, what a service needs: replicas pods of its current
 * template, replaced one at a time (a new pod Ready before an old one goes:
 * surge 1, nothing unavailable), and pods that ended or are not wanted
 * removed. `live`: the service's pods that have not ended and are not being
 * removed; `ended`: those that ended and are not being removed.
 */
export function planService(service: ServiceRecord | undefined, live: Pod[], ended: Pod[], ready: (p: Pod) => boolean): ServicePlan {
  if (service === undefined || service.replicas === 0) return { create: 0, remove: [...live, ...ended] };
  const n = service.replicas;
  const current = live.filter((p) => p.value.templateHash === service.templateHash);
  const old = live.filter((p) => p.value.templateHash !== service.templateHash);
  // A pod that ended is replaced (restartPolicy already had its say on the node): remove it, and count it out.
  const remove: Pod[] = [...ended];
  if (old.length === 0) {
    if (current.length < n) return { create: n - current.length, remove };
    return { create: 0, remove: [...remove, ...byRemovalOrder(current, ready).slice(0, current.length - n)] };
  }
  // Rolling: old pods that serve nothing go at once; serving old pods go as new ones become ready, never
  // leaving fewer than n ready; new pods are surged so that there are at most n + 1.
  const oldIdle = old.filter((p) => !ready(p));
  const oldServing = old.filter((p) => ready(p));
  remove.push(...oldIdle);
  const extraCurrent = byRemovalOrder(current, ready).slice(0, Math.max(0, current.length - n));
  remove.push(...extraCurrent);
  const kept = current.filter((p) => !extraCurrent.includes(p));
  const readyNew = kept.filter(ready).length;
  const oldGoing = byRemovalOrder(oldServing, ready).slice(0, Math.max(0, oldServing.length + readyNew - n));
  remove.push(...oldGoing);
  const oldStaying = oldServing.length - oldGoing.length;
  const create = Math.max(0, Math.min(n - kept.length, n + 1 - (kept.length + oldStaying)));
  return { create, remove };
}

/** Removal preference: pods that serve nothing first (unbound, then not ready), newest first among equals. */
function byRemovalOrder(pods: Pod[], ready: (p: Pod) => boolean): Pod[] {
  const rank = (p: Pod) => (p.value.status.nodeId === null ? 0 : ready(p) ? 2 : 1);
  return [...pods].sort((a, b) => rank(a) - rank(b) || (a.value.createdAt < b.value.createdAt ? 1 : a.value.createdAt > b.value.createdAt ? -1 : 0));
}

/**
 * The leader's service controller: keeps each service's pods as
 * `planService` says, writing only through the pod repository's fenced
 * batches (creates with their name claims, deletion marks the pods' agents
 * act on, deletes of pods never bound). One work-queue key per service, so
 * services converge independently and a burst of pod changes is one pass.
 */
export class ServiceController implements LeaderLoop {
  private fence: Fence | undefined;
  private readonly queue: WorkQueue<string>;
  private readonly repo: PodRepository;

  constructor(
    client: Etcd3,
    private readonly state: ClusterState,
    private readonly elector: LeaderElector,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {
    this.repo = new PodRepository(client);
    this.queue = new WorkQueue<string>({
      handler: (name) => this.sync(name),
      baseDelayMs: 100,
      maxDelayMs: 5000,
      onError: (name, err, failures) => {
        if (this.fence === undefined || isBerthError(err, 'LEADERSHIP_LOST')) return false;
        this.log.warn({ err, service: name, failures }, 'service pass failed; retrying with backoff');
        return undefined;
      },
    });
    state.services.on('change', ({ item, prev }) => this.add((item ?? prev)!.value.name));
    state.pods.on('change', ({ item, prev }) => {
      for (const s of new Set([item?.value.service, prev?.value.service])) if (s !== undefined) this.add(s);
    });
    // Readiness of a service's pods depends on their nodes.
    state.nodes.on('change', ({ item, prev }) => {
      if (item?.value.status !== prev?.value.status) this.addAll();
    });
  }

  start(fence: Fence): void {
    this.fence = fence;
    this.addAll();
  }

  stop(): void {
    this.fence = undefined;
    this.queue.clear();
  }

  private add(name: string): void {
    if (this.fence !== undefined) this.queue.add(name);
  }

  private addAll(): void {
    if (this.fence === undefined) return;
    const names = new Set(this.state.services.list().map((s) => s.value.name));
    // Pods of deleted services too, so they are removed after a failover.
    for (const p of this.state.pods.values()) if (p.value.service !== undefined) names.add(p.value.service);
    for (const n of names) this.queue.add(n);
  }

  private async sync(name: string): Promise<void> {
    const fence = this.fence;
    if (fence === undefined) return;
    await this.elector.withFence(() => this.pass(fence, name));
  }

  private async pass(fence: Fence, name: string): Promise<void> {
    const service = this.state.services.get(keyOf('services', name))?.value;
    const pods = this.state.podsOf(name).filter((p) => p.value.deletionRequested === undefined);
    const live = pods.filter((p) => !TERMINAL_PHASES.has(p.value.status.phase));
    const ended = pods.filter((p) => TERMINAL_PHASES.has(p.value.status.phase));
    const ready = (p: Pod) => this.ready(p.value);
    const plan = planService(service, live, ended, ready);
    if (plan.remove.length > 0) await this.remove(fence, name, plan.remove);
    if (plan.create > 0 && service !== undefined) await this.create(fence, service, plan.create);
  }

  /** Ready as discovery counts it (so a rollout never removes a pod while its replacement gets no requests). */
  private ready(pod: PodRecord): boolean {
    if (!podReady(pod) || pod.status.nodeId === null) return false;
    const node = this.state.nodes.get(keyOf('nodes', pod.status.nodeId))?.value;
    return node?.status === 'Ready' && this.state.heartbeat(node.id) !== undefined;
  }

  private async create(fence: Fence, service: ServiceRecord, count: number): Promise<void> {
    const spec = serviceSpec(service.template);
    const now = new Date().toISOString();
    const made: string[] = [];
    for (let left = count; left > 0; ) {
      const batch = this.repo.fenced(fence);
      const n = Math.min(left, MAX_CREATE_BATCH);
      for (let i = 0; i < n; i++) {
        const pod: PodRecord = {
          id: newId(),
          name: `${service.name}-${podSuffix()}`,
          service: service.name,
          templateHash: service.templateHash,
          // Spread by default: each pod of a service lands where there is the most room, so its replicas go to different nodes.
          spec: { ...spec, ...(spec.policy === undefined ? { policy: 'spread' as const } : {}) },
          desired: 'running',
          status: { phase: 'Pending', nodeId: null, reason: 'Created', message: `created by service ${service.name}; waiting for the scheduler`, restarts: 0, startedAt: null, finishedAt: null },
          createdAt: now,
        };
        batch.create(pod);
        made.push(pod.name);
      }
      const res = await batch.commit();
      // A name collision (5 random letters): the next pass tries new names.
      if (!res.succeeded) throw new Error(`creating ${n} pod(s) of service ${service.name} lost a race`);
      // The next pass must count these pods: decide on a cache that has them.
      await this.state.pods.waitForRevision(res.revision);
      left -= n;
    }
    this.log.info({ service: service.name, pods: made }, 'service: created pods');
    this.record(fence, service.name, 'ServiceScaled', `service ${service.name}: created ${made.length} pod(s): ${made.join(', ')}`);
  }

  private async remove(fence: Fence, name: string, pods: Pod[]): Promise<void> {
    const now = new Date().toISOString();
    for (let i = 0; i < pods.length; i += MAX_CREATE_BATCH) {
      const batch = this.repo.fenced(fence);
      for (const p of pods.slice(i, i + MAX_CREATE_BATCH)) {
        // Never bound: it runs nowhere, so it goes at once. Bound: its agent stops it, then deletes the record.
        if (p.value.status.nodeId === null) batch.delete(p);
        else batch.put(p, { ...p.value, deletionRequested: now });
      }
      const res = await batch.commit();
      if (!res.succeeded) throw new Error(`removing pods of service ${name} lost a race`);
      await this.state.pods.waitForRevision(res.revision);
    }
    this.log.info({ service: name, pods: pods.map((p) => p.value.name) }, 'service: removing pods');
    this.record(fence, name, 'ServicePodsRemoved', `service ${name}: removing ${pods.length} pod(s): ${pods.map((p) => p.value.name).join(', ')}`);
  }

  private record(fence: Fence, service: string, reason: string, message: string): void {
    void this.events.recordFenced(fence, { type: 'Normal', reason, message, involved: { kind: 'service', id: service } }).catch((err: unknown) => this.log.debug({ err, service }, 'could not record event'));
  }
}
