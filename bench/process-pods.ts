#!/usr/bin/env node
/**
 * Process-runtime pods, isolated or not: what per-pod isolation costs a
 * pod's start. One controller (the leader), one etcd, and one agent at a time
 * with `--runtime process`, in alternating rounds:
 *   isolated  the defaults of an agent running as root: each pod its own uid
 *             and gid from --pod-uid-range, a 0700 working directory, a
 *             cgroup per run (cpu, memory, pids) joined before the pod drops
 *             root, no-new-privs through setpriv;
 *   plain     `--run-as-user root --pod-limits none`: the pod runs as the
 *             agent, without cgroups or setpriv.
 * P pods running `sleep 3600` (0.1 core, 32 MiB) are created through the REST
 * API per round (see pod-starts.ts for what is measured), then deleted, and
 * the agent is stopped before the next round's starts.
 *
 *   npm run build && node bench/dist/process-pods.js [--pods 30] [--in-flight 5] [--rate 5] [--rounds 2]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { AgentProcess, killChildrenOnSignals, LocalCluster, runDir, waitFor } from '@berth/devcluster';
import { machineSummary } from './machine.js';
import { measurePodStarts, pct, watchNodesAndPods, type PodStarts } from './pod-starts.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '30' },
    'in-flight': { type: 'string', default: '5' },
    rate: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
  },
});
const podCount = Number(values.pods);
const inFlight = Number(values['in-flight']);
const rate = Number(values.rate);
const rounds = Number(values.rounds);
if (process.getuid?.() !== 0) throw new Error('run this as root: per-pod users and cgroups need an agent running as root');

const VARIANTS = {
  isolated: [] as string[],
  plain: ['--run-as-user', 'root', '--pod-limits', 'none'],
};
type Variant = keyof typeof VARIANTS;

killChildrenOnSignals();
const dir = runDir('berth-bench-process-');
const cluster = await LocalCluster.start({ dir, controllers: 1, controllerArgs: ['--log-level', 'warn'] });
const results: Array<{ variant: Variant; round: number; isolation: unknown; starts: PodStarts }> = [];
try {
  const leader = await cluster.waitForAgreedLeader();
  const { nodes, pods, close } = await watchNodesAndPods(cluster.etcd.endpoint);
  for (let round = 1; round <= rounds; round++) {
    for (const variant of Object.keys(VARIANTS) as Variant[]) {
      const name = `${variant}-${round}`;
      const agent = new AgentProcess({ name, etcd: cluster.etcd.endpoint, logDir: dir, runtime: 'process', cpu: 64, memoryMiB: 65536, extraArgs: VARIANTS[variant] });
      try {
        await agent.start();
        const node = await waitFor(() => nodes.list().find((i) => i.value.name === name && i.value.status === 'Ready')?.value, { what: `node ${name} Ready`, timeoutMs: 30_000 });
        const starts = await measurePodStarts({
          leader, pods, count: podCount, inFlight, rate,
          name: (i) => `${name}-${i}`,
          body: (pod) => ({ name: pod, command: ['sleep', '3600'], cpu: 0.1, memoryMiB: 32 }),
        });
        results.push({ variant, round, isolation: node.isolation, starts });
        for (let i = 0; i < podCount; i++) {
          const res = await leader.request('DELETE', `/v1/pods/${name}-${i}`);
          if (res.status >= 300) throw new Error(`DELETE ${name}-${i}: ${res.status} ${JSON.stringify(res.body)}`);
        }
        await waitFor(() => pods.list().length === 0, { what: `the pods of ${name} deleted`, timeoutMs: 120_000 });
      } finally {
        await agent.process.stop('SIGTERM', 10_000);
      }
    }
  }
  await close();
} finally {
  await cluster.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

const ms = (v: number) => v.toFixed(0);
console.log(`\n# process pods (1 controller = leader, 1 etcd, 1 agent --runtime process at a time; ${podCount} pods of sleep 3600, 0.1 core, 32 MiB, ${inFlight} POSTs in flight, ${rate > 0 ? `${rate} pods/s` : 'burst'}, ${rounds} alternating rounds)`);
console.log(`# machine: ${machineSummary()}`);
for (const r of results) console.log(`# ${r.variant} round ${r.round}: isolation ${JSON.stringify(r.isolation)}; first POST to last Running ${ms(r.starts.wallMs)} ms`);
console.log('| variant | pods | p50 create-to-Running ms | p99 ms | max ms | Starting to Running p50 / p99 ms |');
console.log('|---|---|---|---|---|---|');
for (const variant of Object.keys(VARIANTS) as Variant[]) {
  const mine = results.filter((r) => r.variant === variant).map((r) => r.starts);
  const toRunning = mine.flatMap((s) => s.toRunning);
  const agentShare = mine.flatMap((s) => s.startingToRunning);
  console.log(`| ${variant} | ${toRunning.length} | ${ms(pct(toRunning, 0.5))} | ${ms(pct(toRunning, 0.99))} | ${ms(Math.max(...toRunning))} | ${ms(pct(agentShare, 0.5))} / ${ms(pct(agentShare, 0.99))} |`);
}
