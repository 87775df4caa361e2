import fs from 'node:fs';
import path from 'node:path';
import { InvariantChecker } from './checker.js';
import { ChaosCluster } from './cluster.js';
import { EtcdReader } from './etcd-reader.js';
import { FAULT_KINDS, runFault, settled, type FaultContext, type FaultKind, type FaultRecord } from './faults.js';
import { LoadGenerator } from './load.js';
import { netnsProblem, pidAlive, removeLeftoverNamespaces, removeNamespacesOf } from './netns.js';
import { killMarked, ProcessSampler, RUN_MARKER, type ProcSample } from './proc-sampler.js';
import { buildReport, renderMarkdown, type ChaosReport } from './report.js';
import { delay } from '../wait.js';

/** How many faults of each kind a run injects. */
export type FaultCounts = Record<FaultKind, number>;

/** The schedules: `short` runs in `npm test` (about two minutes of faults), `full` is the benchmark. */
export const PROFILES: Record<'short' | 'medium' | 'full', FaultCounts> = {
  short: { 'leader-kill': 1, 'leader-stop': 1, 'agent-kill': 1, 'agent-cut': 1, 'agent-partition': 1, 'controller-partition': 1, 'etcd-kill': 1, 'slow-etcd': 1 },
  medium: { 'leader-kill': 8, 'leader-stop': 3, 'agent-kill': 4, 'agent-cut': 3, 'agent-partition': 4, 'controller-partition': 2, 'etcd-kill': 3, 'slow-etcd': 2 },
  full: { 'leader-kill': 100, 'leader-stop': 10, 'agent-kill': 10, 'agent-cut': 10, 'agent-partition': 20, 'controller-partition': 5, 'etcd-kill': 10, 'slow-etcd': 5 },
};

export interface ChaosOptions {
  /** Where logs and the report go. */
  dir: string;
  faults: FaultCounts;
  /** Live pods the load keeps. */
  pods: number;
  /** Nodes of the simulated agent. */
  simulate: number;
  seed: number;
  /** Window after the last fault event for Pending pods to be bound and reservations released (s). */
  settleS: number;
  heartbeatTtlS: number;
  nodeGraceS: number;
  leaseTtlS: number;
  slowHoldS: number;
  /** Pause between faults (ms), after the cluster settled. */
  gapMs: number;
  /** Process-table sampling period (ms); etcd is read every `etcdIntervalMs`. */
  procIntervalMs: number;
  etcdIntervalMs: number;
  netns: boolean;
  agentArgs: string[];
  controllerArgs: string[];
  log: (line: string) => void;
}

/** A seeded generator (mulberry32), so a schedule can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The order of the faults: every kind once first (so a short run sees each), the rest shuffled. */
export function schedule(counts: FaultCounts, random: () => number): FaultKind[] {
  const first = FAULT_KINDS.filter((k) => counts[k] > 0);
  const rest: FaultKind[] = [];
  for (const k of FAULT_KINDS) for (let i = 1; i < counts[k]; i++) rest.push(k);
  for (let i = rest.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [rest[i], rest[j]] = [rest[j]!, rest[i]!];
  }
  return [...first, ...rest];
}

