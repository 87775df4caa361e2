import t from 'tap';
import fc from 'fast-check';
import {
  ClusterSnapshot,
  POLICIES,
  comparePods,
  findPreemption,
  fits,
  scheduleBatch,
  scheduleOne,
  type Decision,
  type NodeInfo,
  type Policy,
  type PodRequest,
} from '@berth/scheduler';
import { SEED, boundTo, cores, node, pod, running, sized } from '../helpers/scheduler-fixtures.js';

// Batches as a whole: replayable, equal to one full scan per pod (the shape indexes are only a
// speed-up), and never overcommitting, on random clusters checked against an integer model.

/**
 * Reference for scheduleBatch: a fresh snapshot per pod (always a full scan),
 * the allocation grown in cores as the leader would. Each decision is also
 * checked against `fits`, the filter list asked one node at a time: a bound
 * node passes it, and an unschedulable pod's reason counts are its verdicts.
 */
function oneByOne(pods: PodRequest[], nodes: NodeInfo[], opts: { policy: Policy; seed: string }): Decision[] {
  const current = nodes.map((n) => ({ ...n, allocated: { ...n.allocated } }));
  return [...pods].sort(comparePods).map((p) => {
    const d = scheduleOne(p, current, opts);
    if (d.kind === 'unschedulable' && Object.keys(d.reasons).length > 0) {
      const counts: Record<string, number> = {};
      for (const n of current) {
        const reason = fits(p, n)!;
        counts[reason] = (counts[reason] ?? 0) + 1;
      }
      if (JSON.stringify(Object.entries(counts).sort()) !== JSON.stringify(Object.entries(d.reasons).sort())) {
        throw new Error(`${p.id}: the snapshot counted ${JSON.stringify(d.reasons)}, fits() ${JSON.stringify(counts)}`);
      }
    }
    if (d.kind === 'bound') {
      if (fits(p, current.find((c) => c.id === d.nodeId)!) !== undefined) throw new Error(`${p.id} bound to ${d.nodeId}, which fits() rejects`);
      const n = current.find((c) => c.id === d.nodeId)!;
      n.allocated.cpu += p.cpu;
      n.allocated.memoryMiB += p.memoryMiB;
    }
    return d;
  });
}

t.test('determinism: same seed, same decisions, whatever the input order', async (t) => {
  const nodes = Array.from({ length: 300 }, (_, i) => sized(`n${i}`, 2 + (i % 5), (i % 3) * 0.5, 2048 + 512 * (i % 4), 256 * (i % 3)));
  const pods = Array.from({ length: 400 }, (_, i) => pod(`p${i}`, { cpu: 0.25 * (1 + (i % 4)), memoryMiB: 128 * (i % 5), priority: i % 3 }));
  for (const policy of POLICIES) {
    const a = scheduleBatch(pods, nodes, { policy, seed: SEED });
    t.same(scheduleBatch(pods, nodes, { policy, seed: SEED }), a, `${policy}: same seed, same result`);
    t.same(scheduleBatch([...pods].reverse(), [...nodes].reverse(), { policy, seed: SEED }), a, `${policy}: reversed inputs, same result`);
    t.same(a, oneByOne(pods, nodes, { policy, seed: SEED }), `${policy}: shape indexes agree with a full scan per pod`);
    // A snapshot allowed almost no index memory keeps 4 shapes and evicts the rest: same decisions.
    const tight = new ClusterSnapshot(nodes, SEED, { indexBudgetBytes: 0 });
    t.same([...pods].sort(comparePods).map((p) => tight.schedule(p, policy)), a, `${policy}: evicting shape indexes changes nothing`);
  }
  t.same(
    [pod('b', { priority: Number.NaN }), pod('a', { priority: -1 }), pod('c', { priority: 0 })].sort(comparePods).map((p) => p.id),
    ['p-b', 'p-c', 'p-a'],
    'a NaN priority counts as 0',
  );
  t.equal(comparePods(pod('a'), pod('a')), 0);
  // A corrupt snapshot with a repeated node id still answers, deterministically: the first copy wins a full tie.
  const twins = [sized('a', 4, 1), sized('a', 4, 1)];
  for (const policy of POLICIES) t.equal(boundTo(scheduleOne(pod('p'), twins, { policy, seed: SEED })), 'id-a');
  t.same(findPreemption(pod('p', { priority: 1 }), [sized('a', 1, 1), sized('a', 1, 1)], [running('r', 'a', 1, 0)], { seed: SEED }), { nodeId: 'id-a', victims: ['r'] });
});

// ---- Properties: random clusters and batches, checked against an integer model kept by the test itself.

interface Gen {
  nodes: {
    capM: number;
    allocParts: number[];
    capMiB: number;
    allocMiB: number;
    status: NodeInfo['status'];
    runtimeReady: boolean;
    cordoned: boolean;
    draining: boolean;
    deregistered: boolean;
    zone: string;
  }[];
  pods: { cpuM: number; mem: number; priority: number; zone: string | null }[];
  policy: Policy;
  seed: string;
}

const nodeArb: fc.Arbitrary<Gen['nodes'][number]> = fc.record({
  capM: fc.integer({ min: 0, max: 8000 }),
  allocParts: fc.array(fc.integer({ min: 0, max: 1500 }), { maxLength: 6 }),
  capMiB: fc.integer({ min: 0, max: 8192 }),
  allocMiB: fc.integer({ min: 0, max: 8192 }),
  status: fc.constantFrom<NodeInfo['status']>('Ready', 'Ready', 'Ready', 'NotReady', 'Dead'),
  runtimeReady: fc.constantFrom(true, true, true, false),
  cordoned: fc.boolean(),
  draining: fc.constantFrom(false, false, false, true),
  deregistered: fc.constantFrom(false, false, false, true),
  zone: fc.constantFrom('a', 'b'),
});

