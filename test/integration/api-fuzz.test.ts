import t from 'tap';
import { createEtcdClient } from '@berth/store';
import { keyOf, nameKey, prefixes, type NodeRecord } from '@berth/core';
import { AgentProcess, waitFor } from '@berth/devcluster';
import { etcdProblems, fuzzApi, Ledger, removeProvisionedNodes } from '@berth/devcluster/fuzz';
import { clusterFor, tempDir } from '../helpers/fixtures.js';
import { killPodProcesses } from '../helpers/pod-processes.js';

/**
 * Every operation of `/openapi.json` (read at run time: a new route is fuzzed
 * without touching this file) driven with generated valid and invalid path
 * parameters, queries and bodies, against a real controller with a real
 * process agent (valid pods really start) over a real etcd. Afterwards:
 * no failure in the report (see fuzzApi for what it judges), etcd holds
 * exactly what the 2xx answers created, and every process still answers.
 * BERTH_FUZZ_CASES and BERTH_FUZZ_SEED reproduce or widen a run.
 */
const CASES = Number(process.env.BERTH_FUZZ_CASES ?? 2000);
const SEED = Number(process.env.BERTH_FUZZ_SEED ?? Date.now() % 1_000_000);
const BODY_LIMIT = 1024 * 1024;

t.test(`API fuzz: ${CASES} generated requests over every documented operation (seed ${SEED})`, async (t) => {
  const cluster = await clusterFor(t, { controllers: 1, controllerArgs: ['--node-grace', '3', '--provision-timeout', '20'] });
  const c = cluster.controllers[0]!;
  const dir = tempDir(t, 'berth-fuzz-');
  const agent = new AgentProcess({ name: 'fuzz-node', etcd: cluster.etcd.endpoint, logDir: dir, runtime: 'process', cpu: 4, memoryMiB: 2048, extraArgs: ['--stop-timeout', '1', '--restart-backoff-max', '5000'] });
  const client = createEtcdClient(cluster.etcd.endpoint);
  const podIds = new Set<string>();
  t.teardown(async () => {
    await removeProvisionedNodes(client, c.url);
    for (const k of Object.keys(await client.getAll().prefix(prefixes.pods).strings())) podIds.add(k.slice(prefixes.pods.length));
    if (!t.passing()) t.comment(`--- agent ---\n${agent.process.recentOutput(40)}`);
    await agent.process.stop('SIGTERM', 10_000);
    killPodProcesses(podIds);
    client.close();
  });
  await agent.start();
  await cluster.waitForAgreedLeader();
  const nodeId = JSON.parse((await client.get(nameKey('nodes', 'fuzz-node')).string())!) as string;
  await waitFor(async () => (await c.request('GET', `/v1/nodes/${nodeId}`)).body.status === 'Ready', { what: 'the agent Ready' });

  const ledger = new Ledger(new Set([nodeId, 'fuzz-node']));
  const report = await fuzzApi({
    baseUrl: c.url,
    cases: CASES,
    seed: SEED,
    concurrency: 4,
    bodyLimit: BODY_LIMIT,
    ledger,
    provisionBudget: 1,
    safeCommands: [['sleep', '600'], ['true'], ['/nonexistent/berth-fuzz-command']],
  });
  const lines = [...report.byOperation].map(([op, statuses]) => `${op}: ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}x${n}`).join(' ')} (${report.msByOperation.get(op) ?? 0} ms)`);
  t.comment(`${report.cases} cases in ${report.durationMs} ms (${report.unrouted} unroutable paths); per operation and status:\n${lines.join('\n')}`);
  t.equal(report.cases, CASES, `${CASES} cases were sent`);
  t.ok([...report.byOperation.values()].every((m) => [...m.values()].reduce((a, b) => a + b, 0) > 0), 'every documented operation was called');
  t.equal(report.failureCount, 0, `no failures${report.failureCount === 0 ? '' : `:\n${report.failures.map((f) => `${f.operation} -> ${f.status}: ${f.problem}\n    ${f.request}`).join('\n')}`}`);
  const created = [...ledger.pods.values()].filter((d) => !d).length;
  // The success paths are reached: pods always; services and jobs are rarer (a job needs a valid body naming a service a
  // valid earlier case created: about 1 in 140 POST /v1/jobs cases), so at 2,000 cases some seeds make none. The
  // 50,000-case benchmark accepts them by the dozen; jobs.test and services.test cover those paths on purpose.
  t.ok(created > 0, `2xx answers created pods (${ledger.pods.size}); services: ${ledger.services.size}, jobs: ${ledger.jobs.size}, tokens: ${ledger.tokens.size}`);

  t.same(await etcdProblems(client, ledger), [], 'etcd holds exactly what the 2xx answers created');
  t.ok(c.process.running, 'the controller is alive');
  t.ok(agent.process.running, 'the agent is alive');
  t.equal((await fetch(`${c.url}/healthz`)).status, 200, 'the controller answers /healthz');
  const agentUrl = (JSON.parse((await client.get(keyOf('nodes', nodeId)).string())!) as NodeRecord).address;
  t.equal((await fetch(`${agentUrl}/healthz`)).status, 200, 'the agent answers /healthz');
  t.equal((await c.request('GET', `/v1/nodes/${nodeId}`)).body.status, 'Ready', 'and its node is Ready');
});
