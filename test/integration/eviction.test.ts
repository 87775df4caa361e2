import t from 'tap';
import { keyOf, leaderRecordKey, type AllocationRecord, type NodeView, type PodRecord } from '@berth/core';
import { AgentProcess, waitFor, type ControllerProcess } from '@berth/devcluster';
import { clientFor, clusterFor, tempDir } from '../helpers/fixtures.js';
import { killPodProcesses, podGroups, removeNodeCgroups } from '../helpers/pod-processes.js';

// Two-phase eviction on real process-runtime agents: a drained node's pods,
// preemption victims and the pods of a node that re-joined smaller are first
// stopped by their agent (here: 2 s each, they trap SIGTERM), then unbound
// and started elsewhere. A sampler reads the process table every 20 ms and
// records any instant at which one pod id runs in two process groups.

/** Trap SIGTERM and take 2 s to exit, as a server finishing its requests would. */
const SLOW_STOP = ['sh', '-c', 'trap "sleep 2; exit 0" TERM; while :; do sleep 0.1; done'];

/** Period of the process-table samples (ms). */
const SAMPLE_MS = 20;

/**
 * Samples the process table until stopped: every pod id seen in two process
 * groups at once, every group seen per pod, and when each pod (key: its id)
 * and each of its groups (key: `<id>:<pgid>`) was first and last seen,
 * and `between(a, b)`: how many samples were taken strictly between two of
 * those times (samples in which neither of two runs proves they did not overlap).
 */
function sampler(ids: Set<string>) {
  const doubles: string[] = [];
  const seen = new Map<string, Set<number>>();
  const firstSeen = new Map<string, number>();
  const lastSeen = new Map<string, number>();
  const times: number[] = [];
  const sample = () => {
    const now = Date.now();
    times.push(now);
    for (const [id, groups] of podGroups(ids)) {
      if (groups.length > 1) doubles.push(`${id} in groups ${groups.join(',')} at ${new Date(now).toISOString()}`);
      const all = seen.get(id) ?? new Set<number>();
      for (const g of groups) all.add(g);
      seen.set(id, all);
      for (const k of [id, ...groups.map((g) => `${id}:${g}`)]) {
        if (!firstSeen.has(k)) firstSeen.set(k, now);
        lastSeen.set(k, now);
      }
    }
  };
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    doubles,
    seen,
    firstSeen,
    lastSeen,
    get samples() {
      return times.length;
    },
    between: (a: number, b: number) => times.filter((x) => x > a && x < b).length,
    stop: () => {
      clearInterval(timer);
      sample(); // what runs at the end, however long the last scan of /proc took
    },
  };
}

