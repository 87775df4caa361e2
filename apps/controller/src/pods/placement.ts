import { TERMINAL_PHASES, type AllocationRecord, type EvictionReason, type HeartbeatRecord, type NodeRecord, type PodPhase, type PodRecord } from '@berth/core';
import { capacityMiB, capacityMillicores, reservedTotal, type NodeInfo, type PodRequest } from '@berth/scheduler';

/*
 * How the leader's scheduling loop reads its watch caches: records become
 * the pure scheduler's NodeInfo and PodRequest, and a bound pod's record and
 * node say whether it must leave that node. Pure functions; the loop
 * (scheduler.ts) and the writes (binder.ts) do the I/O.
 */

/** Why a bound pod goes back to Pending. */
export type UnbindReason = 'NodeDead' | 'NodeRemoved' | 'RestartRequested' | EvictionReason;

/**
 * What the leader does with a bound pod this pass, if anything: unbind it
 * (nothing of it runs, or its node is dead past the fence budget), mark it
 * for eviction (its agent stops it first), or delete it where no agent will.
 */
export type BoundPodAction = { kind: 'unbind'; reason: UnbindReason } | { kind: 'evict'; reason: EvictionReason } | { kind: 'forceDelete' };

/**
 * Phases in which nothing of a bound pod runs on its node, by its agent's
 * own compare-and-swap writes: `Scheduled` (every start first writes
 * Starting) and `Stopped` (written once the container ended). Unbinding
 * such a pod is a CAS against the agent's next write, so the two never both
 * succeed and the pod cannot start on the old node once it was unbound.
 */
const NOTHING_RUNS: ReadonlySet<PodPhase> = new Set<PodPhase>(['Scheduled', 'Stopped']);

/** Why pods bound to `node` must leave it, if they must. */
export function nodeUnbindReason(node: NodeRecord | undefined): 'NodeDead' | 'NodeRemoved' | 'NodeDrained' | undefined {
  if (node === undefined) return 'NodeRemoved';
  if (node.status === 'Dead') return 'NodeDead';
  if (node.draining || node.deregisteredAt !== undefined) return 'NodeDrained';
  return undefined;
}

/**
 * True when a finished (Succeeded or Failed) pod was asked to run again and
 * no start has honoured that request yet (`status.restartHandled`, written by
 * the agent with every start). A finished pod holds no reservation, so only
 * the scheduler can run it again: it goes back to Pending and is bound anew.
 */
export function restartRequested(pod: PodRecord): boolean {
  if (!TERMINAL_PHASES.has(pod.status.phase) || pod.restartRequestedAt === undefined) return false;
  return pod.restartRequestedAt !== pod.status.restartHandled;
}

/**
 * What happens to a bound pod whose `node` (undefined: the record is gone)
 * is as given. A pod marked for deletion is deleted by its agent, or by the
 * leader where none is left (dead or removed node). A finished pod holds
 * nothing and is unbound when a restart was asked for. A live pod leaves a
 * dead or removed node at once (its agent fenced itself: the node's fence
 * budget has passed); any other pod that must leave is evicted in two
 * phases: marked, stopped by its agent (phase Stopped), then unbound.
 */
export function boundPodAction(pod: PodRecord, node: NodeRecord | undefined): BoundPodAction | undefined {
  if (pod.status.nodeId === null) return undefined;
  const leave = nodeUnbindReason(node);
  const gone = leave === 'NodeDead' || leave === 'NodeRemoved';
  if (pod.deletionRequested !== undefined) return gone ? { kind: 'forceDelete' } : undefined;
  if (TERMINAL_PHASES.has(pod.status.phase)) return restartRequested(pod) ? { kind: 'unbind', reason: 'RestartRequested' } : undefined;
  if (gone) return { kind: 'unbind', reason: leave };
  const eviction = pod.status.eviction?.reason ?? leave;
  if (eviction === undefined) return undefined;
  if (NOTHING_RUNS.has(pod.status.phase)) return { kind: 'unbind', reason: eviction };
  // Marked already: its agent is stopping it (or its node is away, and the fence budget will decide).
  return pod.status.eviction === undefined ? { kind: 'evict', reason: eviction } : undefined;
}

