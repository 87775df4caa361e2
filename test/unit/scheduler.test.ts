import t from 'tap';
import {
  ClusterSnapshot,
  CpuFitFilter,
  FILTERS,
  MemoryFitFilter,
  NodeReadyFilter,
  NodeSelectorFilter,
  POLICIES,
  REASON_CORDONED,
  REASON_DEAD,
  REASON_DEREGISTERED,
  REASON_DRAINING,
  REASON_INSUFFICIENT_CPU,
  REASON_INSUFFICIENT_MEMORY,
  REASON_NOT_READY,
  REASON_RUNTIME_NOT_READY,
  REASON_SELECTOR,
  binpackScore,
  capacityMillicores,
  filterStages,
  findPreemption,
  fits,
  formatUnschedulable,
  requestMillicores,
  reservationFor,
  reservedTotal,
  scheduleBatch,
  scheduleOne,
  spreadScore,
  tieBreakHash,
  type Filter,
  type NodeInfo,
  type Policy,
  type PodRequest,
} from '@berth/scheduler';
import { SEED, boundTo, node, pod, running, sized } from '../helpers/scheduler-fixtures.js';

// The pure scheduler, case by case: filters, policies, scores, ties, reasons, batches.
// Preemption is in scheduler-preemption.test.ts, the random properties in scheduler-batch.test.ts.

t.test('filters: each rejects with its reason constant', async (t) => {
  const cases: { name: string; pod: PodRequest; node: NodeInfo; want: string | undefined }[] = [
    { name: 'a Ready empty node fits', pod: pod('p'), node: node('n'), want: undefined },
    { name: 'NotReady', pod: pod('p'), node: node('n', { status: 'NotReady' }), want: REASON_NOT_READY },
    { name: 'Dead', pod: pod('p'), node: node('n', { status: 'Dead' }), want: REASON_DEAD },
    { name: 'runtime away', pod: pod('p'), node: node('n', { runtimeReady: false }), want: REASON_RUNTIME_NOT_READY },
    { name: 'NotReady is told before the runtime', pod: pod('p'), node: node('n', { status: 'NotReady', runtimeReady: false }), want: REASON_NOT_READY },
    { name: 'the runtime is told before a cordon', pod: pod('p'), node: node('n', { runtimeReady: false, cordoned: true }), want: REASON_RUNTIME_NOT_READY },
    { name: 'cordoned', pod: pod('p'), node: node('n', { cordoned: true }), want: REASON_CORDONED },
    { name: 'draining', pod: pod('p'), node: node('n', { draining: true, cordoned: true }), want: REASON_DRAINING },
    { name: 'deregistered', pod: pod('p'), node: node('n', { deregistered: true, draining: true }), want: REASON_DEREGISTERED },
    { name: 'selector key missing', pod: pod('p', { nodeSelector: { disk: 'ssd' } }), node: node('n'), want: REASON_SELECTOR },
    { name: 'selector value differs', pod: pod('p', { nodeSelector: { disk: 'ssd' } }), node: node('n', { labels: { disk: 'hdd' } }), want: REASON_SELECTOR },
    { name: 'selector is a subset of the labels', pod: pod('p', { nodeSelector: { disk: 'ssd' } }), node: node('n', { labels: { disk: 'ssd', zone: 'a' } }), want: undefined },
    { name: 'inherited keys are not labels', pod: pod('p', { nodeSelector: { toString: 'x' } }), node: node('n'), want: REASON_SELECTOR },
    { name: 'cpu short by a millicore', pod: pod('p', { cpu: 1.001 }), node: sized('n', 4, 3), want: REASON_INSUFFICIENT_CPU },
    { name: 'cpu exactly what is free', pod: pod('p', { cpu: 1 }), node: sized('n', 4, 3), want: undefined },
    { name: 'memory short', pod: pod('p', { memoryMiB: 1025 }), node: sized('n', 4, 0, 4096, 3072), want: REASON_INSUFFICIENT_MEMORY },
    { name: 'memory exactly what is free', pod: pod('p', { memoryMiB: 1024 }), node: sized('n', 4, 0, 4096, 3072), want: undefined },
    { name: '0.1 + 0.2 allocated leaves exactly 0.7 of 1 core', pod: pod('p', { cpu: 0.7 }), node: sized('n', 1, 0.1 + 0.2), want: undefined },
    { name: '0.71 does not fit in 0.7', pod: pod('p', { cpu: 0.71 }), node: sized('n', 1, 0.1 + 0.2), want: REASON_INSUFFICIENT_CPU },
    { name: '0.3 fits in 1 - 0.7 (0.30000000000000004 free in floats)', pod: pod('p', { cpu: 0.1 + 0.2 }), node: sized('n', 1, 0.7), want: undefined },
    { name: 'a negative request never fits', pod: pod('p', { cpu: -1 }), node: node('n'), want: REASON_INSUFFICIENT_CPU },
    { name: 'a NaN capacity has no room', pod: pod('p', { cpu: 0 }), node: sized('n', Number.NaN, 0), want: REASON_INSUFFICIENT_CPU },
    { name: 'state is checked before resources', pod: pod('p', { cpu: 99 }), node: node('n', { status: 'NotReady', cordoned: true }), want: REASON_NOT_READY },
    { name: 'selector is checked before resources', pod: pod('p', { cpu: 99, nodeSelector: { a: 'b' } }), node: node('n'), want: REASON_SELECTOR },
  ];
  for (const c of cases) t.equal(fits(c.pod, c.node), c.want, c.name);
  t.same(
    FILTERS.map((f) => f.name),
    ['NodeReady', 'RuntimeReady', 'NodeSchedulable', 'NodeSelector', 'CpuFit', 'MemoryFit'],
    'filters run in the documented order',
  );
  t.equal(requestMillicores(0.0001), 1, 'a sub-millicore request costs a whole millicore');
  t.equal(capacityMillicores(0.0019), 1, 'a sub-millicore capacity is not credited');
  t.equal(requestMillicores(0.1 + 0.2), 300, 'float noise is not rounded up into an extra millicore');
});

