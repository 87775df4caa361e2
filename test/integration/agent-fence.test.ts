import t from 'tap';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { BerthEvent, NodeView, PodRecord } from '@berth/core';
import { AgentProcess, repoRoot, TcpProxy, waitFor, type ControllerProcess } from '@berth/devcluster';
import { clusterFor, tempDir } from '../helpers/fixtures.js';

// Agent self-fencing against real processes: an etcd, a controller, two
// process-runtime agents, one of them reaching etcd through a TCP proxy that
// the test cuts. The process table is sampled throughout: a pod's id
// (BERTH_POD_ID in the environment the process runtime gives every pod) must
// never be in two process groups at once.

const TTL = 3; // heartbeat TTL (s); --fence-after defaults to it
const GRACE = 3; // controllers' --node-grace (s): 3 + 3 >= 3 + 2 (force-stop) + 1 (margin)
const PODS = 4;
const SAMPLE_MS = 100;

/** One live process group of a pod, and the agent that started it (its nearest agent ancestor; -1 when none is left). */
interface PodProcess {
  pgrp: number;
  starter: number;
}

/**
 * Samples the process table: for each pod id of this test, the process
 * groups holding a live (non-zombie) process with BERTH_POD_ID=<id>, and
 * which agent started each group (the agent pid among the group leader's
 * ancestors).
 */
class ProcessTable {
  /** Pids of the agents whose pods are told apart. */
  readonly agents = new Set<number>();
  /** pid:starttime:command -> pod id (null: not a pod's), so environs are read once per program a process runs. */
  private readonly seen = new Map<string, string | null>();
  readonly violations: string[] = [];
  samples = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Per pod, the last sample's groups. */
  last = new Map<string, PodProcess[]>();
  /** Per pod and starter, when a group of it was last and first seen. */
  readonly lastSeen = new Map<string, number>();
  readonly firstSeen = new Map<string, number>();

  constructor(private readonly ids: ReadonlySet<string>) {}

  start(): void {
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  sample(): Map<string, PodProcess[]> {
    const stats = new Map<number, { state: string; ppid: number; pgrp: number }>();
    const groups = new Map<string, Set<number>>();
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const [state, ppid, pgrp] = [f[0]!, Number(f[1]), Number(f[2])];
        stats.set(Number(entry), { state, ppid, pgrp });
        if (state === 'Z' || state === 'X') continue;
        const key = `${entry}:${f[19]}:${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}`;
        let pod = this.seen.get(key);
        if (pod === undefined) {
          const m = /(?:^|\0)BERTH_POD_ID=([^\0]+)/.exec(fs.readFileSync(`/proc/${entry}/environ`, 'utf8'));
          pod = m !== null && this.ids.has(m[1]!) ? m[1]! : null;
          // An agent's child between fork and exec still has the agent's environment: look again next time.
          if (pod !== null || !this.agents.has(ppid)) this.seen.set(key, pod);
        }
        if (pod === null) continue;
        const set = groups.get(pod) ?? new Set();
        set.add(pgrp);
        groups.set(pod, set);
      } catch {
        /* exited while we looked */
      }
    }
    const now = Date.now();
    const out = new Map<string, PodProcess[]>();
    for (const [pod, set] of groups) {
      const procs = [...set].map((pgrp) => ({ pgrp, starter: this.agentOf(pgrp, stats) }));
      out.set(pod, procs);
      if (procs.length > 1) this.violations.push(`${new Date(now).toISOString()} pod ${pod} in ${procs.length} process groups: ${JSON.stringify(procs)}`);
      for (const p of procs) {
        const k = `${pod}@${p.starter}`;
        this.lastSeen.set(k, now);
        if (!this.firstSeen.has(k)) this.firstSeen.set(k, now);
      }
    }
    this.samples += 1;
    this.last = out;
    return out;
  }

  private agentOf(pid: number, stats: Map<number, { ppid: number }>): number {
    for (let p = stats.get(pid)?.ppid, hops = 0; p !== undefined && hops < 8; p = stats.get(p)?.ppid, hops++) {
      if (this.agents.has(p)) return p;
    }
    return -1;
  }
}