/** Runs one chaos run and returns its report (also written to `<dir>/chaos-report.{md,json}`). */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const run = `${process.pid}-${Date.now()}`;
  // Children inherit it (so leftovers of a crashed run can be found), and the load puts it into every pod.
  process.env[RUN_MARKER] = run;
  const leftovers = removeLeftoverNamespaces();
  const orphans = killMarked((r) => r !== run && !pidAlive(Number(r.split('-')[0])));
  if (leftovers.length + orphans > 0) o.log(`removed leftovers of earlier runs: ${leftovers.join(', ') || 'no namespaces'}, ${orphans} processes`);
  const skipped: string[] = [];
  const harnessErrors: string[] = [];
  const counts = { ...o.faults };
  const netns = o.netns;
  if (netns) {
    const problem = netnsProblem();
    if (problem !== undefined) throw new Error(`${problem} (or run with --no-netns to skip silent partitions)`);
  }
  if (!netns) {
    for (const k of ['agent-partition', 'controller-partition'] as const) if (counts[k] > 0) skipped.push(`${counts[k]} ${k} (no network namespaces)`);
    counts['agent-partition'] = 0;
    counts['controller-partition'] = 0;
  }

  let cluster: ChaosCluster | undefined;
  // Every exit path (an error, SIGINT) removes namespaces, veths, rules and every process of the run.
  const cleanup = () => {
    removeNamespacesOf(process.pid);
    killMarked((r) => r === run);
  };
  process.once('exit', cleanup);

  const random = seeded(o.seed);
  let checker: InvariantChecker | undefined;
  const crashes: Array<{ name: string; detail: string; at: number }> = [];
  const startedAt = Date.now();
  /** Stops the load and the samplers (also when the run fails half-way); set once they run. */
  let stopLoops: (() => Promise<void>) | undefined;
  try {
    cluster = await ChaosCluster.start({
      dir: o.dir,
      simulate: o.simulate,
      netns,
      leaseTtl: o.leaseTtlS,
      heartbeatTtl: o.heartbeatTtlS,
      nodeGrace: o.nodeGraceS,
      agentArgs: o.agentArgs,
      controllerArgs: o.controllerArgs,
      onCrash: (name, detail) => {
        o.log(`CRASH ${name}: ${detail.split('\n')[0]}`);
        if (checker) checker.record('process-crash', name, Date.now(), detail);
        else crashes.push({ name, detail, at: Date.now() });
      },
    });
    const c = cluster;
    const reader = new EtcdReader(c.etcd.members.map((m) => `http://127.0.0.1:${m.clientPort}`));
    const load = new LoadGenerator({ run, targets: () => c.reachableControllers(), pods: o.pods, processShare: 0.7, paceMs: 250, random, token: c.adminToken() });
    const ck = new InvariantChecker({ settleMs: o.settleS * 1000, etcdIntervalMs: o.etcdIntervalMs }, load);
    checker = ck;
    for (const x of crashes) ck.record('process-crash', x.name, x.at, x.detail);
    const sampler = new ProcessSampler(run, (pid) => c.nodeOfPid(pid));
    let latest: ProcSample = sampler.sample();
    const takeProc = () => {
      latest = sampler.sample();
      ck.onProcSample(latest);
      return latest;
    };
    // The samplers: the process table often (cheap), etcd once a second between two process samples.
    let sampling = true;
    let maxGap = 0;
    const etcdKilled = new Set<string>();
    const procLoop = (async () => {
      while (sampling) {
        takeProc();
        await delay(o.procIntervalMs);
      }
    })();
    stopLoops = async () => {
      sampling = false;
      await load.stop();
      await Promise.allSettled([procLoop, etcdLoop]);
    };
    const etcdLoop = (async () => {
      let lastOk = Date.now();
      while (sampling) {
        const before = takeProc();
        const snap = await reader.snapshot().catch(() => undefined); // failures are counted by the reader
        if (snap !== undefined) {
          try {
            ck.onSnapshot(snap, before, takeProc());
          } catch (err) {
            // A check that cannot run is not a pass.
            const msg = `checker failed on revision ${snap.revision}: ${(err as Error).stack ?? String(err)}`;
            if (!harnessErrors.some((e) => e.split('\n')[0] === msg.split('\n')[0])) harnessErrors.push(msg);
          }
          maxGap = Math.max(maxGap, snap.answeredAt - lastOk);
          lastOk = snap.answeredAt;
        }
        for (const m of c.etcd.members) {
          if (!m.process.running && !etcdKilled.has(m.name) && m.process.exitStatus !== undefined) {
            etcdKilled.add(m.name);
            ck.record('process-crash', `etcd-${m.name}`, Date.now(), `etcd member ${m.name} exited: ${m.process.recentOutput(10)}`);
          }
        }
        await delay(o.etcdIntervalMs);
      }
    })();

    const ctx: FaultContext = {
      cluster: c,
      reader,
      checker: ck,
      latestProc: () => latest,
      budgetMs: (o.heartbeatTtlS + o.nodeGraceS) * 1000,
      leaseTtlMs: o.leaseTtlS * 1000,
      slowHoldMs: o.slowHoldS * 1000,
      log: o.log,
    };
    if ((await settled(ctx, Date.now(), 60_000)) === null) throw new Error('the cluster did not settle (leader, every node Ready) within 60 s of starting');
    load.start();
    o.log(`cluster up (logs in ${o.dir}); load started, warming up`);
    await delay(Math.min(20_000, o.pods * 400));
    const faults: FaultRecord[] = [];
    const plan = schedule(counts, random);
    for (const [i, kind] of plan.entries()) {
      // etcd kills are the run's own doing, not crashes.
      if (kind === 'etcd-kill') for (const m of c.etcd.members) etcdKilled.add(m.name);
      try {
        const r = await runFault(ctx, kind);
        faults.push(r);
        o.log(`[${i + 1}/${plan.length}] ${kind} ${r.target}: ${Object.entries(r.metrics).map(([k, v]) => `${k} ${v === null ? 'MISSED' : `${v} ms`}`).join(', ')}`);
      } catch (err) {
        harnessErrors.push(`${kind}: ${(err as Error).message}`);
        o.log(`[${i + 1}/${plan.length}] ${kind} failed: ${(err as Error).message}`);
      }
      if (kind === 'etcd-kill') etcdKilled.clear();
      await delay(o.gapMs);
    }
    // Quiet time under load past the settle window, so Pending pods and dangling reservations are judged.
    o.log(`faults done; ${o.settleS + 5} s of load without faults`);
    await delay((o.settleS + 5) * 1000);
    await load.stop();
    await delay(Math.max(2000, o.etcdIntervalMs * 2));
    sampling = false;
    await Promise.all([procLoop, etcdLoop]);
    const endedAt = Date.now();
    ck.finish(endedAt);
    // Terms the checker saw from each fault's start to the next one's (it reads etcd once a second, so
    // only now are all of a fault's terms known).
    faults.forEach((f, i) => {
      const until = faults[i + 1]?.startedAt ?? endedAt;
      f.counts = { ...f.counts, 'new terms': ck.terms.filter((t) => t.at >= f.startedAt && t.at < until).length };
    });
    const report = buildReport({
      startedAt,
      endedAt,
      config: {
        faults: counts,
        pods: o.pods,
        simulate: o.simulate,
        seed: o.seed,
        settleS: o.settleS,
        leaseTtlS: o.leaseTtlS,
        slowHoldS: o.slowHoldS,
        agentArgs: o.agentArgs,
        controllerArgs: o.controllerArgs,
        netns,
      },
      heartbeatTtlS: o.heartbeatTtlS,
      nodeGraceS: o.nodeGraceS,
      faults,
      episodes: ck.episodes,
      terms: ck.terms,
      load: load.stats,
      loadErrors: load.errors,
      checker: { processSamples: ck.procSamples, etcdSnapshots: ck.snapshots, etcdReadFailures: reader.failures, maxSnapshotGapMs: maxGap },
      skipped,
      harnessErrors,
    });
    fs.writeFileSync(path.join(o.dir, 'chaos-report.json'), JSON.stringify(report, null, 2) + '\n');
    fs.writeFileSync(path.join(o.dir, 'chaos-report.md'), renderMarkdown(report));
    return report;
  } finally {
    await stopLoops?.().catch(() => undefined);
    await cluster?.stop().catch((err: unknown) => o.log(`teardown: ${String(err)}`));
    cleanup();
    process.off('exit', cleanup);
  }
}