t.test('policies: which node each picks, and why not the others', async (t) => {
  // a: 1 core free of 4, b: 6 of 8, c: 2 of 2; d and e are not schedulable.
  const cluster = [sized('a', 4, 3), sized('b', 8, 2), sized('c', 2, 0), node('d', { status: 'NotReady' }), node('e', { cordoned: true })];
  const why = { d: REASON_NOT_READY, e: REASON_CORDONED };
  const cases: { name: string; policy: Policy; pod: PodRequest; nodes: NodeInfo[]; want: string; score?: number; why?: Record<string, string> }[] = [
    { name: 'first-fit: first by name', policy: 'first-fit', pod: pod('p'), nodes: cluster, want: 'a', score: 100, why },
    { name: 'best-fit: tightest (0 cores left)', policy: 'best-fit', pod: pod('p'), nodes: cluster, want: 'a', score: 100, why },
    { name: 'worst-fit: roomiest (5 cores left)', policy: 'worst-fit', pod: pod('p'), nodes: cluster, want: 'b', score: 83.33, why },
    { name: 'spread: least utilised after placement (3/8)', policy: 'spread', pod: pod('p'), nodes: cluster, want: 'b', score: 91.52, why },
    { name: 'binpack: most utilised after placement (4/4)', policy: 'binpack', pod: pod('p'), nodes: cluster, want: 'a', why },
    { name: 'first-fit skips a node that is too small', policy: 'first-fit', pod: pod('p', { cpu: 1.5 }), nodes: cluster, want: 'b', why: { a: REASON_INSUFFICIENT_CPU } },
    { name: 'best-fit: 0.5 left on c beats 4.5 on b', policy: 'best-fit', pod: pod('p', { cpu: 1.5 }), nodes: cluster, want: 'c', score: 66.67 },
    { name: 'worst-fit: 7 cores left on x beats 1 on y', policy: 'worst-fit', pod: pod('p'), nodes: [sized('x', 16, 8), sized('y', 2, 0)], want: 'x' },
    { name: 'spread is relative: 1/2 on y beats 9/16 on x', policy: 'spread', pod: pod('p'), nodes: [sized('x', 16, 8), sized('y', 2, 0)], want: 'y' },
    { name: 'best-fit is absolute: 1 core left on y beats 2 on x', policy: 'best-fit', pod: pod('p'), nodes: [sized('x', 16, 13), sized('y', 2, 0)], want: 'y' },
    { name: 'binpack is relative: 14/16 on x beats 1/2 on y', policy: 'binpack', pod: pod('p'), nodes: [sized('x', 16, 13), sized('y', 2, 0)], want: 'x' },
    { name: 'spread counts memory', policy: 'spread', pod: pod('p'), nodes: [sized('x', 4, 0, 4096, 3000), sized('y', 4, 0)], want: 'y' },
    { name: 'binpack counts memory', policy: 'binpack', pod: pod('p'), nodes: [sized('x', 4, 0, 4096, 3000), sized('y', 4, 0)], want: 'x' },
    { name: 'best-fit breaks a cpu tie on memory left', policy: 'best-fit', pod: pod('p'), nodes: [sized('x', 4, 0, 4096, 3000), sized('y', 4, 0)], want: 'x' },
    { name: 'worst-fit breaks a cpu tie on memory left', policy: 'worst-fit', pod: pod('p'), nodes: [sized('x', 4, 0, 4096, 3000), sized('y', 4, 0)], want: 'y' },
    { name: 'first-fit orders by name, not input order', policy: 'first-fit', pod: pod('p'), nodes: [node('zeta'), node('alpha')], want: 'alpha' },
    {
      name: 'first-fit orders equal names by id',
      policy: 'first-fit',
      pod: pod('p'),
      nodes: [node('same', { id: 'id-b' }), node('same', { id: 'id-a' })],
      want: 'a',
    },
    {
      name: 'nodeSelector narrows the candidates',
      policy: 'worst-fit',
      pod: pod('p', { nodeSelector: { disk: 'ssd' } }),
      nodes: [node('a', { labels: { disk: 'hdd' }, capacity: { cpu: 64, memoryMiB: 4096 } }), node('b', { labels: { disk: 'ssd', zone: '1' } })],
      want: 'b',
      why: { a: REASON_SELECTOR },
    },
    { name: 'a pod policy overrides the cluster policy', policy: 'best-fit', pod: pod('p', { policy: 'worst-fit' }), nodes: cluster, want: 'b' },
    { name: 'exact decimal arithmetic: 0.7 into 1 - (0.1 + 0.2)', policy: 'best-fit', pod: pod('p', { cpu: 0.7 }), nodes: [sized('a', 1, 0.1 + 0.2), sized('b', 4, 0)], want: 'a', score: 100 },
    { name: 'zero capacity memory counts as full for spread', policy: 'spread', pod: pod('p', { memoryMiB: 0 }), nodes: [sized('a', 4, 0, 0), sized('b', 4, 0)], want: 'b' },
  ];
  for (const c of cases) {
    const d = scheduleOne(c.pod, c.nodes, { policy: c.policy, seed: SEED });
    t.equal(boundTo(d), `id-${c.want}`, c.name);
    if (c.score !== undefined && d.kind === 'bound') t.equal(d.score, c.score, `${c.name}: score`);
    for (const [name, reason] of Object.entries(c.why ?? {})) {
      t.equal(fits(c.pod, c.nodes.find((n) => n.name === name)!), reason, `${c.name}: ${name} rejected for ${reason}`);
    }
  }
});

