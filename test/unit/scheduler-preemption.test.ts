import t from 'tap';
import fc from 'fast-check';
import { chooseVictims, findPreemption, tieBreakHash, type NodeInfo, type PodRequest, type RunningPod } from '@berth/scheduler';
import { SEED, cores, node, pod, running, sized } from '../helpers/scheduler-fixtures.js';

// Preemption: which lower-priority pods to evict, and where, as a table and as a property.

t.test('preemption', async (t) => {
  const full = (name: string, cpu = 4, o: Partial<NodeInfo> = {}) => node(name, { capacity: { cpu, memoryMiB: 4096 }, allocated: { cpu, memoryMiB: 0 }, ...o });
  const cases: { name: string; pod: PodRequest; nodes: NodeInfo[]; running: RunningPod[]; want: { nodeId: string; victims: string[] } | undefined }[] = [
    {
      name: 'only strictly lower priorities are victims',
      pod: pod('p', { priority: 10 }),
      nodes: [full('n1')],
      running: [running('low', 'n1', 1, 5), running('high', 'n1', 3, 20)],
      want: { nodeId: 'id-n1', victims: ['low'] },
    },
    { name: 'an equal priority is no victim', pod: pod('p', { priority: 10 }), nodes: [full('n1')], running: [running('eq', 'n1', 4, 10)], want: undefined },
    {
      name: 'one big victim rather than two small ones',
      pod: pod('p', { cpu: 2, priority: 1 }),
      nodes: [full('n1')],
      running: [running('a', 'n1', 1, 0), running('b', 'n1', 1, 0), running('c', 'n1', 2, 0)],
      want: { nodeId: 'id-n1', victims: ['c'] },
    },
    {
      name: 'a victim the pod can do without is reprieved',
      pod: pod('p', { cpu: 3, priority: 5 }),
      nodes: [full('n1')],
      running: [running('a', 'n1', 1, 0), running('b', 'n1', 3, 1)],
      want: { nodeId: 'id-n1', victims: ['b'] },
    },
    {
      name: 'lowest priorities first, even if that takes more victims',
      pod: pod('p', { cpu: 2, priority: 10 }),
      nodes: [full('n1', 2), full('n2', 2)],
      running: [running('x', 'n1', 2, 5), running('y1', 'n2', 1, 1), running('y2', 'n2', 1, 1)],
      want: { nodeId: 'id-n2', victims: ['y1', 'y2'] },
    },
    {
      name: 'fewest victims at equal priority',
      pod: pod('p', { cpu: 2, priority: 10 }),
      nodes: [full('n1', 2), full('n2', 2)],
      running: [running('a1', 'n1', 1, 1), running('a2', 'n1', 1, 1), running('b', 'n2', 2, 1)],
      want: { nodeId: 'id-n2', victims: ['b'] },
    },
    {
      name: 'lowest priority sum when counts and maxima tie',
      pod: pod('p', { cpu: 2, priority: 10 }),
      nodes: [full('n1', 2), full('n2', 2)],
      running: [running('a1', 'n1', 1, 3), running('a2', 'n1', 1, 3), running('b1', 'n2', 1, 0), running('b2', 'n2', 1, 3)],
      want: { nodeId: 'id-n2', victims: ['b1', 'b2'] },
    },
    {
      name: 'a node where the pod already fits needs no victims',
      pod: pod('p', { priority: 10 }),
      nodes: [full('n1'), node('n2')],
      running: [running('low', 'n1', 4, 0)],
      want: { nodeId: 'id-n2', victims: [] },
    },
    {
      name: 'other filters still apply',
      pod: pod('p', { priority: 10, nodeSelector: { zone: 'a' } }),
      nodes: [
        full('n1', 4, { cordoned: true, labels: { zone: 'a' } }),
        full('n2', 4, { status: 'NotReady', labels: { zone: 'a' } }),
        full('n3'),
        full('n4', 4, { labels: { zone: 'a' } }),
      ],
      running: [running('a', 'n1', 4, 0), running('b', 'n2', 4, 0), running('c', 'n3', 4, 0), running('d', 'n4', 4, 0)],
      want: { nodeId: 'id-n4', victims: ['d'] },
    },
    {
      name: 'none when evicting everything lower is not enough',
      pod: pod('p', { cpu: 3, priority: 10 }),
      nodes: [full('n1')],
      running: [running('low', 'n1', 2, 0), running('high', 'n1', 2, 50)],
      want: undefined,
    },
    { name: 'none when the pod is bigger than any node', pod: pod('p', { cpu: 8, priority: 10 }), nodes: [full('n1')], running: [running('a', 'n1', 4, 0)], want: undefined },
    {
      name: 'memory deficits pick memory holders',
      pod: pod('p', { cpu: 1, memoryMiB: 512, priority: 10 }),
      nodes: [node('n1', { capacity: { cpu: 4, memoryMiB: 1024 }, allocated: { cpu: 1, memoryMiB: 1024 } })],
      running: [running('cpu-only', 'n1', 1, 0, 0), running('mem', 'n1', 0, 0, 1024)],
      want: { nodeId: 'id-n1', victims: ['mem'] },
    },
    {
      name: 'decimal victims free exact millicores',
      pod: pod('p', { cpu: 0.3, priority: 10 }),
      nodes: [sized('n1', 1, 0.1 + 0.2 + 0.4 + 0.3)],
      running: [running('a', 'n1', 0.1, 0), running('b', 'n1', 0.2, 0), running('c', 'n1', 0.4, 5), running('d', 'n1', 0.3, 5)],
      want: { nodeId: 'id-n1', victims: ['b', 'a'] },
    },
    { name: 'an invalid pod has no preemption', pod: pod('p', { cpu: Number.NaN, priority: 10 }), nodes: [full('n1')], running: [running('a', 'n1', 4, 0)], want: undefined },
  ];
  for (const c of cases) t.same(findPreemption(c.pod, c.nodes, c.running, { seed: SEED }), c.want, c.name);

  const twins = [full('n1'), full('n2')];
  const victims = [running('a', 'n1', 4, 0), running('b', 'n2', 4, 0)];
  const expected = ['id-n1', 'id-n2'].sort((a, b) => tieBreakHash(SEED, a) - tieBreakHash(SEED, b))[0];
  t.equal(findPreemption(pod('p', { priority: 1 }), twins, victims, { seed: SEED })?.nodeId, expected, 'ties between nodes go to the seeded hash');
  t.equal(findPreemption(pod('p', { priority: 1 }), [...twins].reverse(), [...victims].reverse(), { seed: SEED })?.nodeId, expected, 'whatever the input order');
  t.same(chooseVictims([{ cpu: 1, mem: 0 }], 0, 0), [], 'no deficit, no victims');
});

