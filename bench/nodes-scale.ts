#!/usr/bin/env node
/**
 * Node scale benchmark: one agent process simulating N nodes (each with its
 * own lease and heartbeat) against etcd + 3 controllers. Reports the time from
 * agent start to all N nodes Ready, the etcd write rate in steady state
 * (heartbeat usage reports; keepalives are not writes) and the RSS of the
 * leader and the agent.
 *
 *   npm run build && node bench/dist/nodes-scale.js [--nodes 1000,5000] [--report-interval 5000] [--steady 15]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { prefixes, type NodeRecord } from '@berth/core';
import { createEtcdClient, Informer } from '@berth/store';
import { AgentProcess, killChildrenOnSignals, LocalCluster, waitFor, runDir } from '@berth/devcluster';
import { machineSummary } from './machine.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000,5000' },
    'report-interval': { type: 'string', default: '5000' },
    steady: { type: 'string', default: '15' },
  },
});
const sizes = values.nodes.split(',').map(Number);
const reportInterval = Number(values['report-interval']);
const steadySeconds = Number(values.steady);

const rssMiB = (pid: number) => {
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return Math.round(kb / 1024);
};

killChildrenOnSignals();
const rows: string[] = [];
for (const n of sizes) {
  const dir = runDir('berth-bench-nodes-');
  const cluster = await LocalCluster.start({ dir });
  const client = createEtcdClient(cluster.etcd.endpoint);
  const nodes = new Informer<NodeRecord>(client, prefixes.nodes, pino({ level: 'silent' }));
  await nodes.start();
  const leader = await cluster.waitForAgreedLeader();

  const agent = new AgentProcess({
    name: 'sim',
    etcd: cluster.etcd.endpoint,
    logDir: dir,
    runtime: 'simulated',
    cpu: 8,
    memoryMiB: 32768,
    extraArgs: ['--simulate', String(n), '--heartbeat-interval', '1000', '--report-interval', String(reportInterval), '--log-level', 'warn'],
  });
  const t0 = performance.now();
  agent.process.start();
  await waitFor(
    () => {
      if (!agent.process.running) throw new Error(`agent exited: ${agent.process.recentOutput(20)}`);
      let ready = 0;
      for (const item of nodes.list()) if (item.value.status === 'Ready') ready++;
      return ready === n;
    },
    { what: `${n} nodes Ready`, timeoutMs: 600_000, intervalMs: 100 },
  );
  const allReadyS = (performance.now() - t0) / 1000;

  // Steady state: every etcd revision is one write.
  const rev0 = Number((await client.get('/berth/leader').exec()).header.revision);
  const s0 = performance.now();
  await new Promise((r) => setTimeout(r, steadySeconds * 1000));
  const rev1 = Number((await client.get('/berth/leader').exec()).header.revision);
  const writesPerS = (rev1 - rev0) / ((performance.now() - s0) / 1000);
  const stillReady = nodes.list().filter((i) => i.value.status === 'Ready').length;

  rows.push(
    `| ${n} | ${allReadyS.toFixed(1)} | ${writesPerS.toFixed(0)} | ${(n / (reportInterval / 1000)).toFixed(0)} | ${stillReady}/${n} | ${rssMiB(leader.process.pid)} | ${rssMiB(agent.process.pid)} |`,
  );
  console.log(rows.at(-1));
  await agent.process.stop('SIGKILL');
  await nodes.stop();
  client.close();
  await cluster.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(`\n# node scale benchmark (3 controllers, 1 etcd, 1 agent process, report interval ${reportInterval} ms, heartbeat 1 s, TTL 3 s)`);
console.log(`# machine: ${machineSummary()}`);
console.log('| nodes | all Ready (s) | etcd writes/s steady | expected reports/s | Ready after steady window | leader RSS MiB | agent RSS MiB |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