t.test('scores: the documented formulas, bounded 0-100', async (t) => {
  const one = (policy: Policy) => scheduleOne(pod('p', { memoryMiB: 1024 }), [node('a')], { policy, seed: SEED });
  // One core and 1 GiB of 4 and 4 GiB: utilisation 0.25 in both dimensions, 3 cores left.
  t.match(one('spread'), { kind: 'bound', score: 91.35 }, 'spread = 100 * (20 - 2 * 10^0.25) / 18');
  t.match(one('binpack'), { kind: 'bound', score: 48.63 }, 'binpack = 100 * (20 - 2 * 10^0.75) / 18');
  t.match(one('best-fit'), { kind: 'bound', score: 25 }, 'best-fit = 100 * 1000 / (1000 + 3000)');
  t.match(one('worst-fit'), { kind: 'bound', score: 75 }, 'worst-fit = 100 * 3000 / (1000 + 3000)');
  t.match(one('first-fit'), { kind: 'bound', score: 100 });
  t.equal(spreadScore(0, 0), 100, 'spread: empty node');
  t.equal(spreadScore(1, 1), 0, 'spread: full node');
  t.equal(binpackScore(1, 1), 100, 'binpack: full node');
  t.equal(binpackScore(0, 0), 0, 'binpack: empty node');
  t.ok(spreadScore(0.5, 0.5) > spreadScore(0.9, 0.1), 'spread prefers balanced load at the same total');
  t.ok(binpackScore(0.5, 0.5) > binpackScore(0.9, 0.1), 'binpack prefers balanced fills at the same total');
});

