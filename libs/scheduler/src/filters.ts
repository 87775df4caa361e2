import type { Resources } from '@berth/core';
import { MILLI, freeUnits, requestMiB, requestMillicores } from './quantity.js';
import type { Filter, FilterStage, NodeInfo, PodRequest, ResourceFilter } from './types.js';

export type { Filter, FilterStage, ResourceFilter } from './types.js';

/*
 * Feasibility: each filter is a thin adapter over an exported pure predicate,
 * and each rejection carries an exported reason constant, so every Pending pod
 * can say why ("0/5 nodes: 3 insufficient cpu, 2 NotReady"). FILTERS below is
 * the one list: `fits`, the batch snapshot (snapshot.ts) and preemption all
 * run it, so a filter added there applies everywhere.
 */

/** Reason: the node's lease expired and it is within its grace period. */
export const REASON_NOT_READY = 'NotReady';
/** Reason: the node's grace period passed; its pods are being rescheduled. */
export const REASON_DEAD = 'Dead';
/** Reason: the node heartbeats but its runtime cannot start pods (e.g. its Docker engine does not answer). */
export const REASON_RUNTIME_NOT_READY = 'runtime not ready';
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

/** A node whose runtime is away keeps the pods it runs but gets no new ones until the runtime answers again. */
export function runtimeReadyReason(node: Pick<NodeInfo, 'runtimeReady'>): string | undefined {
  return node.runtimeReady ? undefined : REASON_RUNTIME_NOT_READY;
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

/** Adapter over {@link nodeReadyReason}. */
export const NodeReadyFilter: Filter = { name: 'NodeReady', stage: 'node', filter: (_pod, node) => nodeReadyReason(node) };

/** Adapter over {@link runtimeReadyReason}. */
export const RuntimeReadyFilter: Filter = { name: 'RuntimeReady', stage: 'node', filter: (_pod, node) => runtimeReadyReason(node) };

/** Adapter over {@link nodeSchedulableReason}. */
export const NodeSchedulableFilter: Filter = { name: 'NodeSchedulable', stage: 'node', filter: (_pod, node) => nodeSchedulableReason(node) };

/** Adapter over {@link selectorMatches}. */
export const NodeSelectorFilter: Filter = {
  name: 'NodeSelector',
  stage: 'selector',
  filter: (pod, node) => (selectorMatches(pod.nodeSelector ?? {}, node.labels ?? {}) ? undefined : REASON_SELECTOR),
};

/** A {@link ResourceFilter} from its resource, reason and units. */
function resourceFilter(name: string, resource: keyof Resources, reason: string, request: (pod: PodRequest) => number, free: (node: NodeInfo) => number): ResourceFilter {
  return { name, stage: 'resource', resource, reason, request, free, filter: (pod, node) => (fitsUnits(request(pod), free(node)) ? undefined : reason) };
}

/** Adapter over {@link fitsUnits} in exact millicores. */
export const CpuFitFilter: ResourceFilter = resourceFilter(
  'CpuFit',
  'cpu',
  REASON_INSUFFICIENT_CPU,
  (pod) => requestMillicores(pod.cpu),
  (node) => freeUnits(node.capacity.cpu, node.allocated.cpu, MILLI),
);

/** Adapter over {@link fitsUnits} in exact MiB. */
export const MemoryFitFilter: ResourceFilter = resourceFilter(
  'MemoryFit',
  'memoryMiB',
  REASON_INSUFFICIENT_MEMORY,
  (pod) => requestMiB(pod.memoryMiB),
  (node) => freeUnits(node.capacity.memoryMiB, node.allocated.memoryMiB, 1),
);

/** True for the filters that compare a request with free capacity. */
export function isResourceFilter(f: Filter): f is ResourceFilter {
  return f.stage === 'resource';
}

/**
 * The filters in the order they run; a rejected node is counted under the
 * first reason only, so the counts of a message add up to the node count.
 * Node state comes first (a NotReady node's free capacity means nothing; a
 * node whose runtime is away comes back by itself, like a NotReady one), then
 * the selector (waiting will not change labels), and the resource fits last:
 * they are the reasons that go away when pods finish, which is what an
 * operator waiting on a Pending pod wants to see. The stages must come in
 * this order (node, selector, resource): the snapshot relies on it.
 */
export const FILTERS: readonly Filter[] = [NodeReadyFilter, RuntimeReadyFilter, NodeSchedulableFilter, NodeSelectorFilter, CpuFitFilter, MemoryFitFilter];

/** A filter list split by stage, as the snapshot and preemption run it. */
export interface FilterStages {
  /** Verdicts that depend on the node alone, in list order. */
  node: readonly Filter[];
  /** Verdicts that depend on the node and the pod's nodeSelector, in list order. */
  selector: readonly Filter[];
  /** Resource fits, in list order. */
  resources: readonly ResourceFilter[];
  /** The cpu fit and the memory fit: the policies rank nodes on these two. */
  cpu: ResourceFilter;
  memory: ResourceFilter;
}

/**
 * Splits a filter list by stage. Throws RangeError when the stages are out
 * of order (a node counts under its first rejection, and the snapshot asks
 * the stages in this order) or when the list lacks exactly one cpu and one
 * memory fit.
 */
export function filterStages(filters: readonly Filter[]): FilterStages {
  const order: readonly FilterStage[] = ['node', 'selector', 'resource'];
  let at = 0;
  for (const f of filters) {
    const i = order.indexOf(f.stage);
    if (i < at) throw new RangeError(`filter ${f.name} (${f.stage}) comes after a ${order[at]!} filter: stages run node, selector, resource`);
    at = i;
  }
  const resources = filters.filter(isResourceFilter);
  const only = (resource: keyof Resources): ResourceFilter => {
    const found = resources.filter((f) => f.resource === resource);
    if (found.length !== 1) throw new RangeError(`a filter list needs exactly one ${resource} fit, found ${found.length}`);
    return found[0]!;
  };
  return {
    node: filters.filter((f) => f.stage === 'node'),
    selector: filters.filter((f) => f.stage === 'selector'),
    resources,
    cpu: only('cpu'),
    memory: only('memoryMiB'),
  };
}

/** Why `pod` cannot go on `node` right now (the first failing filter's reason), or undefined when it fits. */
export function fits(pod: PodRequest, node: NodeInfo, filters: readonly Filter[] = FILTERS): string | undefined {
  for (const f of filters) {
    const reason = f.filter(pod, node);
    if (reason !== undefined) return reason;
  }
  return undefined;
}
