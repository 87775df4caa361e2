import { MILLI, freeUnits, requestMiB, requestMillicores } from './quantity.js';
import type { NodeInfo, PodRequest } from './types.js';

/*
 * Feasibility: each filter is a thin adapter over an exported pure predicate,
 * and each rejection carries an exported reason constant, so every Pending pod
 * can say why ("0/5 nodes: 3 insufficient cpu, 2 NotReady").
 */

/** Reason: the node's lease expired and it is within its grace period. */
export const REASON_NOT_READY = 'NotReady';
/** Reason: the node's grace period passed; its pods are being rescheduled. */
export const REASON_DEAD = 'Dead';
/** Reason: the agent shut down cleanly and will not run new pods. */
export const REASON_DEREGISTERED = 'deregistered';
/** Reason: the node is being drained, so new pods would only be evicted again. */
export const REASON_DRAINING = 'draining';
/** Reason: an operator cordoned the node. */
export const REASON_CORDONED = 'cordoned';
/** Reason: a `nodeSelector` pair is missing from the node's labels. */
export const REASON_SELECTOR = 'node selector mismatch';
/** Reason: the node's free cpu (capacity minus allocated) is below the request. */
export const REASON_INSUFFICIENT_CPU = 'insufficient cpu';
/** Reason: the node's free memory (capacity minus allocated) is below the request. */
export const REASON_INSUFFICIENT_MEMORY = 'insufficient memory';

/** Only a Ready node runs new pods: a NotReady one may be gone, a Dead one is. */
export function nodeReadyReason(node: Pick<NodeInfo, 'status'>): string | undefined {
  if (node.status === 'Ready') return undefined;
  return node.status === 'Dead' ? REASON_DEAD : REASON_NOT_READY;
}

/** Operator and agent intent: deregistered, draining and cordoned nodes take nothing new. */
export function nodeSchedulableReason(node: Pick<NodeInfo, 'cordoned' | 'draining' | 'deregistered'>): string | undefined {
  if (node.deregistered) return REASON_DEREGISTERED;
  if (node.draining) return REASON_DRAINING;
  if (node.cordoned) return REASON_CORDONED;
  return undefined;
}

/** True when every selector pair is among the labels (an empty selector matches every node). */
export function selectorMatches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const key in selector) {
    if (!Object.prototype.hasOwnProperty.call(labels, key) || labels[key] !== selector[key]) return false;
  }
  return true;
}

/** True when an integer request fits in the integer free amount (same unit); a negative or NaN request never fits. */
export function fitsUnits(request: number, free: number): boolean {
  return request >= 0 && request <= free;
}

/** One feasibility check: the reason it rejects `node` for `pod`, or undefined when the node passes. */
export interface Filter {
  /** Stable name, for logs and docs. */
  readonly name: string;
  filter(pod: PodRequest, node: NodeInfo): string | undefined;
}

/** Adapter over {@link nodeReadyReason}. */
export const NodeReadyFilter: Filter = { name: 'NodeReady', filter: (_pod, node) => nodeReadyReason(node) };

/** Adapter over {@link nodeSchedulableReason}. */
export const NodeSchedulableFilter: Filter = { name: 'NodeSchedulable', filter: (_pod, node) => nodeSchedulableReason(node) };

/** Adapter over {@link selectorMatches}. */
export const NodeSelectorFilter: Filter = {
  name: 'NodeSelector',
  filter: (pod, node) => (selectorMatches(pod.nodeSelector, node.labels) ? undefined : REASON_SELECTOR),
};

/** Adapter over {@link fitsUnits} in exact millicores. */
export const CpuFitFilter: Filter = {
  name: 'CpuFit',
  filter: (pod, node) =>
    fitsUnits(requestMillicores(pod.cpu), freeUnits(node.capacity.cpu, node.allocated.cpu, MILLI)) ? undefined : REASON_INSUFFICIENT_CPU,
};

/** Adapter over {@link fitsUnits} in exact MiB. */
export const MemoryFitFilter: Filter = {
  name: 'MemoryFit',
  filter: (pod, node) =>
    fitsUnits(requestMiB(pod.memoryMiB), freeUnits(node.capacity.memoryMiB, node.allocated.memoryMiB, 1)) ? undefined : REASON_INSUFFICIENT_MEMORY,
};

/**
 * The filters in the order they run; a rejected node is counted under the
 * first reason only, so the counts of a message add up to the node count.
 * Node state comes first (a NotReady node's free capacity means nothing),
 * then the selector (waiting will not change labels), and the resource fits
 * last: they are the reasons that go away when pods finish, which is what an
 * operator waiting on a Pending pod wants to see.
 */
export const FILTERS: readonly Filter[] = [NodeReadyFilter, NodeSchedulableFilter, NodeSelectorFilter, CpuFitFilter, MemoryFitFilter];

/** Why `pod` cannot go on `node` right now (the first failing filter's reason), or undefined when it fits. */
export function fits(pod: PodRequest, node: NodeInfo): string | undefined {
  for (const f of FILTERS) {
    const reason = f.filter(pod, node);
    if (reason !== undefined) return reason;
  }
  return undefined;
}