t.test('property: preemption evicts only lower priorities, on one feasible node, and the pod then fits', async (t) => {
  const arb = fc.record({
    nodes: fc.array(
      fc.record({
        capM: fc.integer({ min: 0, max: 4000 }),
        capMiB: fc.integer({ min: 0, max: 4096 }),
        cordoned: fc.constantFrom(false, false, true),
        pods: fc.array(fc.record({ cpuM: fc.integer({ min: 0, max: 1500 }), mem: fc.integer({ min: 0, max: 1500 }), priority: fc.integer({ min: 0, max: 4 }) }), { maxLength: 5 }),
      }),
      { maxLength: 6 },
    ),
    pod: fc.record({ cpuM: fc.integer({ min: 0, max: 4000 }), mem: fc.integer({ min: 0, max: 4096 }), priority: fc.integer({ min: 0, max: 4 }) }),
    seed: fc.string({ maxLength: 4 }),
  });
  fc.assert(
    fc.property(arb, (g) => {
      const nodes = g.nodes.map((n, i) =>
        node(`n${i}`, {
          cordoned: n.cordoned,
          capacity: { cpu: n.capM / 1000, memoryMiB: n.capMiB },
          allocated: { cpu: cores(n.pods.map((p) => p.cpuM)), memoryMiB: n.pods.reduce((s, p) => s + p.mem, 0) },
        }),
      );
      const run = g.nodes.flatMap((n, i) => n.pods.map((p, j) => ({ id: `r${i}-${j}`, nodeId: `id-n${i}`, cpu: p.cpuM / 1000, memoryMiB: p.mem, priority: p.priority, m: p })));
      const want = pod('p', { cpu: g.pod.cpuM / 1000, memoryMiB: g.pod.mem, priority: g.pod.priority });
      // Fits on node i once `evicted` are gone (integer model).
      const fitsAfter = (i: number, evicted: Set<string>) => {
        const left = run.filter((r) => r.nodeId === `id-n${i}` && !evicted.has(r.id));
        const n = g.nodes[i]!;
        return !n.cordoned && left.reduce((s, r) => s + r.m.cpuM, 0) + g.pod.cpuM <= n.capM && left.reduce((s, r) => s + r.m.mem, 0) + g.pod.mem <= n.capMiB;
      };
      const got = findPreemption(want, nodes, run, { seed: g.seed });
      if (!got) {
        // Nowhere would evicting every lower-priority pod be enough.
        return g.nodes.every((_, i) => !fitsAfter(i, new Set(run.filter((r) => r.priority < g.pod.priority).map((r) => r.id))));
      }
      const i = Number(got.nodeId.slice(4));
      const victims = got.victims.map((id) => run.find((r) => r.id === id)!);
      if (victims.some((v) => v.nodeId !== got.nodeId || v.priority >= g.pod.priority)) return false;
      if (!fitsAfter(i, new Set(got.victims))) return false;
      // Irreducible: sparing any one victim breaks the fit.
      return got.victims.every((spared) => !fitsAfter(i, new Set(got.victims.filter((v) => v !== spared))));
    }),
    { numRuns: 300 },
  );
  t.pass('300 random preemptions');
});
