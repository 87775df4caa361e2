import t from 'tap';
import type { AllocationRecord, HeartbeatRecord, LeaderRecord, NodeRecord, PodRecord } from '@berth/core';
import { buildReport, InvariantChecker, renderMarkdown, stat, type EtcdSnapshot, type Ledger, type PodGroup, type ProcSample } from '@berth/devcluster';

/*
 * The chaos checker fed synthetic samples: each invariant is seen breaking
 * (and only then), strict ones at once, windowed ones only past the settle
 * window after the last fault, and process groups only when they lasted
 * across the etcd read.
 */

const T0 = 1_000_000;

function node(id: string, over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id, name: id, labels: { chaos: 'process' }, runtime: 'process', address: '', capacity: { cpu: 1, memoryMiB: 1024 },
    status: 'Ready', reason: 'HeartbeatOk', statusChangedAt: '', cordoned: false, draining: false, registeredAt: '',
    agent: { hostname: 'h', pid: 1, startedAt: '', version: '0' }, ...over,
  };
}

function pod(id: string, nodeId: string | null, over: { phase?: PodRecord['status']['phase']; cpu?: number; name?: string; selector?: Record<string, string> } = {}): PodRecord {
  return {
    id, name: over.name ?? `pod-${id}`, desired: 'running', createdAt: '',
    spec: { command: ['sleep', '1'], env: {}, cpu: over.cpu ?? 0.25, memoryMiB: 64, ports: [], restartPolicy: 'Always', priority: 0, nodeSelector: over.selector ?? {} },
    status: { phase: over.phase ?? (nodeId === null ? 'Pending' : 'Running'), nodeId, reason: '', message: '', restarts: 0, startedAt: null, finishedAt: null },
  };
}

const hb = (nodeId: string): HeartbeatRecord => ({ nodeId, reportedAt: '', usage: { cpuPercent: 0, memoryMiB: 0, load1: 0 }, pods: [], instance: 'i' });

interface World {
  nodes?: NodeRecord[];
  pods?: PodRecord[];
  allocs?: Record<string, Record<string, number>>;
  term?: number;
  version?: number;
  noHeartbeat?: string[];
}

function snap(at: number, w: World): EtcdSnapshot {
  const nodes = w.nodes ?? [node('n1'), node('n2')];
  const allocations = new Map<string, AllocationRecord>();
  for (const [nodeId, pods] of Object.entries(w.allocs ?? {})) {
    allocations.set(nodeId, { nodeId, pods: Object.fromEntries(Object.entries(pods).map(([id, cpu]) => [id, { cpuMillis: cpu, memoryMiB: 64 }])) });
  }
  const leader: LeaderRecord = { leaderId: 'c1', address: '', term: w.term ?? 10, since: '' };
  return {
    revision: at, sentAt: at - 5, answeredAt: at,
    pods: new Map((w.pods ?? []).map((p) => [p.id, p])),
    nodes: new Map(nodes.map((n) => [n.id, n])),
    allocations,
    heartbeats: new Map(nodes.filter((n) => !(w.noHeartbeat ?? []).includes(n.id)).map((n) => [n.id, hb(n.id)])),
    election: [],
    leader: { key: '/berth/leader', value: leader, createRevision: 1, modRevision: 1, version: w.version ?? 1 },
  };
}

function proc(at: number, groups: Array<[string, number, string | undefined]>): ProcSample {
  const m = new Map<string, PodGroup[]>();
  for (const [podId, pgid, nodeName] of groups) m.set(podId, [...(m.get(podId) ?? []), { podId, pgid, pids: [pgid], node: nodeName }]);
  return { at, groups: m };
}

class FakeLedger implements Ledger {
  entries: Array<{ id: string; name: string; ackedAt: number; deleteSentAt?: number }> = [];
  dups: Array<{ name: string; ids: string[] }> = [];
  acked() {
    return this.entries;
  }
  deleteSentAt(id: string) {
    return this.entries.find((e) => e.id === id)?.deleteSentAt;
  }
  duplicateAcks() {
    return this.dups;
  }
}

const make = (ledger: Ledger = new FakeLedger()) => new InvariantChecker({ settleMs: 10_000, etcdIntervalMs: 1000 }, ledger);
const kinds = (c: InvariantChecker) => c.episodes.map((e) => e.kind).sort();
const empty = (at: number) => proc(at, []);

t.test('a pod in two process groups: one episode, as long as the samples show it', async (t) => {
  const c = make();
  c.onProcSample(proc(T0, [['a', 100, 'n1']]));
  c.onProcSample(proc(T0 + 150, [['a', 100, 'n1'], ['a', 200, 'n2']]));
  c.onProcSample(proc(T0 + 300, [['a', 100, 'n1'], ['a', 200, 'n2']]));
  c.onProcSample(proc(T0 + 450, [['a', 200, 'n2']]));
  c.finish(T0 + 1000);
  t.same(kinds(c), ['double-run']);
  t.equal(c.episodes[0]!.durationMs, 300, 'from the first sample showing it to the first not showing it');
  t.equal(c.summary()['double-run'].episodes, 1);
});

