import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  keyOf,
  TERMINAL_PHASES,
  type AllocationRecord,
  type NodeRecord,
  type PodRecord,
} from '@berth/core';
import {
  absent,
  commitFenced,
  modifiedAt,
  putJson,
  type Compare,
  type EventRecorder,
  type Fence,
  type LeaderElector,
  type Op,
  type Versioned,
} from '@berth/store';
import { findPreemption, requestMillicores, reservedTotal, scheduleBatch, type Decision, type NodeInfo, type Policy, type PodRequest, type RunningPod } from '@berth/scheduler';
import type { ClusterState } from '../cluster-state.js';

/** Pods per binding transaction: each costs a guard and a put, plus one of each per touched node (etcd allows 128). */
const BIND_BATCH = 40;

/** Why a bound pod goes back to Pending. */
type UnbindReason = 'NodeDead' | 'NodeDrained' | 'NodeRemoved' | 'Preempted';

/**
 * The leader's scheduling loop (SPEC.md section 7). Watch-driven: any change of
 * pods, nodes or reservations marks it dirty and one pass runs:
 *   1. unbind pods of Dead, draining, deregistered or removed nodes;
 *   2. release reservations of pods that are gone, terminal or bound elsewhere;
 *   3. bind Pending pods chosen by the pure scheduler (libs/scheduler), in
 *      fenced transactions that also guard each node's reservation record, so
 *      nothing can overcommit a node or bind a pod twice;
 *   4. write the reasons of pods that fit nowhere;
 *   5. preempt lower-priority pods for those, which then bind on a later pass.
 */
