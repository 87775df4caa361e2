import type { NodeStatus, Resources } from '@berth/core';

/** Placement policies (SPEC.md section 7): the three of seeds/003 and the two scored ones of seeds/004. */
export const POLICIES = ['first-fit', 'best-fit', 'worst-fit', 'spread', 'binpack'] as const;

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
}

/** Where a pod can go if `victims` (pod ids, lowest priority first) are evicted back to Pending. */
export interface Preemption {
  nodeId: string;
  victims: string[];
}