t.test('ties go to the seeded hash, so a placement can be replayed', async (t) => {
  const twins = ['n1', 'n2', 'n3', 'n4'].map((n) => node(n));
  const winners = new Set<string>();
  for (let i = 0; i < 32; i++) {
    const seed = `eval-${i}`;
    const expected = twins.map((n) => n.id).sort((a, b) => tieBreakHash(seed, a) - tieBreakHash(seed, b))[0];
    for (const policy of ['best-fit', 'worst-fit', 'spread', 'binpack'] as const) {
      const d = scheduleOne(pod('p'), twins, { policy, seed });
      if (boundTo(d) !== expected) t.fail(`${policy} under ${seed} picked ${boundTo(d)}, not ${expected}`);
      winners.add(boundTo(d));
    }
    t.same(scheduleOne(pod('p'), twins, { policy: 'spread', seed }), scheduleOne(pod('p'), [...twins].reverse(), { policy: 'spread', seed }));
  }
  t.ok(winners.size > 1, 'different seeds spread ties over different nodes');
  t.equal(tieBreakHash('s', 'a'), tieBreakHash('s', 'a'));
  t.not(tieBreakHash('s', 'a'), tieBreakHash('t', 'a'));
});

t.test('unschedulable: counts per reason and the operator message', async (t) => {
  const full = (name: string) => sized(name, 4, 4);
  const cases: { name: string; pod: PodRequest; nodes: NodeInfo[]; want: string; reasons?: Record<string, number> }[] = [
    {
      name: 'the example the API documents',
      pod: pod('p'),
      nodes: [full('a'), node('b', { status: 'NotReady' }), full('c'), node('d', { status: 'NotReady' }), full('e')],
      want: '0/5 nodes: 3 insufficient cpu, 2 NotReady',
      reasons: { [REASON_INSUFFICIENT_CPU]: 3, [REASON_NOT_READY]: 2 },
    },
    {
      name: 'equal counts sort by reason',
      pod: pod('p', { nodeSelector: { gpu: 'yes' } }),
      nodes: [node('a', { cordoned: true }), node('b', { draining: true }), node('c', { status: 'Dead' }), node('d', { deregistered: true }), node('e'), node('f')],
      want: '0/6 nodes: 2 node selector mismatch, 1 Dead, 1 cordoned, 1 deregistered, 1 draining',
    },
    { name: 'memory', pod: pod('p', { memoryMiB: 5000 }), nodes: [node('a')], want: '0/1 nodes: 1 insufficient memory' },
    {
      name: 'a node whose runtime is away has its own reason',
      pod: pod('p'),
      nodes: [node('a', { runtimeReady: false }), full('b'), full('c')],
      want: '0/3 nodes: 2 insufficient cpu, 1 runtime not ready',
      reasons: { [REASON_INSUFFICIENT_CPU]: 2, [REASON_RUNTIME_NOT_READY]: 1 },
    },
    {
      name: 'a node counts under its first failing filter only',
      pod: pod('p', { cpu: 99, memoryMiB: 99999, nodeSelector: { x: 'y' } }),
      nodes: [node('a', { status: 'NotReady', cordoned: true }), node('b')],
      want: '0/2 nodes: 1 NotReady, 1 node selector mismatch',
    },
    { name: 'no nodes', pod: pod('p'), nodes: [], want: '0/0 nodes: no nodes in the cluster', reasons: {} },
    { name: 'NaN cpu', pod: pod('p', { cpu: Number.NaN }), nodes: [node('a')], want: 'invalid request: cpu must be a finite number >= 0, got NaN', reasons: {} },
    { name: 'negative memory', pod: pod('p', { memoryMiB: -1 }), nodes: [node('a')], want: 'invalid request: memoryMiB must be a finite number >= 0, got -1' },
    { name: 'unknown policy', pod: pod('p', { policy: 'random' as Policy }), nodes: [node('a')], want: 'invalid request: unknown policy random' },
  ];
  for (const c of cases) {
    const d = scheduleOne(c.pod, c.nodes, { policy: 'spread', seed: SEED });
    if (d.kind !== 'unschedulable') {
      t.fail(`${c.name}: bound to ${d.nodeId}`);
      continue;
    }
    t.equal(d.message, c.want, c.name);
    t.equal(d.podId, c.pod.id);
    if (c.reasons) t.same(d.reasons, c.reasons, `${c.name}: reasons`);
  }
  t.equal(formatUnschedulable(3, { b: 1, a: 1, c: 1 }), '0/3 nodes: 1 a, 1 b, 1 c');
});