export class PodScheduler {
  private fence: Fence | undefined;
  private running = false;
  private dirty = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private passes = 0;
  /** Pods bound since this replica took office, for metrics. */
  bound = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly elector: LeaderElector,
    private readonly events: EventRecorder,
    private readonly defaultPolicy: Policy,
    private readonly log: Logger,
  ) {
    for (const inf of [state.pods, state.nodes, state.allocations] as const) inf.on('change', () => this.kick());
    // A node's runtime coming back (its Docker engine answers again) is only in its heartbeat; the
    // heartbeat's usage reports change every few seconds and do not concern the scheduler.
    state.heartbeats.on('change', ({ item, prev }) => {
      if (item?.value.runtime?.ready !== prev?.value.runtime?.ready) this.kick();
    });
  }

  start(fence: Fence): void {
    this.fence = fence;
    this.kick();
  }

  stop(): void {
    this.fence = undefined;
    clearTimeout(this.retryTimer);
  }

  /** Marks work to do; passes never overlap and bursts of watch events coalesce. */
  kick(): void {
    if (this.fence === undefined) return;
    this.dirty = true;
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.dirty && this.fence !== undefined) {
        this.dirty = false;
        const fence = this.fence;
        try {
          await this.elector.withFence(() => this.pass(fence));
        } catch (err) {
          if (this.fence === undefined) break;
          this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'scheduling pass failed; retrying');
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => this.kick(), 500);
          break;
        }
      }
    } finally {
      this.running = false;
      if (this.dirty && this.fence !== undefined) this.kick();
    }
  }

  private async pass(fence: Fence): Promise<void> {
    this.passes += 1;
    // Unsorted snapshots: a pass may run many times a second over 10,000s of items.
    const pods = [...this.state.pods.values()];
    const nodes = new Map([...this.state.nodes.values()].map((n) => [n.value.id, n]));
    const allocs = new Map([...this.state.allocations.values()].map((a) => [a.value.nodeId, a]));
    let wrote = false;

    // 1. Unbind pods whose node cannot run them any more.
    const unbind: Array<{ pod: Versioned<PodRecord>; reason: UnbindReason }> = [];
    const forceDelete: Versioned<PodRecord>[] = [];
    for (const p of pods) {
      const nodeId = p.value.status.nodeId;
      if (nodeId === null || TERMINAL_PHASES.has(p.value.status.phase)) continue;
      const node = nodes.get(nodeId)?.value;
      const reason = unbindReason(node);
      if (reason === undefined) continue;
      if (p.value.deletionRequested) forceDelete.push(p);
      else unbind.push({ pod: p, reason });
    }
    if (unbind.length > 0 || forceDelete.length > 0) {
      await this.unbind(fence, unbind, forceDelete, allocs);
      wrote = true;
    }

    // 2. Release reservations nobody holds any more.
    for (const [nodeId, a] of allocs) {
      const stale = Object.keys(a.value.pods).filter((podId) => {
        const pod = this.state.pods.get(keyOf('pods', podId))?.value;
        return pod === undefined || pod.status.nodeId !== nodeId || TERMINAL_PHASES.has(pod.status.phase);
      });
      // (A removed node's record goes away with its last reservation.)
      if (stale.length === 0) continue;
      const remaining = Object.fromEntries(Object.entries(a.value.pods).filter(([id]) => !stale.includes(id)));
      const key = keyOf('allocations', nodeId);
      const ops: Op[] = Object.keys(remaining).length === 0 ? [{ type: 'delete', key }] : [putJson(key, { nodeId, pods: remaining } satisfies AllocationRecord)];
      const res = await commitFenced(this.client, fence, [modifiedAt(key, a.modRevision)], ops);
      if (res.succeeded) await this.state.allocations.waitForRevision(res.revision);
      wrote = true;
    }
    if (wrote) return this.kick(); // decide the rest on fresh caches

    // 3. Bind Pending pods.
    const pending = pods.filter((p) => p.value.status.phase === 'Pending' && !p.value.deletionRequested);
    if (pending.length === 0) return;
    // A node whose runtime is away (its Docker engine stopped) keeps its pods but gets no new ones (RuntimeReadyFilter).
    const infos = [...nodes.values()].map((n) => nodeInfo(n.value, allocs.get(n.value.id)?.value, this.state.heartbeat(n.value.id)?.value.runtime?.ready !== false));
    const requests = pending.map((p) => podRequest(p.value));
    const decisions = scheduleBatch(requests, infos, { policy: this.defaultPolicy, seed: `${fence.term}:${this.passes}` });
    const byId = new Map(pending.map((p) => [p.value.id, p]));
    const binds = decisions.filter((d): d is Extract<Decision, { kind: 'bound' }> => d.kind === 'bound');
    if (binds.length > 0) await this.bind(fence, binds, byId, allocs, nodes);

    // 4. Reasons for pods that fit nowhere (written only when they change).
    const unschedulable = decisions.filter((d): d is Extract<Decision, { kind: 'unschedulable' }> => d.kind === 'unschedulable');
    for (const d of unschedulable) {
      const pod = byId.get(d.podId);
      if (pod === undefined || (pod.value.status.reason === 'Unschedulable' && pod.value.status.message === d.message)) continue;
      const next: PodRecord = { ...pod.value, status: { ...pod.value.status, reason: 'Unschedulable', message: d.message } };
      const key = keyOf('pods', pod.value.id);
      await commitFenced(this.client, fence, [modifiedAt(key, pod.modRevision)], [putJson(key, next)]);
    }

    // 5. Preemption, one pod per pass (victims' reservations are released in the same transaction).
    if (binds.length === 0 && unschedulable.length > 0) await this.preempt(fence, unschedulable, byId, infos, pods);
  }

  private async unbind(
    fence: Fence,
    unbind: Array<{ pod: Versioned<PodRecord>; reason: UnbindReason }>,
    forceDelete: Versioned<PodRecord>[],
    allocs: Map<string, Versioned<AllocationRecord>>,
  ): Promise<void> {
    // Per node: the reservation record loses these pods in the same transaction.
    const byNode = new Map<string, Array<{ pod: Versioned<PodRecord>; op: Op[] }>>();
    for (const { pod, reason } of unbind) {
      const next: PodRecord = {
        ...pod.value,
        status: { ...pod.value.status, phase: 'Pending', nodeId: null, reason, message: `was on node ${pod.value.status.nodeId}`, startedAt: null },
      };
      push(byNode, pod.value.status.nodeId!, { pod, op: [putJson(keyOf('pods', pod.value.id), next)] });
    }
    for (const pod of forceDelete) {
      // The agent that would remove it is gone: remove the record and its name.
      push(byNode, pod.value.status.nodeId!, {
        pod,
        op: [{ type: 'delete', key: keyOf('pods', pod.value.id) }, { type: 'delete', key: `/berth/names/pods/${pod.value.name}` }],
      });
    }
    for (const [nodeId, items] of byNode) {
      for (let i = 0; i < items.length; i += BIND_BATCH) {
        const chunk = items.slice(i, i + BIND_BATCH);
        const guards: Compare[] = chunk.map((c) => modifiedAt(keyOf('pods', c.pod.value.id), c.pod.modRevision));
        const ops: Op[] = chunk.flatMap((c) => c.op);
        const alloc = allocs.get(nodeId);
        if (alloc) {
          const key = keyOf('allocations', nodeId);
          const remaining = { ...alloc.value.pods };
          for (const c of chunk) delete remaining[c.pod.value.id];
          guards.push(modifiedAt(key, alloc.modRevision));
          ops.push(Object.keys(remaining).length === 0 ? { type: 'delete', key } : putJson(key, { nodeId, pods: remaining } satisfies AllocationRecord));
        }
        const res = await commitFenced(this.client, fence, guards, ops);
        if (!res.succeeded) return; // something moved; the watch re-triggers a pass
        if (alloc) allocs.set(nodeId, { ...alloc, modRevision: res.revision });
        await this.state.pods.waitForRevision(res.revision);
        this.log.info({ node: nodeId, pods: chunk.map((c) => c.pod.value.name) }, 'pods unbound from a node that cannot run them');
        void this.events
          .recordFenced(fence, {
            type: 'Warning',
            reason: 'PodsRescheduled',
            message: `${chunk.length} pod(s) left node ${nodeId}: ${chunk.map((c) => c.pod.value.name).join(', ')}`,
            involved: { kind: 'node', id: nodeId },
          })
          .catch(() => undefined);
      }
    }
  }

  private async bind(
    fence: Fence,
    binds: Array<Extract<Decision, { kind: 'bound' }>>,
    pods: Map<string, Versioned<PodRecord>>,
    allocs: Map<string, Versioned<AllocationRecord>>,
    nodes: Map<string, Versioned<NodeRecord>>,
  ): Promise<void> {
    // Reservation records as this pass has changed them so far (value and the revision to guard on).
    const working = new Map<string, { pods: AllocationRecord['pods']; rev: number | undefined }>();
    for (let i = 0; i < binds.length; i += BIND_BATCH) {
      const chunk = binds.slice(i, i + BIND_BATCH);
      const guards: Compare[] = [];
      const ops: Op[] = [];
      const touched = new Map<string, AllocationRecord['pods']>();
      for (const d of chunk) {
        const pod = pods.get(d.podId)!;
        const key = keyOf('pods', d.podId);
        guards.push(modifiedAt(key, pod.modRevision));
        const nodeName = nodes.get(d.nodeId)?.value.name ?? d.nodeId;
        const next: PodRecord = {
          ...pod.value,
          status: { ...pod.value.status, phase: 'Scheduled', nodeId: d.nodeId, reason: 'Scheduled', message: `bound to ${nodeName} (score ${d.score})` },
        };
        ops.push(putJson(key, next));
        let w = working.get(d.nodeId);
        if (w === undefined) {
          const a = allocs.get(d.nodeId);
          w = { pods: { ...(a?.value.pods ?? {}) }, rev: a?.modRevision };
          working.set(d.nodeId, w);
        }
        w.pods[d.podId] = { cpuMillis: requestMillicores(pod.value.spec.cpu), memoryMiB: pod.value.spec.memoryMiB };
        touched.set(d.nodeId, w.pods);
      }
      for (const [nodeId, podsOnNode] of touched) {
        const key = keyOf('allocations', nodeId);
        const rev = working.get(nodeId)!.rev;
        guards.push(rev === undefined ? absent(key) : modifiedAt(key, rev));
        ops.push(putJson(key, { nodeId, pods: podsOnNode } satisfies AllocationRecord));
      }
      const res = await commitFenced(this.client, fence, guards, ops);
      if (!res.succeeded) {
        // A pod or a reservation changed under us: stop here, the next pass decides again on fresh caches.
        this.log.debug({ pods: chunk.length }, 'binding transaction lost a race; rescheduling');
        this.kick();
        return;
      }
      for (const nodeId of touched.keys()) working.get(nodeId)!.rev = res.revision;
      this.bound += chunk.length;
      this.log.debug({ pods: chunk.length, revision: res.revision }, 'pods bound');
      await Promise.all([this.state.pods.waitForRevision(res.revision), this.state.allocations.waitForRevision(res.revision)]);
    }
  }

  private async preempt(
    fence: Fence,
    unschedulable: Array<Extract<Decision, { kind: 'unschedulable' }>>,
    pending: Map<string, Versioned<PodRecord>>,
    infos: NodeInfo[],
    pods: Versioned<PodRecord>[],
  ): Promise<void> {
    const running: RunningPod[] = pods
      .filter((p) => p.value.status.nodeId !== null && !TERMINAL_PHASES.has(p.value.status.phase))
      .map((p) => ({ id: p.value.id, nodeId: p.value.status.nodeId!, cpu: p.value.spec.cpu, memoryMiB: p.value.spec.memoryMiB, priority: p.value.spec.priority }));
    const minPriority = Math.min(...running.map((r) => r.priority));
    const candidates = unschedulable
      .map((d) => pending.get(d.podId)!)
      .filter((p) => p !== undefined && p.value.spec.priority > minPriority)
      .sort((a, b) => b.value.spec.priority - a.value.spec.priority);
    for (const p of candidates) {
      const plan = findPreemption(podRequest(p.value), infos, running, { seed: `${fence.term}:${this.passes}` });
      if (plan === undefined || plan.victims.length === 0) continue;
      const victims = plan.victims.map((id) => this.state.pods.get(keyOf('pods', id))).filter((v): v is Versioned<PodRecord> => v !== undefined);
      const allocs = new Map(this.state.allocations.list().map((a) => [a.value.nodeId, a]));
      this.log.info({ pod: p.value.name, node: plan.nodeId, victims: victims.map((v) => v.value.name) }, 'preempting lower-priority pods');
      await this.unbind(fence, victims.map((pod) => ({ pod, reason: 'Preempted' as const })), [], allocs);
      return;
    }
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/** Why pods bound to `node` must leave it, if they must. */
function unbindReason(node: NodeRecord | undefined): UnbindReason | undefined {
  if (node === undefined) return 'NodeRemoved';
  if (node.status === 'Dead') return 'NodeDead';
  if (node.draining || node.deregisteredAt !== undefined) return 'NodeDrained';
  return undefined;
}

/** A node as the pure scheduler sees it; `allocated` is the reservation record's sum. */
function nodeInfo(n: NodeRecord, alloc: AllocationRecord | undefined, runtimeReady: boolean): NodeInfo {
  return {
    id: n.id,
    name: n.name,
    labels: n.labels,
    status: n.status,
    runtimeReady,
    cordoned: n.cordoned,
    draining: n.draining,
    deregistered: n.deregisteredAt !== undefined,
    capacity: n.capacity,
    allocated: reservedTotal(alloc),
  };
}

function podRequest(p: PodRecord): PodRequest {
  return {
    id: p.id,
    name: p.name,
    cpu: p.spec.cpu,
    memoryMiB: p.spec.memoryMiB,
    priority: p.spec.priority,
    nodeSelector: p.spec.nodeSelector,
    ...(p.spec.policy ? { policy: p.spec.policy } : {}),
  };
}
