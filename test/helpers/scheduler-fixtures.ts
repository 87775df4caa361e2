import type { Decision, NodeInfo, PodRequest, RunningPod } from '@berth/scheduler';

/*
 * Fixtures of the pure scheduler's tests: a 4-core, 4 GiB, Ready (runtime
 * too), empty node and a 1-core, 256 MiB pod, overridden per case.
 */

/** A node named `name` (id `id-<name>`) with the defaults above, overridden by `o`. */
export const node = (name: string, o: Partial<NodeInfo> = {}): NodeInfo => ({
  id: `id-${name}`,
  name,
  labels: {},
  status: 'Ready',
  runtimeReady: true,
  cordoned: false,
  draining: false,
  deregistered: false,
  capacity: { cpu: 4, memoryMiB: 4096 },
  allocated: { cpu: 0, memoryMiB: 0 },
  ...o,
});

/** A node with `cpu` cores of which `allocCpu` are taken (memory 4096 MiB unless given). */
export const sized = (name: string, cpu: number, allocCpu: number, mem = 4096, allocMem = 0): NodeInfo =>
  node(name, { capacity: { cpu, memoryMiB: mem }, allocated: { cpu: allocCpu, memoryMiB: allocMem } });

/** A pod named `name` (id `p-<name>`) with the defaults above, overridden by `o`. */
export const pod = (name: string, o: Partial<PodRequest> = {}): PodRequest => ({ id: `p-${name}`, name, cpu: 1, memoryMiB: 256, priority: 0, nodeSelector: {}, ...o });

/** A pod running on node `nodeName`: a possible preemption victim. */
export const running = (id: string, nodeName: string, cpu: number, priority: number, memoryMiB = 0): RunningPod => ({ id, nodeId: `id-${nodeName}`, cpu, memoryMiB, priority });

/** The replay seed most cases use. */
export const SEED = 'eval-1';

/** The node a decision bound to, or the unschedulable message: one string to compare. */
export const boundTo = (d: Decision) => (d.kind === 'bound' ? d.nodeId : `unschedulable: ${d.message}`);

/** Cores as the API would hold them: decimal sums of millicore quantities, float noise included. */
export const cores = (parts: number[]) => parts.reduce((s, m) => s + m / 1000, 0);
