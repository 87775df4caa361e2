import { FILTERS, filterStages, fits, type Filter } from './filters.js';
import { MILLI, invalidRequest, quantise } from './quantity.js';
import { seedState, tieBreak } from './score.js';
import type { NodeInfo, PodRequest, PreemptOptions, Preemption, RunningPod } from './types.js';

/** The default filter list, split once. */
const DEFAULT_STAGES = filterStages(FILTERS);

/** A possible victim in exact units; what evicting it frees is rounded down, so the pod is never promised room it may not get. */
interface Victim {
  id: string;
  priority: number;
  cpu: number;
  mem: number;
}

/** One node's cheapest eviction set and the keys nodes are compared on. */
interface Candidate {
  nodeId: string;
  victims: Victim[];
  maxPriority: number;
  sumPriority: number;
  rank: number;
}

/** Lowest priority first; within a priority the biggest first, so fewer pods go; then id for a total order. */
function victimOrder(a: Victim, b: Victim): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  if (a.cpu !== b.cpu) return b.cpu - a.cpu;
  if (a.mem !== b.mem) return b.mem - a.mem;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The smallest set of `pool` (already in victimOrder) whose eviction covers a
 * deficit of (needCpu, needMem), or undefined when even all of them do not.
 * Greedy in victimOrder, skipping pods that free nothing still missing, then
 * kube-scheduler's reprieve: walk back from the most important victim and
 * spare every one the pod can do without. The result is irreducible: no victim
 * can be spared.
 */
export function chooseVictims<V extends { cpu: number; mem: number }>(pool: readonly V[], needCpu: number, needMem: number): V[] | undefined {
  const chosen: V[] = [];
  let cpu = needCpu;
  let mem = needMem;
  for (const v of pool) {
    if (cpu <= 0 && mem <= 0) break;
    if ((cpu > 0 && v.cpu > 0) || (mem > 0 && v.mem > 0)) {
      chosen.push(v);
      cpu -= v.cpu;
      mem -= v.mem;
    }
  }
  if (cpu > 0 || mem > 0) return undefined;
  for (let j = chosen.length - 1; j >= 0; j--) {
    const v = chosen[j]!;
    if (cpu + v.cpu <= 0 && mem + v.mem <= 0) {
      cpu += v.cpu;
      mem += v.mem;
      chosen.splice(j, 1);
    }
  }
  return chosen;
}

/** True when candidate a is the better node to preempt on: lowest most-important victim, then fewest victims, then least total priority, then seeded tie-break. */
function better(a: Candidate, b: Candidate): boolean {
  if (a.maxPriority !== b.maxPriority) return a.maxPriority < b.maxPriority;
  if (a.victims.length !== b.victims.length) return a.victims.length < b.victims.length;
  if (a.sumPriority !== b.sumPriority) return a.sumPriority < b.sumPriority;
  if (a.rank !== b.rank) return a.rank < b.rank;
  return a.nodeId < b.nodeId;
}

/**
 * Where `pod` could run if strictly lower-priority pods were evicted, and
 * which ones, or undefined when no eviction would make it fit. Every filter
 * but the resource fits still applies (a cordoned node, or one whose runtime
 * is away, is no target). The
 * node is chosen as kube-scheduler does: the one whose most important victim
 * is least important, then the fewest victims, then the lowest priority sum.
 * A node where the pod already fits wins with no victims: the caller should
 * have bound it, and the answer stays correct. `running` must be the pods
 * counted in the nodes' `allocated`.
 */
export function findPreemption(pod: PodRequest, nodes: readonly NodeInfo[], running: readonly RunningPod[], opts: PreemptOptions): Preemption | undefined {
  if (invalidRequest(pod.cpu, pod.memoryMiB) !== undefined) return undefined;
  const stages = opts.filters === undefined ? DEFAULT_STAGES : filterStages(opts.filters);
  const eligibility: readonly Filter[] = [...stages.node, ...stages.selector];
  const cpu = stages.cpu.request(pod);
  const mem = stages.memory.request(pod);
  const byNode = new Map<string, Victim[]>();
  for (const r of running) {
    if (!(r.priority < pod.priority) || r.id === pod.id) continue;
    const v: Victim = { id: r.id, priority: r.priority, cpu: quantise(r.cpu, MILLI, 'down'), mem: quantise(r.memoryMiB, 1, 'down') };
    const list = byNode.get(r.nodeId);
    if (list) list.push(v);
    else byNode.set(r.nodeId, [v]);
  }
  const state = seedState(opts.seed);
  let best: Candidate | undefined;
  for (const node of nodes) {
    if (fits(pod, node, eligibility) !== undefined) continue;
    const needCpu = cpu - stages.cpu.free(node);
    const needMem = mem - stages.memory.free(node);
    const pool = (byNode.get(node.id) ?? []).sort(victimOrder);
    const victims = chooseVictims(pool, needCpu, needMem);
    if (!victims) continue;
    let maxPriority = -Infinity;
    let sumPriority = 0;
    for (const v of victims) {
      if (v.priority > maxPriority) maxPriority = v.priority;
      sumPriority += v.priority;
    }
    const candidate: Candidate = { nodeId: node.id, victims, maxPriority, sumPriority, rank: tieBreak(state, node.id) };
    if (!best || better(candidate, best)) best = candidate;
  }
  return best && { nodeId: best.nodeId, victims: best.victims.map((v) => v.id) };
}