t.test('etcd invariants that hold at every revision are violations at once', async (t) => {
  const c = make();
  c.onSnapshot(
    snap(T0, {
      pods: [pod('a', 'n1', { cpu: 0.75 }), pod('b', 'n1', { cpu: 0.5 }), pod('c', 'n2'), pod('d', 'n2', { phase: 'Succeeded' })],
      // n1: 1250m reserved and bound of 1000m; c reserved on n1 and n2 (dangling on n1, within the settle window).
      allocs: { n1: { a: 750, b: 500, c: 250 }, n2: { c: 250 } },
    }),
    empty(T0 - 10),
    empty(T0 + 10),
  );
  c.finish(T0 + 1000);
  t.same(kinds(c), ['overcommit-bound', 'overcommit-reserved', 'reserved-twice'], c.episodes.map((e) => e.detail).join('\n'));
});

t.test('a bound live pod without a reservation; a finished one needs none', async (t) => {
  const c = make();
  c.onSnapshot(snap(T0, { pods: [pod('a', 'n1'), pod('b', 'n1', { phase: 'Failed' })], allocs: {} }), empty(T0), empty(T0));
  c.finish(T0 + 1000);
  t.same(kinds(c), ['unreserved-bound']);
  t.match(c.episodes[0]!.detail, /pod-a Running on n1/);
});

t.test('a dangling reservation is a violation only past the settle window after the last fault', async (t) => {
  const c = make();
  const world: World = { pods: [], allocs: { n1: { gone: 250 } } };
  c.noteFault(T0);
  c.onSnapshot(snap(T0 + 1000, world), empty(T0), empty(T0));
  c.onSnapshot(snap(T0 + 9000, world), empty(T0), empty(T0));
  t.same(kinds(c), [], 'within the window');
  c.noteFault(T0 + 9500); // another fault restarts the window
  c.onSnapshot(snap(T0 + 15_000, world), empty(T0), empty(T0));
  t.same(kinds(c), []);
  c.onSnapshot(snap(T0 + 19_600, world), empty(T0), empty(T0));
  c.onSnapshot(snap(T0 + 20_000, { pods: [], allocs: {} }), empty(T0), empty(T0));
  t.same(kinds(c), ['dangling-reservation']);
  t.equal(c.episodes[0]!.startedAt, T0 + 1000, 'the episode starts when the reservation was first seen dangling');
});

t.test('a Pending pod that fits is a violation past the window; one that fits nowhere is not', async (t) => {
  const c = make();
  const nodes = [node('n1'), node('n2', { status: 'NotReady' }), node('n3', { cordoned: true }), node('n4')];
  const world: World = {
    nodes,
    pods: [pod('fits', null), pod('nowhere', null, { selector: { chaos: 'gpu' } }), pod('big', null, { cpu: 2 })],
    noHeartbeat: ['n4'],
  };
  c.onSnapshot(snap(T0, world), empty(T0), empty(T0));
  c.onSnapshot(snap(T0 + 10_500, world), empty(T0), empty(T0));
  c.finish(T0 + 11_000);
  t.same(c.episodes.map((e) => `${e.kind}:${e.subject}`), ['pending-fits:fits']);
  t.ok(InvariantChecker.fitsSomewhere(pod('x', null), snap(T0, world)));
  t.notOk(InvariantChecker.fitsSomewhere(pod('x', null), snap(T0, { ...world, allocs: { n1: { a: 900 } } })), 'no room left on the only eligible node');
});

t.test('acknowledged creates: lost, deleted, too recent, duplicated', async (t) => {
  const ledger = new FakeLedger();
  ledger.entries = [
    { id: 'lost', name: 'p-lost', ackedAt: T0 - 100 },
    { id: 'deleted', name: 'p-del', ackedAt: T0 - 100, deleteSentAt: T0 - 50 },
    { id: 'recent', name: 'p-recent', ackedAt: T0 },
    { id: 'here', name: 'p-here', ackedAt: T0 - 100 },
  ];
  ledger.dups = [{ name: 'p-twice', ids: ['x', 'y'] }];
  const c = make(ledger);
  c.onSnapshot(snap(T0 + 5, { pods: [pod('here', null, { name: 'p-here' }), pod('h2', null, { name: 'p-here' })], allocs: {}, nodes: [] }), empty(T0), empty(T0));
  c.finish(T0 + 1000);
  t.same(c.episodes.map((e) => `${e.kind}:${e.subject}`).sort(), ['duplicate-create:p-here', 'duplicate-create:p-twice', 'lost-create:lost']);
});

