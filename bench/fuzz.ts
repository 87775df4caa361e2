#!/usr/bin/env node
/**
 * The API fuzzer of test/integration/api-fuzz.test.ts at scale: etcd, one
 * controller and one process-runtime agent, then N generated requests
 * (50,000 by default) over every operation of /openapi.json. Prints the
 * count per operation and status, the failures (there should be none),
 * what etcd holds against the 2xx answers, and whether every process
 * survived.
 *
 *   npm run bench:fuzz -- [--cases 50000] [--seed N] [--concurrency 4] [--provisions 2]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { nameKey } from '@berth/core';
import { createEtcdClient } from '@berth/store';
import { AgentProcess, killChildrenOnSignals, LocalCluster, waitFor, runDir } from '@berth/devcluster';
import { etcdProblems, fuzzApi, Ledger, removeProvisionedNodes } from '@berth/devcluster/fuzz';
import { machineSummary } from './machine.js';

const { values: o } = parseArgs({
  options: {
    cases: { type: 'string', default: '50000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    concurrency: { type: 'string', default: '4' },
    provisions: { type: 'string', default: '2' },
  },
});
killChildrenOnSignals();

const dir = runDir('berth-bench-fuzz-');
const cluster = await LocalCluster.start({ dir, controllers: 1, controllerArgs: ['--node-grace', '3', '--provision-timeout', '20'] });
const c = cluster.controllers[0]!;
const agent = new AgentProcess({ name: 'fuzz-node', etcd: cluster.etcd.endpoint, logDir: dir, runtime: 'process', cpu: 4, memoryMiB: 2048, extraArgs: ['--stop-timeout', '1', '--restart-backoff-max', '5000'] });
const client = createEtcdClient(cluster.etcd.endpoint);
let code = 1;
try {
  await agent.start();
  await cluster.waitForAgreedLeader();
  const nodeId = JSON.parse((await client.get(nameKey('nodes', 'fuzz-node')).string())!) as string;
  await waitFor(async () => (await c.request('GET', `/v1/nodes/${nodeId}`)).body.status === 'Ready', { what: 'the agent Ready' });
  const ledger = new Ledger(new Set([nodeId, 'fuzz-node']));
  const cases = Number(o.cases);
  console.log(`Fuzzing ${c.url} with ${cases} cases, seed ${o.seed}, concurrency ${o.concurrency}`);
  const report = await fuzzApi({
    baseUrl: c.url,
    cases,
    seed: Number(o.seed),
    concurrency: Number(o.concurrency),
    bodyLimit: 1024 * 1024,
    ledger,
    provisionBudget: Number(o.provisions),
    safeCommands: [['sleep', '600'], ['true'], ['/nonexistent/berth-fuzz-command']],
  });
  console.log(`\n${report.cases} cases in ${(report.durationMs / 1000).toFixed(1)} s (${Math.round(report.cases / (report.durationMs / 1000))} cases/s); ${report.unrouted} unroutable paths\n`);
  console.log('| operation | answers (status x count) |\n|---|---|');
  for (const [op, statuses] of report.byOperation) {
    console.log(`| ${op} | ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s} x ${n}`).join(', ')} |`);
  }
  const totals = new Map<number, number>();
  for (const m of report.byOperation.values()) for (const [s, n] of m) totals.set(s, (totals.get(s) ?? 0) + n);
  console.log(`\nAll operations: ${[...totals].sort(([a], [b]) => a - b).map(([s, n]) => `${s} x ${n}`).join(', ')}`);
  console.log(`2xx created: ${ledger.pods.size} pods, ${ledger.services.size} services, ${ledger.jobs.size} jobs, ${ledger.nodes.size} nodes`);
  console.log(`Failures: ${report.failureCount}`);
  for (const f of report.failures) console.log(`  ${f.operation} -> ${f.status}: ${f.problem}\n      ${f.request}`);
  const problems = await etcdProblems(client, ledger);
  console.log(`etcd against the 2xx answers: ${problems.length === 0 ? 'exact' : problems.join('; ')}`);
  const alive = c.process.running && agent.process.running && (await fetch(`${c.url}/healthz`)).ok;
  console.log(`Processes: controller ${c.process.running ? 'alive' : 'DEAD'}, agent ${agent.process.running ? 'alive' : 'DEAD'}`);
  console.log(`Machine: ${machineSummary()}`);
  code = report.failureCount === 0 && problems.length === 0 && alive ? 0 : 1;
} finally {
  await removeProvisionedNodes(client, c.url);
  // SIGTERM: the agent stops its pods before it exits.
  await agent.process.stop('SIGTERM', 20_000);
  client.close();
  await cluster.stop(true);
  if (code === 0) fs.rmSync(dir, { recursive: true, force: true });
  else console.log(`logs kept in ${dir}`);
}
process.exit(code);
