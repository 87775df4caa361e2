#!/usr/bin/env node
/**
 * Scheduler micro-benchmark: the pure core alone, no etcd. Times scheduleBatch
 * of P pods over N nodes for each policy, scheduleOne (which compiles the
 * snapshot each call) and findPreemption on a full cluster.
 *
 *   npm run build && node bench/dist/scheduler-micro.js [--nodes 5000] [--pods 10000] [--rounds 3]
 */
import { parseArgs } from 'node:util';
import { POLICIES, findPreemption, scheduleBatch, scheduleOne, type NodeInfo, type PodRequest, type RunningPod } from '@berth/scheduler';
import { machineSummary, summarize } from './machine.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5000' },
    pods: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
  },
});
const N = Number(values.nodes);
const P = Number(values.pods);
const ROUNDS = Number(values.rounds);

/** Deterministic pseudo-random numbers (mulberry32), so every run schedules the same cluster. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

const rand = rng(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const nodes: NodeInfo[] = Array.from({ length: N }, (_, i) => {
  const cpu = pick([4, 8, 16, 32]);
  const memoryMiB = cpu * 2048;
  return {
    id: `node-${i.toString(36).padStart(6, '0')}`,
    name: `n${i}`,
    labels: { zone: pick(['a', 'b', 'c']), disk: pick(['ssd', 'hdd']) },
    status: rand() < 0.02 ? 'NotReady' : 'Ready',
    runtimeReady: true,
    cordoned: rand() < 0.01,
    draining: false,
    deregistered: false,
    capacity: { cpu, memoryMiB },
    allocated: { cpu: Math.floor(rand() * cpu * 10) / 20, memoryMiB: Math.floor(rand() * memoryMiB * 0.5) },
  };
});
const pods: PodRequest[] = Array.from({ length: P }, (_, i): PodRequest => ({
  id: `pod-${i.toString(36).padStart(6, '0')}`,
  name: `p${i}`,
  cpu: pick([0.1, 0.25, 0.5, 1, 2]),
  memoryMiB: pick([64, 128, 256, 512, 1024]),
  priority: pick([0, 0, 0, 10, 100]),
  nodeSelector: rand() < 0.2 ? { zone: pick(['a', 'b', 'c']) } : {},
}));

const time = (f: () => void): number => {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
};

console.log(`# scheduler micro-benchmark: ${P} pods over ${N} nodes, ${ROUNDS} rounds (median ms)`);
console.log(`# ${machineSummary()}`);

// packed: the same pods on a tenth of the cores, so nodes fill up and many pods stay Pending (the explain path).
const packed = nodes.map((n) => ({ ...n, capacity: { cpu: n.capacity.cpu / 10, memoryMiB: n.capacity.memoryMiB / 10 }, allocated: { cpu: 0, memoryMiB: 0 } }));
for (const [label, cluster] of [['sparse', nodes], ['packed', packed]] as const) {
  for (const policy of POLICIES) {
    let bound = 0;
    const ms = summarize(
      Array.from({ length: ROUNDS }, () =>
        time(() => {
          bound = scheduleBatch(pods, cluster, { policy, seed: 'bench' }).filter((d) => d.kind === 'bound').length;
        }),
      ),
    ).median;
    console.log(`scheduleBatch ${label} ${policy.padEnd(9)} ${ms.toFixed(0).padStart(6)} ms  ${((P / ms) * 1000).toFixed(0).padStart(7)} pods/s  (${bound} bound)`);
  }
}

const one = summarize(Array.from({ length: 200 }, (_, i) => time(() => scheduleOne(pods[i]!, nodes, { policy: 'spread', seed: 'bench' })))).median;
console.log(`scheduleOne   spread    ${one.toFixed(2).padStart(6)} ms per pod (compiles the snapshot every call)`);

// Preemption on a full cluster: every node holds four low-priority pods that fill it.
const full = nodes.map((n) => ({ ...n, allocated: { ...n.capacity } }));
const running: RunningPod[] = full.flatMap((n) =>
  [0, 1, 2, 3].map((k) => ({ id: `${n.id}-r${k}`, nodeId: n.id, cpu: n.capacity.cpu / 4, memoryMiB: n.capacity.memoryMiB / 4, priority: k })),
);
const pre = summarize(
  Array.from({ length: 20 }, (_, i) => time(() => findPreemption({ ...pods[i]!, priority: 1000, cpu: 3 }, full, running, { seed: 'bench' }))),
).median;
console.log(`findPreemption           ${pre.toFixed(2).padStart(6)} ms per pod (${running.length} running pods)`);
