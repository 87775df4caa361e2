import { SCHEDULING_POLICIES, type NodeStatus, type Resources } from '@berth/core';

/** Placement policies: three hole-fitting rules and two scored ones (see README.md for each formula). */
export const POLICIES = SCHEDULING_POLICIES;

/** How the select stage ranks feasible nodes; a pod's own policy overrides the cluster's. */
export type Policy = (typeof POLICIES)[number];

/**
 * A node as the scheduler sees it in the leader's snapshot. `allocated` is the
 * sum of the requests of the pods bound to it (not measured usage), so
 * placement never depends on how busy a container happens to be.
 */
export interface NodeInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  status: NodeStatus;
  /** The node's runtime can start pods (e.g. its Docker engine answers); a node heartbeats without it. */
  runtimeReady: boolean;
  cordoned: boolean;
  draining: boolean;
  /** The agent shut down cleanly: nothing new may land there. */
  deregistered: boolean;
  /** Cores (decimal) and MiB. */
  capacity: Resources;
  /** Cores (decimal) and MiB already requested by bound pods. */
  allocated: Resources;
}

/** What a Pending pod asks for; `cpu` in cores (decimal), `memoryMiB` integer. */
export interface PodRequest {
  id: string;
  name: string;
  cpu: number;
  memoryMiB: number;
  /** Higher schedules first and may preempt strictly lower. */
  priority: number;
  /** Every pair must be among the node's labels. */
  nodeSelector: Record<string, string>;
  /** Overrides the cluster default for this pod. */
  policy?: Policy;
}

/** A pod already bound to a node: a possible preemption victim. */
export interface RunningPod {
  id: string;
  nodeId: string;
  cpu: number;
  memoryMiB: number;
  priority: number;
}

/**
 * The outcome for one pod. An unplaceable pod is data, not an exception: the
 * leader writes `message` as the Pending pod's reason and retries it when
 * capacity appears. `reasons` counts the rejected nodes per reason.
 */
export type Decision =
  | { kind: 'bound'; podId: string; nodeId: string; score: number }
  | { kind: 'unschedulable'; podId: string; reasons: Record<string, number>; message: string };

/** Options of one scheduling call: the policy when the pod names none, and the replay seed (e.g. the evaluation id). */
export interface ScheduleOptions {
  policy: Policy;
  seed: string;
}

/** Options of a preemption search: the seed breaks ties between equally good nodes. */
export interface PreemptOptions {
  seed: string;
  /** The filters to honour (default FILTERS); all but the resource fits decide which nodes are targets. */
  filters?: readonly Filter[];
}

/** Where a pod can go if `victims` (pod ids, lowest priority first) are evicted back to Pending. */
export interface Preemption {
  nodeId: string;
  victims: string[];
}

/**
 * What a filter's verdict depends on, which tells the batch snapshot how
 * often it must ask: `node` filters once per node and snapshot, `selector`
 * filters once per node and distinct nodeSelector, `resource` filters after
 * every binding (they compare a request with what is still free).
 */
export type FilterStage = 'node' | 'selector' | 'resource';

/** One feasibility check: the reason it rejects `node` for `pod`, or undefined when the node passes. */
export interface Filter {
  /** Stable name, for logs and docs. */
  readonly name: string;
  /** What the verdict depends on; a `node` filter must not read the pod, a `selector` filter only its nodeSelector. */
  readonly stage: FilterStage;
  filter(pod: PodRequest, node: NodeInfo): string | undefined;
}

/**
 * A fit over one consumable resource in exact integer units, so the snapshot
 * can keep what is free per node in a typed array and charge each binding:
 * the node passes when `fitsUnits(request(pod), free(node))`.
 */
export interface ResourceFilter extends Filter {
  readonly stage: 'resource';
  /** The resource (a key of `capacity` and `allocated`). */
  readonly resource: keyof Resources;
  /** The one reason it rejects with. */
  readonly reason: string;
  /** The pod's request, rounded up to an integer unit. */
  request(pod: PodRequest): number;
  /** Capacity (rounded down) minus allocated (rounded up), in the same unit; -1 when a figure is broken. */
  free(node: NodeInfo): number;
}
