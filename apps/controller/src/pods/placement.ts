import { TERMINAL_PHASES, type AllocationRecord, type HeartbeatRecord, type NodeRecord, type PodRecord } from '@berth/core';
import { reservedTotal, type NodeInfo, type PodRequest } from '@berth/scheduler';

/*
 * How the leader's scheduling loop reads its watch caches: records become
 * the pure scheduler's NodeInfo and PodRequest, and a bound pod's record and
 * node say whether it must leave that node. Pure functions; the loop
 * (scheduler.ts) and the writes (binder.ts) do the I/O.
 */

/** Why a bound pod goes back to Pending. */
export type UnbindReason = 'NodeDead' | 'NodeDrained' | 'NodeRemoved' | 'Preempted' | 'RestartRequested';

/** What the leader does with a bound pod this pass, if anything. */
export type BoundPodAction = { kind: 'unbind'; reason: UnbindReason } | { kind: 'forceDelete' };

/** Why pods bound to `node` must leave it, if they must. */
export function nodeUnbindReason(node: NodeRecord | undefined): Exclude<UnbindReason, 'Preempted' | 'RestartRequested'> | undefined {
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
 * is as given: a running pod leaves a node that cannot run it any more, or,
 * when deletion was asked for and the node is dead or gone, is deleted (no
 * agent will do it; a draining node's agent still does); a
 * finished pod is deleted when marked on a node whose agent is gone, and
 * unbound when a restart was asked for.
 */
export function boundPodAction(pod: PodRecord, node: NodeRecord | undefined): BoundPodAction | undefined {
  if (pod.status.nodeId === null) return undefined;
  const leave = nodeUnbindReason(node);
  if (TERMINAL_PHASES.has(pod.status.phase)) {
    if (pod.deletionRequested !== undefined) return leave === 'NodeDead' || leave === 'NodeRemoved' ? { kind: 'forceDelete' } : undefined;
    return restartRequested(pod) ? { kind: 'unbind', reason: 'RestartRequested' } : undefined;
  }
  if (leave === undefined) return undefined;
  // A marked pod is deleted by its agent while one runs (a draining node's); the leader does it only where none will.
  if (pod.deletionRequested !== undefined) return leave === 'NodeDead' || leave === 'NodeRemoved' ? { kind: 'forceDelete' } : undefined;
  return { kind: 'unbind', reason: leave };
}

/** The record of `pod` sent back to Pending for `reason`: no node, not started, its restarts counted when it is a restart. */
export function unboundRecord(pod: PodRecord, reason: UnbindReason): PodRecord {
  const restart = reason === 'RestartRequested';
  const message = restart ? `was ${pod.status.phase} on node ${pod.status.nodeId}` : `was on node ${pod.status.nodeId}`;
  return {
    ...pod,
    status: { ...pod.status, phase: 'Pending', nodeId: null, reason, message, startedAt: null, restarts: pod.status.restarts + (restart ? 1 : 0) },
  };
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