t.test('the snapshot and preemption run the filter list they are given', async (t) => {
  // 1. A node-stage filter added to the list rejects in the batch path and is counted under its own reason.
  const odd: Filter = { name: 'NoOddNames', stage: 'node', filter: (_pod, n) => (n.name.endsWith('1') ? 'odd name' : undefined) };
  const withOdd = [...FILTERS.slice(0, 3), odd, ...FILTERS.slice(3)];
  const nodes = [node('n1'), sized('n2', 4, 4), node('n3', { cordoned: true })];
  const snap = new ClusterSnapshot(nodes, SEED, { filters: withOdd });
  t.same(snap.schedule(pod('p'), 'spread'), {
    kind: 'unschedulable',
    podId: 'p-p',
    reasons: { cordoned: 1, [REASON_INSUFFICIENT_CPU]: 1, 'odd name': 1 },
    message: '0/3 nodes: 1 cordoned, 1 insufficient cpu, 1 odd name',
  });
  t.equal(boundTo(new ClusterSnapshot(nodes, SEED).schedule(pod('p'), 'spread')), 'id-n1', 'the default list lets n1 through');

  // 2. A selector-stage filter sees the pod's selector; its verdict is cached per selector, not reused across them.
  const tainted: Filter = {
    name: 'Taint',
    stage: 'selector',
    filter: (p, n) => (n.labels.taint !== undefined && p.nodeSelector.tolerate !== n.labels.taint ? 'tainted' : undefined),
  };
  const taintList = [...FILTERS.slice(0, 4), tainted, CpuFitFilter, MemoryFitFilter];
  const taintNodes = [node('t', { labels: { taint: 'gpu' } }), sized('u', 4, 4)];
  const tsnap = new ClusterSnapshot(taintNodes, SEED, { filters: taintList });
  t.equal(tsnap.schedule(pod('a'), 'best-fit').kind, 'unschedulable');
  t.equal(boundTo(tsnap.schedule(pod('b', { nodeSelector: { tolerate: 'gpu' } }), 'best-fit')), 'unschedulable: 0/2 nodes: 2 node selector mismatch');
  t.equal(boundTo(tsnap.schedule(pod('c', { nodeSelector: {} }), 'best-fit')), 'unschedulable: 0/2 nodes: 1 insufficient cpu, 1 tainted');

  // 3. A filter left out no longer rejects; preemption honours the list too.
  const noReady = FILTERS.filter((f) => f !== NodeReadyFilter);
  const down = [node('d', { status: 'Dead' })];
  t.equal(boundTo(new ClusterSnapshot(down, SEED, { filters: noReady }).schedule(pod('p'), 'first-fit')), 'id-d');
  const fullDead = [node('d', { status: 'Dead', allocated: { cpu: 4, memoryMiB: 0 } })];
  const victim = [running('v', 'd', 4, 0)];
  t.equal(findPreemption(pod('p', { priority: 1 }), fullDead, victim, { seed: SEED }), undefined, 'a Dead node is no target');
  t.same(findPreemption(pod('p', { priority: 1 }), fullDead, victim, { seed: SEED, filters: noReady }), { nodeId: 'id-d', victims: ['v'] });
  t.equal(findPreemption(pod('p', { priority: 1 }), [{ ...fullDead[0]!, status: 'Ready', runtimeReady: false }], victim, { seed: SEED }), undefined, 'nor one whose runtime is away');

  // 4. The list's rules: stages in order, exactly one cpu and one memory fit.
  t.throws(() => filterStages([CpuFitFilter, NodeReadyFilter, MemoryFitFilter]), /NodeReady \(node\) comes after a resource filter/);
  t.throws(() => filterStages([NodeSelectorFilter, NodeReadyFilter, CpuFitFilter, MemoryFitFilter]), /comes after a selector filter/);
  t.throws(() => new ClusterSnapshot([], SEED, { filters: [NodeReadyFilter, MemoryFitFilter] }), /exactly one cpu fit, found 0/);
  t.throws(() => filterStages([CpuFitFilter, CpuFitFilter, MemoryFitFilter]), /exactly one cpu fit, found 2/);
});

