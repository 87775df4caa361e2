import t from 'tap';
import { prefixes, type PodRecord } from '@berth/core';
import { AgentProcess, delay, TcpProxy, waitFor, type ControllerProcess } from '@berth/devcluster';
import { DEFAULT_LEADER_LEASE_TTL_SECONDS } from '@berth/store';
import { clientFor, clusterFor, etcdFor, tempDir } from '../helpers/fixtures.js';
import { killPodProcesses, podProcesses } from '../helpers/pod-processes.js';

/** How long etcd stays slow: 3 minutes in the suite; BERTH_SLOW_ETCD_SECONDS shortens it while developing. */
const RUN_S = Number(process.env.BERTH_SLOW_ETCD_SECONDS ?? 180);
const DELAY = { minMs: 100, maxMs: 500 };
const STABLE_PODS = 6;
/** More terms than this in one run is churn, not a slow etcd ridden out. */
const HANDFUL_OF_TERMS = 2;

t.setTimeout((RUN_S + 180) * 1000);

/** The pids running each pod of `ids`, by pod id (the shared /proc reader; zombies left out). */
function podPids(ids: Set<string>): Map<string, number[]> {
  return new Map([...podProcesses(ids)].map(([id, procs]) => [id, procs.map((p) => p.pid)]));
}

/** Answers of the API, by operation and status, and how long they took. */
class ApiLedger {
  readonly counts = new Map<string, number>();
  readonly failures: string[] = [];
  /** What the API said with its 409s (retried by the caller). */
  readonly conflicts = new Map<string, number>();
  readonly latencies: number[] = [];