t.test('processes against etcd: ghosts, a simulated double run, machine overcommit; only groups that lasted across the read', async (t) => {
  const c = make();
  const nodes = [node('n1'), node('n2'), node('s1', { runtime: 'simulated', labels: {} })];
  const world: World = {
    nodes,
    pods: [pod('here', 'n1', { cpu: 0.5 }), pod('moved', 'n2'), pod('sim', 's1'), pod('fat', 'n1', { cpu: 0.75 })],
    allocs: { n1: { here: 500, fat: 750 }, n2: { moved: 250 }, s1: { sim: 250 } },
  };
  // n1's reservations are over capacity too (1250m of 1000m): that is overcommit-reserved and -bound, checked separately.
  const before = proc(T0 - 5, [['here', 10, 'n1'], ['moved', 11, 'n1'], ['sim', 12, 'n1'], ['gone', 13, 'n1'], ['fat', 15, 'n1']]);
  const after = proc(T0 + 5, [['here', 10, 'n1'], ['moved', 11, 'n1'], ['sim', 12, 'n1'], ['gone', 13, 'n1'], ['fat', 15, 'n1'], ['moved', 14, 'n2']]);
  c.onSnapshot(snap(T0, world), before, after);
  c.finish(T0 + 1000);
  const got = c.episodes.map((e) => `${e.kind}:${e.subject}`).sort();
  t.same(
    got.filter((k) => !k.startsWith('overcommit-reserved') && !k.startsWith('overcommit-bound')),
    ['double-run-simulated:sim', 'ghost-run:gone/13', 'ghost-run:moved/11', 'ghost-run:sim/12', 'overcommit-machine:n1'],
    'the group that appeared during the read (moved/14) is not judged',
  );
});

t.test('leadership: a new term with no leader fault is churn; terms no sample saw are counted', async (t) => {
  const c = make();
  c.onSnapshot(snap(T0, { term: 10, version: 1 }), empty(T0), empty(T0));
  const w = c.expectNewLeader(T0 + 500, 30_000);
  c.onSnapshot(snap(T0 + 1000, { term: 12, version: 2 }), empty(T0), empty(T0));
  w.close(T0 + 1000);
  t.same(kinds(c), [], 'the killed leader\'s successor');
  c.onSnapshot(snap(T0 + 60_000, { term: 20, version: 5 }), empty(T0), empty(T0));
  t.same(kinds(c), ['leadership-churn', 'leadership-churn', 'leadership-churn'], 'three terms since the last sample, none explained');
  t.equal(c.terms.length, 4);
  t.equal(c.terms.filter((x) => x.explained).length, 1);
});

t.test('a crash is recorded as it is reported', async (t) => {
  const c = make();
  c.record('process-crash', 'c2', T0, 'exited with code 1');
  t.same(kinds(c), ['process-crash']);
});

t.test('the report: percentiles, misses, violations by the fault in progress, exit-worthy totals', async (t) => {
  t.same(stat([5, 1, 3, 2, 4]), { n: 5, p50: 3, p99: 5, max: 5 });
  t.same(stat([]), { n: 0, p50: null, p99: null, max: null });
  const c = make();
  c.record('process-crash', 'c1', T0 + 500, 'before any fault');
  c.record('double-run', 'a', T0 + 1500, 'during the kill');
  const none = { ok: 0, failed: 0, unknown: 0, latenciesMs: [] };
  const r = buildReport({
    startedAt: T0,
    endedAt: T0 + 60_000,
    config: {},
    heartbeatTtlS: 3,
    nodeGraceS: 5,
    faults: [
      { kind: 'agent-kill', target: 'p1', startedAt: T0 + 1000, healedAt: T0 + 9000, metrics: { 'pods running elsewhere': 8100, 'pod processes gone': null }, perPodMs: [8000, 8100], notes: [] },
      { kind: 'agent-kill', target: 'p2', startedAt: T0 + 20_000, healedAt: T0 + 29_000, metrics: { 'pods running elsewhere': 8300, 'pod processes gone': 400 }, notes: [] },
    ],
    episodes: c.episodes,
    terms: [],
    load: { create: none, delete: none, restart: none },
    loadErrors: [],
    checker: { processSamples: 1, etcdSnapshots: 1, etcdReadFailures: 0, maxSnapshotGapMs: 0 },
    skipped: [],
    harnessErrors: [],
  });
  t.equal(r.violations, 2);
  t.equal(r.budget.budgetS, 8);
  t.same(r.faults['agent-kill']!.metrics['pod processes gone'], { n: 1, p50: 400, p99: 400, max: 400, misses: 1 });
  t.same(r.faults['agent-kill']!.podsRunningElsewhere, { n: 2, p50: 8000, p99: 8100, max: 8100 });
  t.same(r.violationsByFault, { 'before any fault': { 'process-crash': 1 }, 'agent-kill': { 'double-run': 1 } });
  const md = renderMarkdown(r);
  t.match(md, /# Chaos run: 2 violations/);
  t.match(md, /\| agent-kill \| 2 \| pods running elsewhere \| 2 \| 8100 ms \| 8300 ms \| 8300 ms \| 0 \|/);
});
