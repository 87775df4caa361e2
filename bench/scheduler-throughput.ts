#!/usr/bin/env node
/**
 * Scheduler throughput: N simulated nodes (one agent process), one controller
 * (the leader), and P pods written straight to etcd in batches as fast as
 * etcd takes them. Measures pods bound and persisted per second (first create
 * to last binding seen through a watch), create-to-bound latency p50/p99, the
 * leader's RSS, and, in the same run, the raw etcd put rate on this machine.
 *
 *   npm run build && node bench/dist/scheduler-throughput.js [--nodes 1000,5000,10000] [--pods 10000]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { newId, prefixes, type NodeRecord, type PodRecord } from '@berth/core';
import { createEtcdClient, Informer, PodRepository } from '@berth/store';
import { AgentProcess, killChildrenOnSignals, LocalCluster, waitFor, runDir } from '@berth/devcluster';
import { machineSummary, summarize } from './machine.js';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '1000,5000,10000' }, pods: { type: 'string', default: '10000' } } });
const sizes = values.nodes.split(',').map(Number);
const podCount = Number(values.pods);
const rssMiB = (pid: number) => Math.round(Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);

killChildrenOnSignals();
const rows: string[] = [];
let rawPutRate = 0;
for (const n of sizes) {
  const dir = runDir('berth-bench-sched-');
  const cluster = await LocalCluster.start({ dir, controllers: 1, controllerArgs: ['--policy', 'spread', '--log-level', 'warn'] });
  const client = createEtcdClient(cluster.etcd.endpoint);
  const log = pino({ level: 'silent' });
  const nodes = new Informer<NodeRecord>(client, prefixes.nodes, log);
  const pods = new Informer<PodRecord>(client, prefixes.pods, log);
  await Promise.all([nodes.start(), pods.start()]);
  const leader = await cluster.waitForAgreedLeader();
  const agent = new AgentProcess({
    name: 'sim', etcd: cluster.etcd.endpoint, logDir: dir, runtime: 'simulated', cpu: 8, memoryMiB: 32768,
    extraArgs: ['--simulate', String(n), '--heartbeat-interval', '1000', '--report-interval', '30000', '--log-level', 'warn'],
  });
  agent.process.start();
  await waitFor(() => nodes.list().filter((i) => i.value.status === 'Ready').length === n, { what: `${n} nodes Ready`, timeoutMs: 600_000, intervalMs: 200 });

  // Raw etcd put rate on this machine (sequential round trips and 64 in flight), once.
  if (rawPutRate === 0) {
    const until = performance.now() + 3000;
    let puts = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (performance.now() < until) {
        await client.put(`/bench/raw/${puts % 1000}`).value('x').exec();
        puts++;
      }
    }));
    rawPutRate = puts / 3;
    await client.delete().prefix('/bench/').exec();
  }

  const createdAt = new Map<string, number>();
  const boundAt = new Map<string, number>();
  pods.on('change', ({ item }) => {
    if (item && item.value.status.phase !== 'Pending' && !boundAt.has(item.value.id) && createdAt.has(item.value.id)) boundAt.set(item.value.id, performance.now());
  });
  const t0 = performance.now();
  const PER_TXN = 50; // at most MAX_CREATE_BATCH pods (record + name claim each) per transaction
  const repo = new PodRepository(client);
  const batches: PodRecord[][] = [];
  for (let i = 0; i < podCount; i += PER_TXN) {
    const batch: PodRecord[] = [];
    for (let j = i; j < Math.min(podCount, i + PER_TXN); j++) {
      const id = newId();
      const name = `bench-${j}`;
      const pod: PodRecord = {
        id, name,
        spec: { command: ['sleep', '1'], env: {}, cpu: 0.1, memoryMiB: 64, ports: [], restartPolicy: 'Always', priority: 0, nodeSelector: {} },
        desired: 'running',
        status: { phase: 'Pending', nodeId: null, reason: 'Created', message: '', restarts: 0, startedAt: null, finishedAt: null },
        createdAt: new Date().toISOString(),
      };
      batch.push(pod);
      createdAt.set(id, 0);
    }
    batches.push(batch);
  }
  // 8 writers in parallel, stamping each pod's create time when its txn is sent.
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      const sent = performance.now();
      for (const pod of batch) createdAt.set(pod.id, sent);
      await repo.createMany(batch);
    }
  }));
  const created = performance.now();
  await waitFor(() => boundAt.size === podCount, { what: `${podCount} pods bound`, timeoutMs: 600_000, intervalMs: 50 });
  const last = Math.max(...boundAt.values());
  const latencies = [...boundAt.entries()].map(([id, at]) => at - createdAt.get(id)!);
  const s = summarize(latencies);
  const p99 = [...latencies].sort((a, b) => a - b)[Math.ceil(0.99 * latencies.length) - 1]!;
  const perS = podCount / ((last - t0) / 1000);
  rows.push(`| ${n} | ${podCount} | ${((created - t0) / 1000).toFixed(1)} | ${perS.toFixed(0)} | ${s.median.toFixed(0)} | ${p99.toFixed(0)} | ${rssMiB(leader.process.pid)} | ${(perS / rawPutRate * 100).toFixed(0)}% |`);
  console.log(rows.at(-1));
  await agent.process.stop('SIGKILL');
  await Promise.all([nodes.stop(), pods.stop()]);
  client.close();
  await cluster.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(`\n# scheduler throughput (1 controller = leader, 1 etcd, simulated nodes of 8 cores; pods of 0.1 core, policy spread)`);
console.log(`# machine: ${machineSummary()}`);
console.log(`# raw etcd put rate, 64 in flight: ${rawPutRate.toFixed(0)} puts/s`);
console.log('| nodes | pods | create time (s) | pods bound/s | p50 create-to-bound ms | p99 ms | leader RSS MiB | bound/s vs raw puts/s |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