  async call(c: ControllerProcess, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const op = `${method} ${p.replace(/\/(churn|stable)-\d+/, '/:name')}`;
    const sentAt = Date.now();
    try {
      const res = await c.request(method, p, body, 30_000);
      this.latencies.push(Date.now() - sentAt);
      const key = `${op} ${res.status}`;
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      if (res.status === 409) {
        const message = String(res.body?.message).replace(/"?(churn|stable)-\d+"?/g, '<pod>');
        this.conflicts.set(message, (this.conflicts.get(message) ?? 0) + 1);
      }
      if (res.status >= 300 && res.status !== 409) this.failures.push(`${c.id} ${method} ${p}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
      return res;
    } catch (err) {
      this.failures.push(`${c.id} ${method} ${p}: no answer (${(err as Error).message})`);
      return { status: 0, body: undefined };
    }
  }

  count(pred: (key: string) => boolean): number {
    let n = 0;
    for (const [key, v] of this.counts) if (pred(key)) n += v;
    return n;
  }

  quantile(q: number): number {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  }
}

t.test('three controllers and two agents behind a proxy delaying etcd by 100-500 ms one way', async (t) => {
  const etcd = await etcdFor(t);
  const proxy = await TcpProxy.start(etcd.clientPort);
  t.teardown(() => proxy.close());
  const cluster = await clusterFor(t, { etcd, etcdEndpoint: proxy.endpoint, leaseTtl: DEFAULT_LEADER_LEASE_TTL_SECONDS });
  const logDir = tempDir(t, 'berth-slow-etcd-');
  const agents = ['n1', 'n2'].map((name) => new AgentProcess({ name, etcd: proxy.endpoint, logDir, runtime: 'process', cpu: 8, memoryMiB: 8192 }));
  const podIds = new Set<string>();
  t.teardown(async () => {
    await Promise.all(agents.map((a) => a.process.stop('SIGTERM')));
    killPodProcesses(podIds);
  });
  await Promise.all(agents.map((a) => a.start()));
  const leader = await cluster.waitForAgreedLeader();
  const [c1] = cluster.controllers;
  const api = new ApiLedger();

  // Pods that must run undisturbed through the whole run: same node, same process, no restart.
  for (let i = 0; i < STABLE_PODS; i++) {
    const res = await api.call(c1!, 'POST', '/v1/pods', { name: `stable-${i}`, command: ['sleep', '3600'], cpu: 0.1 });
    podIds.add(res.body.id);
  }
  const stable = async () => ((await api.call(c1!, 'GET', '/v1/pods')).body.items as PodRecord[]).filter((p) => p.name.startsWith('stable-'));
  let before: PodRecord[] = [];
  await waitFor(async () => (before = await stable()).filter((p) => p.status.phase === 'Running').length === STABLE_PODS || undefined, { what: 'the stable pods Running', timeoutMs: 30_000 });
  const pidsBefore = podPids(podIds);
  t.equal(pidsBefore.size, STABLE_PODS, 'each stable pod runs as one process');
  const firstTerm = (await leader.leader()).term;
  const termsBefore = await Promise.all(cluster.controllers.map((c) => c.metric('berth_leader_terms_total')));

  proxy.setDelay(DELAY);
  const startedAt = Date.now();
  const until = startedAt + RUN_S * 1000;
  const processes = [...cluster.controllers.map((c) => c.process), ...agents.map((a) => a.process)];
  const exited = new Set<string>();
  const overlaps: string[] = [];
  const terms = new Set<number>();
  let samples = 0;

  // The API under steady load: create a pod, delete the one created three steps earlier, on the replica that created it.
  const churn = async () => {
    const created: Array<{ c: ControllerProcess; name: string }> = [];
    for (let n = 0; Date.now() < until; n++) {
      const c = cluster.controllers[n % 3]!;
      const name = `churn-${n}`;
      const res = await api.call(c, 'POST', '/v1/pods', { name, command: ['sleep', '3600'], cpu: 0.1 });
      if (res.status === 201) {
        podIds.add(res.body.id);
        created.push({ c, name });
      }
      const old = created.length > 3 ? created.shift() : undefined;
      if (old === undefined) continue;
      // A 409 ("changing too fast; try again") is retried, as a user would.
      let status = 409;
      for (let attempt = 0; status === 409 && attempt < 10; attempt++) status = (await api.call(old.c, 'DELETE', `/v1/pods/${old.name}`)).status;
    }
  };
  // Who leads, whether every replica is ready, and whether every process still runs, about once a second.
  const watch = async () => {
    while (Date.now() < until) {
      for (const p of processes) if (!p.running) exited.add(p.name);
      const views = await Promise.all(cluster.controllers.map((c) => api.call(c, 'GET', '/v1/cluster')));
      const leaders = views.filter((v) => v.body?.self?.role === 'leader').map((v) => `${v.body.self.id} (term ${v.body.self.term})`);
      if (leaders.length > 1) overlaps.push(`at ${Date.now() - startedAt} ms: ${leaders.join(', ')}`);
      for (const v of views) if (typeof v.body?.leader?.term === 'number') terms.add(v.body.leader.term);
      await Promise.all(cluster.controllers.map((c) => api.call(c, 'GET', '/readyz')));
      await api.call(cluster.controllers[samples % 3]!, 'GET', '/v1/pods');
      samples += 1;
      await delay(1000);
    }
  };
  await Promise.all([churn(), watch()]);
  proxy.setDelay(undefined);

  // Every replica's cache converges on what etcd holds (a missed watch event would leave a stale record for good).
  const direct = clientFor(t, etcd.endpoint);
  const truth = async () => {
    const res = await direct.getAll().prefix(prefixes.pods).exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as PodRecord).map((p) => `${p.name} ${p.status.phase} ${p.deletionRequested ?? ''}`).sort();
  };
  const stale = await waitFor(
    async () => {
      const want = await truth();
      const out: string[] = [];
      for (const c of cluster.controllers) {
        const have = ((await c.getJson<{ items: PodRecord[] }>('/v1/pods', 5000)).items).map((p) => `${p.name} ${p.status.phase} ${p.deletionRequested ?? ''}`).sort();
        if (JSON.stringify(have) !== JSON.stringify(want)) out.push(`${c.id}: ${have.filter((x) => !want.includes(x)).join(', ')} / etcd: ${want.filter((x) => !have.includes(x)).join(', ')}`);
      }
      return out.length === 0 ? out : undefined;
    },
    { what: 'every replica cache to agree with etcd', timeoutMs: 20_000 },
  ).catch((err: Error) => [err.message]);
  t.same(stale, [], 'every replica cache agrees with etcd');

  const termsAfter = await Promise.all(cluster.controllers.map((c) => c.metric('berth_leader_terms_total')));
  const newTerms = termsAfter.reduce<number>((sum, n, i) => sum + (n ?? 0) - (termsBefore[i] ?? 0), 0);
  const after = await stable();
  const pidsAfter = podPids(podIds);
  t.comment(`${RUN_S} s at ${DELAY.minMs}-${DELAY.maxMs} ms one way: ${samples} samples, ${api.latencies.length} API calls (p50 ${api.quantile(0.5)} ms, p99 ${api.quantile(0.99)} ms)`);
  t.comment(`answers: ${[...api.counts].map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  if (api.conflicts.size > 0) t.comment(`409s: ${[...api.conflicts].map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  t.comment(`terms seen: ${[...terms].join(', ')}; terms taken during the run: ${newTerms}`);

  t.same([...exited], [], 'no controller or agent exited');
  t.same(overlaps, [], 'never two replicas acting as leader at once (as each replica said, once a second)');
  // Finer than those samples: a replica acting as leader without the office has its fenced writes refused. A
  // deposed leader's own step-down record is the one such write a new term may explain.
  const rejected = (await Promise.all(cluster.controllers.map((c) => c.metric('berth_fenced_write_rejections_total')))).reduce<number>((s, n) => s + (n ?? 0), 0);
  t.ok(rejected <= newTerms, `fenced writes refused: ${rejected}, no more than the new terms (${newTerms})`);
  t.ok(newTerms <= HANDFUL_OF_TERMS, `no more than ${HANDFUL_OF_TERMS} new terms (${newTerms}; first term ${firstTerm})`);
  t.same(api.failures.slice(0, 20), [], `the API answered every request (${api.failures.length} failures; 409s retried: ${api.count((k) => k.endsWith(' 409'))})`);
  t.ok(api.count((k) => k.startsWith('POST /v1/pods 201')) > 10, `pods were created throughout (${api.count((k) => k.startsWith('POST /v1/pods 201'))})`);
  for (const p of before) {
    const now = after.find((x) => x.id === p.id);
    t.match(
      { phase: now?.status.phase, nodeId: now?.status.nodeId, restarts: now?.status.restarts, startedAt: now?.status.startedAt, pids: pidsAfter.get(p.id) },
      { phase: 'Running', nodeId: p.status.nodeId, restarts: p.status.restarts, startedAt: p.status.startedAt, pids: pidsBefore.get(p.id) },
      `${p.name} ran undisturbed on its node, as the same process`,
    );
  }
});