t.test('reservations: one entry per pod, summed in one place', async (t) => {
  t.same(reservationFor({ cpu: 0.1 + 0.2, memoryMiB: 64 }), { cpuMillis: 300, memoryMiB: 64 }, 'float noise does not cost a millicore');
  t.same(reservationFor({ cpu: 0.0001, memoryMiB: 0.5 }), { cpuMillis: 1, memoryMiB: 1 }, 'requests round up');
  t.same(reservedTotal(undefined), { cpu: 0, memoryMiB: 0 }, 'no record reserves nothing');
  t.same(reservedTotal({ pods: { a: { cpuMillis: 100, memoryMiB: 64 }, b: { cpuMillis: 250, memoryMiB: 128 } } }), { cpu: 0.35, memoryMiB: 192 });
  // The scheduler reads the sum back exactly: three tenths reserved leave seven tenths of a core.
  const n = node('n', { capacity: { cpu: 1, memoryMiB: 1024 }, allocated: reservedTotal({ pods: { a: { cpuMillis: 100, memoryMiB: 0 }, b: { cpuMillis: 200, memoryMiB: 0 } } }) });
  t.equal(fits(pod('p', { cpu: 0.7 }), n), undefined);
  t.equal(fits(pod('p', { cpu: 0.701 }), n), REASON_INSUFFICIENT_CPU);
});

t.test('batches: priority order, no overcommit, inputs untouched', async (t) => {
  t.test('higher priority takes the capacity first', async (t) => {
    const pods = [pod('low', { cpu: 2, priority: 0 }), pod('high', { cpu: 2, priority: 10 })];
    const got = scheduleBatch(pods, [sized('n', 2, 0)], { policy: 'first-fit', seed: SEED });
    t.same(got, [
      { kind: 'bound', podId: 'p-high', nodeId: 'id-n', score: 100 },
      { kind: 'unschedulable', podId: 'p-low', reasons: { [REASON_INSUFFICIENT_CPU]: 1 }, message: '0/1 nodes: 1 insufficient cpu' },
    ]);
  });

  t.test('equal priorities go by id', async (t) => {
    const pods = [pod('c'), pod('a'), pod('b', { priority: -1 }), pod('d', { priority: 1 })];
    const got = scheduleBatch(pods, [node('n')], { policy: 'spread', seed: SEED });
    t.same(
      got.map((d) => d.podId),
      ['p-d', 'p-a', 'p-c', 'p-b'],
    );
  });

  t.test('each binding shrinks the working copy, exactly', async (t) => {
    const pods = ['a', 'b', 'c', 'd'].map((n) => pod(n, { cpu: 0.1, memoryMiB: 1 }));
    const got = scheduleBatch(pods, [sized('n', 0.3, 0)], { policy: 'binpack', seed: SEED });
    t.same(
      got.map((d) => d.kind),
      ['bound', 'bound', 'bound', 'unschedulable'],
      'three tenths of a core fit in 0.3, the fourth does not',
    );
    const spread = scheduleBatch(
      ['a', 'b', 'c', 'd'].map((n) => pod(n)),
      [node('x'), node('y')],
      { policy: 'spread', seed: SEED },
    );
    const per = new Map<string, number>();
    for (const d of spread) if (d.kind === 'bound') per.set(d.nodeId, (per.get(d.nodeId) ?? 0) + 1);
    t.same([...per.values()], [2, 2], 'spread alternates as nodes fill');
  });

  t.test('a repeated pod id is scheduled once, at its highest priority', async (t) => {
    const got = scheduleBatch([pod('a', { priority: 1 }), pod('a', { priority: 5, cpu: 2 })], [node('n')], { policy: 'first-fit', seed: SEED });
    t.equal(got.length, 1);
    const snap = new ClusterSnapshot([node('n')], SEED);
    snap.schedule(pod('a', { cpu: 2 }), 'first-fit');
    t.same(snap.remaining('id-n'), { cpuMillicores: 2000, memoryMiB: 3840 });
    t.equal(snap.remaining('nope'), undefined);
  });

  t.test('the snapshot objects are never written', async (t) => {
    const nodes = [sized('a', 2, 1), sized('b', 4, 0)];
    const pods = [pod('x'), pod('y'), pod('z', { nodeSelector: { k: 'v' } })];
    const before = structuredClone({ nodes, pods });
    const deepFreeze = (o: object) => {
      Object.freeze(o);
      for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) deepFreeze(v);
    };
    deepFreeze(nodes);
    deepFreeze(pods);
    for (const policy of POLICIES) scheduleBatch(pods, nodes, { policy, seed: SEED });
    t.same({ nodes, pods }, before);
  });
});