t.test('two-phase eviction never runs a pod in two places', async (t) => {
  const cluster = await clusterFor(t, { controllerArgs: ['--node-grace', '3', '--policy', 'first-fit'] });
  const logDir = tempDir(t, 'berth-evict-');
  const agent = (name: string, cpu: number) =>
    new AgentProcess({ name, etcd: cluster.etcd.endpoint, logDir, runtime: 'process', cpu, memoryMiB: 2048, extraArgs: ['--stop-timeout', '5', '--heartbeat-interval', '500'] });
  const agents = new Map<string, AgentProcess>();
  const ids = new Set<string>();
  /** Every node an agent ran for: SIGKILLed agents leave their cgroups behind. */
  const started = new Set<string>();
  t.teardown(async () => {
    await Promise.all([...agents.values()].map((a) => a.process.stop('SIGKILL')));
    killPodProcesses(ids);
    const left = [...started].flatMap((n) => removeNodeCgroups(n));
    if (left.length > 0) t.comment(`cgroups left: ${left.join(', ')}`);
  });
  const start = async (name: string, cpu: number) => {
    started.add(name);
    const a = agent(name, cpu);
    agents.set(name, a);
    await a.start();
    return a;
  };
  await cluster.waitForAgreedLeader();
  const c: ControllerProcess = cluster.controllers[0]!;
  const direct = clientFor(t, cluster.etcd.endpoint);
  const etcdRevision = async () => Number((await direct.get(leaderRecordKey).exec()).header.revision);
  const api = (method: string, path: string, body?: unknown) => c.request(method, path, body);
  const pods = async () => (await api('GET', '/v1/pods')).body.items as PodRecord[];
  const nodeByName = async (name: string) => (await api('GET', `/v1/nodes/${name}`)).body as NodeView;
  const create = async (name: string, cpu: number, priority = 0) => {
    const res = await api('POST', '/v1/pods', { name, command: SLOW_STOP, cpu, memoryMiB: 64, priority });
    t.equal(res.status, 201, `created ${name}`);
    ids.add(res.body.id);
    return res.body as PodRecord;
  };
  const runningOn = (nodeId: string, names: string[]) =>
    waitFor(async () => {
      const all = await pods();
      return names.every((n) => all.some((p) => p.name === n && p.status.phase === 'Running' && p.status.nodeId === nodeId)) ? all : undefined;
    }, { what: `${names.join(', ')} Running on ${nodeId}`, timeoutMs: 30_000 });

  t.test('drain: each pod stops on its node before it starts on another', async (t) => {
    await start('d1', 4);
    const d1 = (await waitFor(async () => ((await nodeByName('d1')).status === 'Ready' ? nodeByName('d1') : undefined), { what: 'd1 Ready' })).id;
    const names = ['drain-a', 'drain-b', 'drain-c'];
    for (const n of names) await create(n, 0.5);
    await runningOn(d1, names);
    await start('d2', 4);
    const d2 = (await waitFor(async () => ((await nodeByName('d2')).status === 'Ready' ? nodeByName('d2') : undefined), { what: 'd2 Ready' })).id;
    const watch = sampler(ids);
    try {
      t.equal((await api('POST', '/v1/nodes/d1/drain')).status, 200);
      // Evicting shows on the old node first: marked, then Stopping while the 2 s stop runs.
      await waitFor(async () => (await pods()).some((p) => names.includes(p.name) && p.status.eviction?.reason === 'NodeDrained'), { what: 'pods marked for eviction' });
      await runningOn(d2, names);
    } finally {
      watch.stop();
    }
    t.same(watch.doubles, [], `no pod ran in two process groups at once (${watch.samples} samples)`);
    for (const p of (await pods()).filter((x) => names.includes(x.name))) {
      const groups = [...(watch.seen.get(p.id) ?? [])].sort((x, y) => watch.firstSeen.get(`${p.id}:${x}`)! - watch.firstSeen.get(`${p.id}:${y}`)!);
      t.equal(groups.length, 2, `${p.name} ran in exactly two process groups over time (one per node)`);
      const [oldLast, newFirst] = [watch.lastSeen.get(`${p.id}:${groups[0]}`)!, watch.firstSeen.get(`${p.id}:${groups[1]}`)!];
      const gap = watch.between(oldLast, newFirst);
      t.ok(gap > 0, `${p.name}: the old group was last seen ${newFirst - oldLast} ms before the new one first was, ${gap} sample(s) between them saw neither`);
      t.equal(p.status.eviction, undefined, `${p.name}: the mark went with the unbinding`);
    }
    const d1View = await nodeByName('d1');
    t.equal(d1View.allocated.cpu, 0, 'nothing reserved on the drained node');
    t.equal((await api('POST', '/v1/nodes/d1/uncordon')).status, 200);
    await Promise.all(['drain-a', 'drain-b', 'drain-c'].map((n) => api('DELETE', `/v1/pods/${n}`)));
    await waitFor(async () => !(await pods()).some((p) => names.includes(p.name)), { what: 'drain pods deleted' });
    await agents.get('d1')!.process.stop('SIGKILL');
    await agents.get('d2')!.process.stop('SIGKILL');
    agents.clear();
    await waitFor(async () => ((await api('GET', '/v1/nodes?status=Ready')).body.items as unknown[]).length === 0, { what: 'no Ready node left', timeoutMs: 20_000 });
    await Promise.all(['d1', 'd2'].map((n) => api('DELETE', `/v1/nodes/${n}`)));
  });

  t.test('preemption: the preemptor starts only once its victim has stopped and released its room', async (t) => {
    await start('p1', 1);
    const p1 = (await waitFor(async () => ((await nodeByName('p1')).status === 'Ready' ? nodeByName('p1') : undefined), { what: 'p1 Ready' })).id;
    const low = await create('low', 1, 0);
    await runningOn(p1, ['low']);
    const watch = sampler(ids);
    const from = await etcdRevision();
    let high: PodRecord;
    try {
      high = await create('high', 1, 100);
      await runningOn(p1, ['high']);
    } finally {
      watch.stop();
    }
    const both = new Set([low.id, high.id]);
    // One node, one core: the two pods must never overlap in time on it.
    t.same(watch.doubles, [], 'no pod ran twice');
    const lowLast = watch.lastSeen.get(low.id)!;
    const highFirst = watch.firstSeen.get(high.id)!;
    const gap = watch.between(lowLast, highFirst);
    t.ok(gap > 0, `the victim was last seen running ${highFirst - lowLast} ms before the preemptor first was, ${gap} sample(s) between them saw neither`);
    // Every state etcd went through: the node's reservation never exceeded its one core.
    const to = await etcdRevision();
    let most = 0;
    for (let rev = from; rev <= to; rev++) {
      const alloc = (await direct.get(keyOf('allocations', p1)).revision(rev).json()) as AllocationRecord | null;
      most = Math.max(most, Object.values(alloc?.pods ?? {}).reduce((s, r) => s + r.cpuMillis, 0));
    }
    t.ok(most > 0 && most <= 1000, `p1's reservation at every revision ${from}-${to} stayed within 1000m (at most ${most}m)`);
    const all = await pods();
    const lowNow = all.find((p) => p.id === low.id)!;
    t.equal(lowNow.status.nodeId, null, 'the victim went back to Pending');
    t.equal(lowNow.status.phase, 'Pending');
    t.ok(podGroups(both).get(low.id) === undefined, 'the victim runs nowhere');
    const events = (await api('GET', '/v1/events')).body.items as Array<{ reason: string; message: string }>;
    t.ok(events.some((e) => e.reason === 'PodsEvicting' && e.message.includes('low (Preempted)')), 'a PodsEvicting event names the victim');
    await Promise.all(['low', 'high'].map((n) => api('DELETE', `/v1/pods/${n}`)));
    await waitFor(async () => !(await pods()).some((p) => p.name === 'low' || p.name === 'high'), { what: 'preemption pods deleted' });
  });

  t.test('a node that re-joins with less cpu evicts its lowest-priority pods until the rest fits', async (t) => {
    const p1 = (await nodeByName('p1')).id;
    const names = ['keep-1', 'keep-2', 'spill-1', 'spill-2'];
    // 4 x 0.25 on a 1-core node; re-joining with 0.5 core keeps the two higher-priority pods.
    await create('keep-1', 0.25, 10);
    await create('keep-2', 0.25, 10);
    await create('spill-1', 0.25, 0);
    await create('spill-2', 0.25, 0);
    await runningOn(p1, names);
    await agents.get('p1')!.process.stop('SIGKILL');
    // (Its process-runtime pods die with it.)
    agents.delete('p1');
    await start('p1', 0.5);
    const settled = await waitFor(async () => {
      const n = await nodeByName('p1');
      const all = await pods();
      const on = all.filter((p) => names.includes(p.name) && p.status.nodeId === p1);
      return n.capacity.cpu === 0.5 && n.allocated.cpu <= 0.5 && on.length === 2 && on.every((p) => p.status.phase === 'Running') ? all : undefined;
    }, { what: 'p1 fits its new capacity', timeoutMs: 30_000 });
    const kept = settled.filter((p) => names.includes(p.name) && p.status.nodeId === p1).map((p) => p.name).sort();
    t.same(kept, ['keep-1', 'keep-2'], 'the higher-priority pods stay');
    for (const n of ['spill-1', 'spill-2']) {
      const p = settled.find((x) => x.name === n)!;
      t.equal(p.status.phase, 'Pending', `${n} is Pending (no room anywhere)`);
    }
    const events = (await api('GET', '/v1/events')).body.items as Array<{ reason: string; message: string }>;
    t.ok(events.some((e) => e.reason === 'PodsEvicting' && e.message.includes('(CapacityReduced)')), 'eviction recorded with its reason');
  });
});
