import { ClusterSnapshot } from './snapshot.js';
import type { Decision, NodeInfo, PodRequest, ScheduleOptions } from './types.js';

/*
 * The scheduling pipeline, stage by stage (README.md draws it):
 *
 * 1. order     scheduleBatch sorts pods by priority (desc), then id, so the
 *              most important pods take capacity first and a replay of the
 *              same snapshot binds the same pods whatever order the cache
 *              listed them in.
 * 2. compile   ClusterSnapshot turns the NodeInfo snapshot into integer
 *              typed arrays once per call, so the per-pod work below never
 *              sorts and allocates node-sized arrays only once per distinct
 *              request shape.
 * 3. filter    node state and nodeSelector first (a cached mask per distinct
 *              selector: they cannot change within a snapshot), then exact
 *              cpu and memory fit (they change with every binding).
 * 4. score     the pod's policy, or the cluster's, ranks each feasible node
 *              in the same pass as the filter (for a request shape seen
 *              before, only the nodes bound since are re-ranked, in a
 *              tournament tree).
 * 5. select    highest rank; ties go to the lowest seeded hash of the node
 *              id, so placements are replayable but ties do not always land
 *              on the same node. The binding is charged to the working copy
 *              before the next pod, so a batch never overcommits.
 * 6. explain   only when no node passed: each node is counted under the first
 *              filter that rejected it, and the counts become the message.
 * (7. preempt) not part of a batch: the leader calls findPreemption for a pod
 *              the batch left unschedulable, evicts the victims, and retries.
 */

/** Decides where one pod goes on a snapshot; the leader binds a `bound` decision in a fenced etcd transaction. */
export function scheduleOne(pod: PodRequest, nodes: readonly NodeInfo[], opts: ScheduleOptions): Decision {
  return new ClusterSnapshot(nodes, opts.seed).schedule(pod, pod.policy ?? opts.policy);
}

/** Priority descending, then id: the order a batch takes capacity in; a non-finite priority counts as 0. */
export function comparePods(a: PodRequest, b: PodRequest): number {
  const pa = Number.isFinite(a.priority) ? a.priority : 0;
  const pb = Number.isFinite(b.priority) ? b.priority : 0;
  if (pa !== pb) return pb - pa;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Schedules pods one after another on one working copy of the snapshot, so
 * later pods see earlier bindings and nothing is overcommitted. Decisions come
 * back in scheduling order (see {@link comparePods}), one per distinct pod id:
 * a repeated id is scheduled once, at its highest priority.
 */
export function scheduleBatch(pods: readonly PodRequest[], nodes: readonly NodeInfo[], opts: ScheduleOptions): Decision[] {
  const snapshot = new ClusterSnapshot(nodes, opts.seed);
  const ordered = [...pods].sort(comparePods);
  const seen = new Set<string>();
  const decisions: Decision[] = [];
  for (const pod of ordered) {
    if (seen.has(pod.id)) continue;
    seen.add(pod.id);
    decisions.push(snapshot.schedule(pod, pod.policy ?? opts.policy));
  }
  return decisions;
}