t.test('an agent cut off from etcd fences itself: no pod ever runs twice', async (t) => {
  const cluster = await clusterFor(t, { controllers: 1, controllerArgs: ['--node-grace', String(GRACE)] });
  const c = cluster.controllers[0]!;
  const api = (method: string, p: string, body?: unknown) => c.request(method, p, body);
  const logDir = tempDir(t, 'berth-fence-');
  const proxy = await TcpProxy.start(cluster.etcd.clientPort);
  const pinnedProxy = await TcpProxy.start(cluster.etcd.clientPort);
  t.teardown(() => Promise.all([proxy.close(), pinnedProxy.close()]));
  const common = ['--heartbeat-interval', '500', '--report-interval', '500', '--node-grace', String(GRACE), '--stop-timeout', '2'];
  const general = [...common, '--heartbeat-ttl', String(TTL), '--labels', 'role=general'];
  const cutOff = new AgentProcess({ name: 'fa', etcd: proxy.endpoint, logDir, runtime: 'process', cpu: 4, extraArgs: general });
  const other = new AgentProcess({ name: 'fb', etcd: cluster.etcd.endpoint, logDir, runtime: 'process', cpu: 4, extraArgs: general });
  // Fences (2 s) long before its lease (6 s) expires: a short cut kills its pods and they stay bound to it.
  const pinned = new AgentProcess({ name: 'fc', etcd: pinnedProxy.endpoint, logDir, runtime: 'process', cpu: 4, extraArgs: [...common, '--heartbeat-ttl', '6', '--fence-after', '2', '--labels', 'role=pinned'] });
  const agents = [cutOff, other, pinned];
  const ids = new Set<string>();
  const pinnedIds = new Set<string>();
  const table = new ProcessTable(ids);
  t.teardown(async () => {
    table.stop();
    if (!t.passing()) for (const a of agents) t.comment(`--- ${a.name} ---\n${a.process.recentOutput(15)}`);
    await Promise.all(agents.map((a) => a.process.stop('SIGTERM')));
    // The agents stop their pods when they deregister; whatever a failure left behind goes too.
    for (const procs of table.sample().values()) {
      for (const p of procs) {
        try {
          process.kill(-p.pgrp, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
    }
  });
  await cluster.waitForAgreedLeader();
  const nodes = async () => (await api('GET', '/v1/nodes')).body.items as NodeView[];
  const ready = (name: string) => waitFor(async () => (await nodes()).find((n) => n.name === name && n.status === 'Ready')?.id, { what: `${name} Ready` });
  const pods = async () => ((await api('GET', '/v1/pods')).body.items as PodRecord[]).filter((p) => ids.has(p.id));
  const create = async (name: string, role: string) => {
    const res = await api('POST', '/v1/pods', { name, command: ['sh', '-c', 'sleep 600 & wait'], cpu: 0.5, memoryMiB: 32, nodeSelector: { role } });
    t.equal(res.status, 201, `created ${name}`);
    ids.add(res.body.id as string);
    return res.body.id as string;
  };
  // Only the agent to be cut off at first, so every general pod lands on it.
  await Promise.all([cutOff.start(), pinned.start()]);
  const [faId, fcId] = await Promise.all([ready('fa'), ready('fc')]);
  for (let i = 0; i < PODS; i++) await create(`job-${i}`, 'general');
  for (let i = 0; i < 2; i++) pinnedIds.add(await create(`pinned-${i}`, 'pinned'));
  await waitFor(async () => (await pods()).every((p) => p.status.phase === 'Running' && p.status.nodeId === (pinnedIds.has(p.id) ? fcId : faId)) || undefined, {
    what: 'every pod Running: general ones on fa, pinned ones on fc',
  });
  await other.start();
  const fbId = await ready('fb');
  const [faPid, fbPid, fcPid] = agents.map((a) => a.process.pid) as [number, number, number];
  for (const pid of [faPid, fbPid, fcPid]) table.agents.add(pid);
  const generalIds = () => [...ids].filter((id) => !pinnedIds.has(id));
  table.start();
  /** Waits until each of `which` runs in exactly one process group, started by `starter`. */
  const runningOnce = (which: string[], starter: number, what: string) =>
    waitFor(() => {
      const last = table.sample();
      return which.every((id) => last.get(id)?.length === 1 && last.get(id)![0]!.starter === starter) ? last : undefined;
    }, { what, timeoutMs: 20_000 });
  const before = await runningOnce(generalIds(), faPid, 'one process group per general pod, on fa');
  await runningOnce([...pinnedIds], fcPid, 'one process group per pinned pod, on fc');
  const events = async () => (await api('GET', '/v1/events?limit=1000')).body.items as BerthEvent[];

  t.test('a cut shorter than --fence-after stops nothing', async (t) => {
    proxy.cut();
    const cutAt = Date.now();
    await waitFor(() => Date.now() - cutAt >= 1000 || undefined, { what: 'a 1 s cut' });
    proxy.restore();
    // fa reports through etcd again; its lease kept the heartbeat alive all along.
    const node = await waitFor(async () => {
      const n = (await nodes()).find((x) => x.id === faId);
      return n?.status === 'Ready' && Date.parse(n.lastHeartbeat ?? '') > cutAt ? n : undefined;
    }, { what: 'fa to report through etcd again' });
    t.ok(Date.parse(node.statusChangedAt) < cutAt, `fa stayed Ready through the cut (status unchanged since ${node.statusChangedAt})`);
    const after = table.sample();
    for (const id of generalIds()) t.same(after.get(id), before.get(id), `pod ${id} kept its process group`);
    t.notMatch(cutOff.process.recentOutput(500), /NODE FENCED/, 'fa did not fence');
    t.equal((await pods()).filter((p) => p.status.restarts > 0).length, 0, 'no pod restarted');
  });

  t.test('a cut past --fence-after but within the lease: the pods are killed, then started again where they are still bound', async (t) => {
    const pinnedList = [...pinnedIds];
    const groups = new Map(pinnedList.map((id) => [id, table.sample().get(id)![0]!.pgrp]));
    const cutAt = Date.now();
    pinnedProxy.cut();
    await waitFor(() => pinnedList.every((id) => table.sample().get(id) === undefined) || undefined, { what: 'fc to kill its pods', timeoutMs: 10_000 });
    t.comment(`fc's pods killed ${Date.now() - cutAt} ms after the cut (--fence-after 2 s)`);
    t.match(pinned.process.recentOutput(500), /NODE FENCED/, 'fc logged its fence');
    pinnedProxy.restore();
    const again = await runningOnce(pinnedList, fcPid, 'the pinned pods running again on fc');
    for (const id of pinnedList) t.not(again.get(id)![0]!.pgrp, groups.get(id), `pod ${id} runs in a new process group`);
    const records = await waitFor(async () => {
      const all = (await pods()).filter((p) => pinnedIds.has(p.id));
      return all.every((p) => p.status.phase === 'Running' && p.status.restarts === 1) ? all : undefined;
    }, { what: 'the pinned pods Running, their restart counted once' });
    t.ok(records.every((p) => p.status.nodeId === fcId), 'still bound to fc');
    const all = await events();
    for (const p of records) {
      const e = all.find((x) => x.reason === 'Fenced' && x.involved.id === p.id);
      t.match(e?.message, /force-stopped: etcd acknowledged no keepalive for \d+\.\d s \(--fence-after 2 s\); still bound to node fc, starting again/, `${p.name}: why it stopped`);
    }
    const fenced = all.find((e) => e.reason === 'NodeFenced' && e.involved.id === fcId);
    t.match(fenced?.message, /2 still bound here start again \(pinned-\d, pinned-\d\), 0 that left it meanwhile were removed/);
  });

  t.test(`a cut of TTL + grace + 10 s: fa kills its pods before they run on fb, and starts none of them again`, async (t) => {
    const cutAt = Date.now();
    proxy.cut();
    // The pods run on fb within the budget (TTL + max(grace, fence + force-stop + margin - TTL)), plus scheduling.
    const moved = async () => (await pods()).filter((p) => !pinnedIds.has(p.id));
    const elsewhere = await waitFor(async () => ((await moved()).every((p) => p.status.phase === 'Running' && p.status.nodeId === fbId) ? Date.now() : undefined), {
      what: 'every pod Running on fb',
      timeoutMs: (TTL + GRACE + 10) * 1000,
    });
    t.comment(`pods Running on fb ${elsewhere - cutAt} ms after the cut (budget ${(TTL + GRACE) * 1000} ms)`);
    t.match(cutOff.process.recentOutput(500), /NODE FENCED/, 'fa logged its fence');
    await runningOnce(generalIds(), fbPid, 'one process group per pod, on fb');
    for (const id of generalIds()) {
      const killed = table.lastSeen.get(`${id}@${faPid}`)!;
      const started = table.firstSeen.get(`${id}@${fbPid}`)!;
      // More than one sample apart: two runs overlapping for less than a sample period would pass a bare `<`.
      t.ok(started - killed > SAMPLE_MS, `pod ${id}: last seen on fa ${killed - cutAt} ms after the cut, first on fb ${started - cutAt} ms after it`);
      t.ok(killed - cutAt <= (TTL + 2 + 1) * 1000, `pod ${id} killed within fence-after + force-stop + margin`);
    }
    await waitFor(() => Date.now() - cutAt >= (TTL + GRACE + 10) * 1000 || undefined, { what: 'the cut to last TTL + grace + 10 s', timeoutMs: (TTL + GRACE + 12) * 1000 });
    const healedAt = Date.now();
    proxy.restore();
    await waitFor(async () => (await nodes()).find((n) => n.id === faId)?.status === 'Ready' || undefined, { what: 'fa Ready again', timeoutMs: 20_000 });
    const fenced = await waitFor(async () => (await events()).find((e) => e.reason === 'NodeFenced' && e.involved.id === faId), { what: 'the NodeFenced event', timeoutMs: 20_000 });
    t.match(fenced.message, /etcd acknowledged no keepalive for \d+\.\d s \(--fence-after 3 s\)/);
    t.match(fenced.message, /0 still bound here start again, 4 that left it meanwhile were removed/);
    // fa removed what it had of them (their directories) and runs nothing.
    const podsDir = path.join(logDir, 'agent-fa-data', 'pods');
    await waitFor(() => (fs.existsSync(podsDir) ? fs.readdirSync(podsDir) : []).length === 0 || undefined, { what: 'fa to remove the moved pods' });
    await waitFor(() => /fence lifted/.test(cutOff.process.recentOutput(500)) || undefined, { what: 'fa to lift its fence' });
    await runningOnce(generalIds(), fbPid, 'each pod in exactly one process group, on fb, after healing');
    for (const id of generalIds()) t.notOk((table.lastSeen.get(`${id}@${faPid}`) ?? 0) > healedAt - 1000, `fa never ran pod ${id} after its fence`);
    t.ok((await moved()).every((p) => p.status.nodeId === fbId && p.status.phase === 'Running'), 'the records agree');
  });

  t.test('the process table never showed a pod in two process groups', async (t) => {
    table.stop();
    t.ok(table.samples > 100, `${table.samples} samples`);
    t.same(table.violations, []);
  });
});

/** Runs a built binary with `args` and how it exited: it must refuse before it touches etcd. */
function refusal(bin: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [path.join(repoRoot, bin), '--etcd', 'http://127.0.0.1:1', ...args], { timeout: 30_000 }, (_err, _out, stderr) =>
      resolve({ code: child.exitCode, stderr }),
    );
  });
}

t.test('flags that break the fence budget are refused at start, naming them', async (t) => {
  const [interval, budget, grace] = await Promise.all([
    refusal('apps/agent/dist/main.js', ['--heartbeat-interval', '1000', '--fence-after', '1.5']),
    refusal('apps/agent/dist/main.js', ['--heartbeat-ttl', '2', '--node-grace', '3', '--fence-after', '3']),
    refusal('apps/controller/dist/main.js', ['--node-grace', '2']),
  ]);
  t.equal(interval.code, 1);
  t.match(interval.stderr, /--fence-after \(1\.5 s\) must be at least 2 heartbeat intervals/);
  t.equal(budget.code, 1);
  t.match(budget.stderr, /--heartbeat-ttl \(2 s\) \+ --node-grace \(3 s\) = 5 s must be at least --fence-after \(3 s\)/);
  t.equal(grace.code, 1);
  t.match(grace.stderr, /--node-grace \(2 s\) must be at least/);
});
