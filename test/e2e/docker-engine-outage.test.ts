import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keyOf, type PodRecord } from '@berth/core';
import { AgentProcess, repoRoot, waitFor, type ControllerProcess } from '@berth/devcluster';
import { clientFor, clusterFor, tempDir } from '../helpers/fixtures.js';

/**
 * The Docker engine of a node goes away and comes back. This test runs its
 * own private engine (not the suite's shared one), so stopping it disturbs no
 * other test file.
 */
t.test('Docker engine gone: the node says so, pods are not failed in a storm, all recovers', async (t) => {
  // Its own state dir, removed only after the engine stopped (unmounting its layers).
  const engineDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-engine-'));
  const dockerd = (cmd: string) =>
    execFileSync('bash', [path.join(repoRoot, 'scripts/dockerd.sh'), cmd], { env: { ...process.env, BERTH_DOCKERD_DIR: engineDir }, encoding: 'utf8' });
  try {
    dockerd('start');
  } catch (err) {
    t.fail(`this test needs a Docker engine and cannot start one: ${(err as Error).message}`);
    return;
  }
  const dockerHost = `unix://${engineDir}/docker.sock`;
  t.teardown(() => {
    dockerd('stop');
    fs.rmSync(engineDir, { recursive: true, force: true });
  });
  execFileSync('bash', [path.join(repoRoot, 'deploy/docker/build-test-images.sh')], { env: { ...process.env, DOCKER_HOST: dockerHost }, stdio: 'ignore' });

  const cluster = await clusterFor(t);
  const logDir = tempDir(t, 'berth-engine-agent-');
  const agent = new AgentProcess({
    name: 'dock', etcd: cluster.etcd.endpoint, logDir, runtime: 'docker', cpu: 4, memoryMiB: 4096,
    extraArgs: ['--report-interval', '500', '--heartbeat-interval', '500', '--restart-backoff-max', '1000', '--runtime-request-timeout', '2'],
    env: { DOCKER_HOST: dockerHost, BERTH_LOG_LEVEL: 'debug' }, // every failed sync in the kept log
  });
  t.teardown(() => agent.process.stop('SIGTERM'));
  await agent.start();
  await cluster.waitForAgreedLeader();
  const c: ControllerProcess = cluster.controllers[0]!;
  const node = async () => (await c.request('GET', '/v1/nodes/dock')).body as { status: string; conditions: Array<{ type: string; status: boolean; message: string }> };
  const runtimeReady = async () => (await node()).conditions.find((x) => x.type === 'RuntimeReady');

  t.equal((await c.request('POST', '/v1/pods', { name: 'box', image: 'berth-test/busybox:local', command: ['sleep', '3600'], cpu: 0.1, memoryMiB: 32 })).status, 201);
  await waitFor(async () => ((await c.request('GET', '/v1/pods/box')).body as PodRecord).status.phase === 'Running', { what: 'box Running', timeoutMs: 30_000 });
  t.equal((await runtimeReady())?.status, true, 'RuntimeReady while the engine answers');
  // How often box's record is written while the engine goes and comes back (etcd's count of its versions).
  const etcd = clientFor(t, cluster.etcd.endpoint);
  const boxId = ((await c.request('GET', '/v1/pods/box')).body as PodRecord).id;
  const versionOfBox = async () => Number((await etcd.get(keyOf('pods', boxId)).exec()).kvs[0]?.version ?? 0);
  const versionBefore = await versionOfBox();

  // 1. The engine stops.
  dockerd('stop');
  const down = await waitFor(async () => {
    const cond = await runtimeReady();
    return cond?.status === false ? cond : undefined;
  }, { what: 'the node to report its engine gone' });
  t.match(down.message, /Docker engine at unix:\/\/.* is unavailable/, 'a clear condition on the node');
  t.equal((await node()).status, 'Ready', 'the node itself still heartbeats');
  // New pods do not land on a node whose engine is away.
  await c.request('POST', '/v1/pods', { name: 'later', image: 'berth-test/busybox:local', command: ['sleep', '3600'], cpu: 0.1, memoryMiB: 32 });
  const later = await waitFor(async () => {
    const p = (await c.request('GET', '/v1/pods/later')).body as PodRecord;
    return p.status.reason === 'Unschedulable' ? p : undefined;
  }, { what: 'the new pod to wait' });
  t.match(later.status.message, /1 runtime not ready/, 'the reason names the runtime, not the node');
  const box = (await c.request('GET', '/v1/pods/box')).body as PodRecord;
  t.not(box.status.phase, 'Failed', `the running pod is not failed while the engine is away (${box.status.phase})`);

  // 2. The engine returns: the condition clears, the pod runs, the waiting pod is placed.
  dockerd('start');
  await waitFor(async () => (await runtimeReady())?.status === true, { what: 'RuntimeReady again', timeoutMs: 20_000 });
  for (const name of ['box', 'later']) {
    await waitFor(async () => ((await c.request('GET', `/v1/pods/${name}`)).body as PodRecord).status.phase === 'Running', { what: `${name} Running`, timeoutMs: 30_000 });
  }
  const events = (await c.request('GET', '/v1/pods/box')).body as PodRecord;
  t.not(events.status.phase, 'Failed', 'recovered without a restart storm');
  // The records can say Running before the engine does: box's container died with the engine, and its
  // record still shows the run from before until the agent has seen that and started it again.
  const ids = new Set([box.id, later.id]);
  const running = () =>
    execFileSync('docker', ['-H', dockerHost, 'ps', '--filter', 'label=berth.pod', '--format', '{{.Label "berth.pod"}}'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  const labels = await waitFor(() => {
    const now = running();
    return now.length === ids.size && now.every((id) => ids.has(id)) ? now : undefined;
  }, { what: 'one running container per pod in the engine', timeoutMs: 30_000 });
  t.same(new Set(labels), ids, 'exactly one container per pod');
  // The engine refuses starts while it shuts down (the agent restarts box once the script removed its container).
  // Each refused launch used to write the same Starting status again, whose watch event retried it at once:
  // about 85 writes in a second. Retries back off now, and an unchanged status is only compared.
  const writes = (await versionOfBox()) - versionBefore;
  t.ok(writes <= 20, `box's record was written ${writes} times over the outage, not in a storm of retries`);

  // 3. The engine hangs (SIGSTOP: its socket accepts, nothing answers). A restart of box asked meanwhile does not
  //    wedge box's sync on a call that never returns: each call is aborted after --runtime-request-timeout (2 s)
  //    and retried, and once the engine answers again box restarts, once, in one container.
  const enginePid = Number(fs.readFileSync(path.join(engineDir, 'dockerd.pid'), 'utf8'));
  const restartsBefore = ((await c.request('GET', '/v1/pods/box')).body as PodRecord).status.restarts;
  process.kill(enginePid, 'SIGSTOP');
  try {
    await waitFor(async () => (await runtimeReady())?.status === false, { what: 'the node to report its engine not answering' });
    t.equal((await c.request('POST', '/v1/pods/box/restart')).status, 200);
    const agentLog = () => fs.readFileSync(path.join(logDir, 'agent-dock.log'), 'utf8');
    await waitFor(() => /"pod":"[a-z0-9]+".*gave no answer \([a-z ]+\) within 2 s.*"msg":"pod sync failed; retrying"/.test(agentLog()), { what: "box's sync to give up on the hung engine call", timeoutMs: 20_000 });
  } finally {
    process.kill(enginePid, 'SIGCONT');
  }
  const restarted = await waitFor(async () => {
    const p = (await c.request('GET', '/v1/pods/box')).body as PodRecord;
    return p.status.phase === 'Running' && p.status.restarts > restartsBefore ? p : undefined;
  }, { what: 'box restarted once the engine answers', timeoutMs: 30_000 });
  t.equal(restarted.status.restarts, restartsBefore + 1, 'restarted exactly once');
  await waitFor(() => {
    const now = running();
    return now.length === ids.size && now.every((id) => ids.has(id)) ? now : undefined;
  }, { what: 'again one running container per pod', timeoutMs: 30_000 });
});