/**
 * Pods to evict from a node that reserves more than its capacity (its agent
 * re-joined with a smaller `--cpu` or `--memory-mib`): the lowest priority
 * first, then the newest, until what stays fits. Pods already being evicted
 * count as gone. Pure.
 */
export function overcommitVictims(node: NodeRecord, alloc: AllocationRecord | undefined, pods: readonly PodRecord[]): PodRecord[] {
  if (alloc === undefined) return [];
  let cpuMillis = 0;
  let memoryMiB = 0;
  for (const r of Object.values(alloc.pods)) {
    cpuMillis += r.cpuMillis;
    memoryMiB += r.memoryMiB;
  }
  const fits = () => cpuMillis <= capacityMillicores(node.capacity.cpu) && memoryMiB <= capacityMiB(node.capacity.memoryMiB);
  if (fits()) return [];
  const candidates: PodRecord[] = [];
  for (const p of pods) {
    const r = alloc.pods[p.id];
    if (r === undefined || p.status.nodeId !== node.id) continue;
    if (p.status.eviction !== undefined) {
      cpuMillis -= r.cpuMillis;
      memoryMiB -= r.memoryMiB;
    } else if (!TERMINAL_PHASES.has(p.status.phase) && p.deletionRequested === undefined) candidates.push(p);
  }
  candidates.sort((x, y) => x.spec.priority - y.spec.priority || y.createdAt.localeCompare(x.createdAt));
  const victims: PodRecord[] = [];
  for (const p of candidates) {
    if (fits()) break;
    const r = alloc.pods[p.id]!;
    cpuMillis -= r.cpuMillis;
    memoryMiB -= r.memoryMiB;
    victims.push(p);
  }
  return victims;
}

/** The record of `pod` sent back to Pending for `reason`: no node, not started, its restarts counted when it is a restart. */
export function unboundRecord(pod: PodRecord, reason: UnbindReason): PodRecord {
  const restart = reason === 'RestartRequested';
  const message = restart ? `was ${pod.status.phase} on node ${pod.status.nodeId}` : `was on node ${pod.status.nodeId}`;
  // Off its node the pod serves nothing: its agent's readiness verdict goes with the binding.
  const { eviction: _done, ready: _ready, ...status } = pod.status;
  return {
    ...pod,
    status: { ...status, phase: 'Pending', nodeId: null, reason, message, startedAt: null, restarts: pod.status.restarts + (restart ? 1 : 0) },
  };
}

/** The record of `pod` marked for eviction (`now` in ms). */
export function evictedRecord(pod: PodRecord, reason: EvictionReason, now: number): PodRecord {
  return { ...pod, status: { ...pod.status, eviction: { reason, requestedAt: new Date(now).toISOString() } } };
}

/**
 * A node as the pure scheduler sees it: `allocated` is its reservation
 * record's sum, and its runtime counts as ready unless its heartbeat says
 * otherwise (agents whose runtime cannot fail report nothing).
 */
export function nodeInfo(n: NodeRecord, alloc: AllocationRecord | undefined, heartbeat: HeartbeatRecord | undefined): NodeInfo {
  return {
    id: n.id,
    name: n.name,
    labels: n.labels,
    status: n.status,
    runtimeReady: heartbeat?.runtime?.ready !== false,
    cordoned: n.cordoned,
    draining: n.draining,
    deregistered: n.deregisteredAt !== undefined,
    capacity: n.capacity,
    allocated: reservedTotal(alloc),
  };
}

/** What a Pending pod asks the pure scheduler for. */
export function podRequest(p: PodRecord): PodRequest {
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