const genArb: fc.Arbitrary<Gen> = fc.record({
  nodes: fc.array(nodeArb, { maxLength: 12 }),
  pods: fc.array(
    fc.record({
      cpuM: fc.integer({ min: 0, max: 3000 }),
      mem: fc.integer({ min: 0, max: 2048 }),
      priority: fc.integer({ min: 0, max: 3 }),
      zone: fc.constantFrom(null, null, 'a', 'c'),
    }),
    { maxLength: 30 },
  ),
  policy: fc.constantFrom(...POLICIES),
  seed: fc.string({ maxLength: 8 }),
});


function build(g: Gen) {
  const nodes: NodeInfo[] = g.nodes.map((n, i) =>
    node(`n${i}`, {
      labels: { zone: n.zone },
      status: n.status,
      runtimeReady: n.runtimeReady,
      cordoned: n.cordoned,
      draining: n.draining,
      deregistered: n.deregistered,
      capacity: { cpu: n.capM / 1000, memoryMiB: n.capMiB },
      allocated: { cpu: cores(n.allocParts), memoryMiB: n.allocMiB },
    }),
  );
  const pods: PodRequest[] = g.pods.map((p, i) =>
    pod(`p${i}`, { cpu: p.cpuM / 1000, memoryMiB: p.mem, priority: p.priority, nodeSelector: p.zone ? { zone: p.zone } : {} }),
  );
  return { nodes, pods };
}

t.test('property: a batch never overcommits, never double-binds, never binds an infeasible node, and leaves Pending only what fits nowhere', async (t) => {
  fc.assert(
    fc.property(genArb, (g) => {
      const { nodes, pods } = build(g);
      const decisions = scheduleBatch(pods, nodes, { policy: g.policy, seed: g.seed });
      const ids = decisions.map((d) => d.podId);
      if (new Set(ids).size !== ids.length || ids.length !== pods.length) return false;
      // Integer model: millicores and MiB used per node.
      const usedM = g.nodes.map((n) => n.allocParts.reduce((s, m) => s + m, 0));
      const usedMiB = g.nodes.map((n) => n.allocMiB);
      const eligible = (i: number, p: Gen['pods'][number]) => {
        const n = g.nodes[i]!;
        return n.status === 'Ready' && n.runtimeReady && !n.cordoned && !n.draining && !n.deregistered && (p.zone === null || p.zone === n.zone);
      };
      const fitsNow = (i: number, p: Gen['pods'][number]) => eligible(i, p) && usedM[i]! + p.cpuM <= g.nodes[i]!.capM && usedMiB[i]! + p.mem <= g.nodes[i]!.capMiB;
      for (const d of decisions) {
        const p = g.pods[Number(d.podId.slice(3))]!;
        if (d.kind === 'bound') {
          const i = Number(d.nodeId.slice(4));
          if (!fitsNow(i, p)) return false; // infeasible or overcommitting
          usedM[i]! += p.cpuM;
          usedMiB[i]! += p.mem;
        } else if (Object.values(d.reasons).reduce((s, c) => s + c, 0) !== nodes.length) return false;
      }
      // Capacity only shrinks during a batch, so a pod left Pending must fit nowhere at the end either.
      for (const d of decisions) {
        if (d.kind !== 'unschedulable') continue;
        const p = g.pods[Number(d.podId.slice(3))]!;
        if (g.nodes.some((_, i) => fitsNow(i, p))) return false;
      }
      // Replay: the same snapshot in another order gives the same decisions.
      const again = scheduleBatch([...pods].reverse(), [...nodes].reverse(), { policy: g.policy, seed: g.seed });
      return JSON.stringify(again) === JSON.stringify(decisions);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random clusters');
});

t.test('property: a batch picks exactly what one full scan per pod picks, and explains as fits() does (shape indexes are only a speed-up)', async (t) => {
  const shapes = [
    { cpuM: 500, mem: 256, zone: null },
    { cpuM: 1000, mem: 0, zone: null },
    { cpuM: 250, mem: 1024, zone: 'a' },
  ];
  const arb = fc.record({
    nodes: fc.array(nodeArb, { minLength: 1, maxLength: 40 }),
    pods: fc.array(fc.record({ shape: fc.integer({ min: 0, max: shapes.length - 1 }), priority: fc.integer({ min: 0, max: 2 }) }), { minLength: 10, maxLength: 80 }),
    policy: fc.constantFrom(...POLICIES),
    seed: fc.string({ maxLength: 4 }),
  });
  fc.assert(
    fc.property(arb, (a) => {
      const g: Gen = { nodes: a.nodes, pods: a.pods.map((p) => ({ ...shapes[p.shape]!, priority: p.priority })), policy: a.policy, seed: a.seed };
      const { nodes, pods } = build(g);
      const opts = { policy: g.policy, seed: g.seed };
      return JSON.stringify(scheduleBatch(pods, nodes, opts)) === JSON.stringify(oneByOne(pods, nodes, opts));
    }),
    { numRuns: 300 },
  );
  t.pass('300 random batches of few shapes');
});
