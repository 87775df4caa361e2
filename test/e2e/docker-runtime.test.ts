import t from 'tap';
import { keyOf, nameKey, type BerthEvent, type PodRecord, type PodSpec } from '@berth/core';
import { AgentProcess, waitFor } from '@berth/devcluster';
import { agentCaller } from '../helpers/agent-api.js';
import { checkTickLogs } from '../helpers/agent-logs.js';
import { LeaderStandIn } from '../helpers/leader-stand-in.js';
import { clientFor, etcdFor, tempDir, docker, dockerProblem, TextStream } from '../helpers/fixtures.js';

// The agent's docker runtime against a real private dockerd (DOCKER_HOST), a real etcd and a
// real agent process, with no controller: the test plays the leader by writing pod records.

const NODE = 'dock-rt';
const IMAGE = 'berth-test/busybox:local';

interface Inspect {
  Id: string;
  Created: string;
  State: { Status: string; ExitCode: number; StartedAt: string; FinishedAt: string };
  HostConfig: {
    NanoCpus: number; Memory: number; NetworkMode: string; Init: boolean;
    SecurityOpt: string[] | null; CapDrop: string[] | null; CapAdd: string[] | null; PidsLimit: number | null; ReadonlyRootfs: boolean;
  };
  Config: { Labels: Record<string, string>; Env: string[] };
}

t.test('docker runtime: pods as containers', async (t) => {
  const problem = dockerProblem(IMAGE, 'deploy/docker/build-test-images.sh');
  if (problem) {
    t.fail(`this test needs a Docker engine and cannot get one: ${problem}`);
    return;
  }
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const logDir = tempDir(t, 'berth-docker-rt-');
  const agent = new AgentProcess({
    name: NODE,
    etcd: etcd.endpoint,
    logDir,
    runtime: 'docker',
    extraArgs: ['--restart-backoff-max', '2000', '--stop-timeout', '1', '--heartbeat-interval', '500', '--report-interval', '1000', '--pids-limit', '512'],
  });
  let nodeId = '';
  const containersOfNode = () => (nodeId ? docker('ps', '-aq', '--filter', `label=berth.node=${nodeId}`, '--filter', 'label=berth.pod').split('\n').filter(Boolean) : []);
  t.teardown(async () => {
    if (!t.passing()) t.comment(agent.process.recentOutput(60));
    await agent.process.stop('SIGTERM', 5000);
    // This node's containers, and the leftovers the test made as another node's.
    const ids = [...containersOfNode(), ...docker('ps', '-aq', '--filter', 'label=berth.node=elsewhere').split('\n').filter(Boolean)];
    if (ids.length > 0) docker('rm', '-f', ...ids);
  });
  await agent.start();
  nodeId = JSON.parse((await client.get(nameKey('nodes', NODE)).string())!) as string;
  // Its address and node credential are read on each call: the agent restarts below.
  const agentApi = agentCaller(client, () => nodeId);

  const stand = new LeaderStandIn(client, () => nodeId, { image: IMAGE, cpu: 0.25 });
  const get = (id: string) => stand.get(id);
  const change = (id: string, fn: (p: PodRecord) => PodRecord) => stand.change(id, fn);
  const createPod = (name: string, spec: Partial<PodSpec>) => stand.createPod(name, spec);
  const waitPod = (id: string, what: string, pred: (p: PodRecord) => boolean, timeoutMs = 15_000) => stand.waitPod(id, what, pred, timeoutMs);
  const eventsOf = (id: string) => stand.eventsOf(id);
  const eventSeen = (id: string, pred: (e: BerthEvent) => boolean, what: string) => stand.eventSeen(id, pred, what);
  const containersOf = (podId: string) => docker('ps', '-aq', '--no-trunc', '--filter', `label=berth.pod=${podId}`).split('\n').filter(Boolean);
  const inspectPod = (podId: string): Inspect => {
    const ids = containersOf(podId);
    if (ids.length !== 1) throw new Error(`pod ${podId} has ${ids.length} containers`);
    return (JSON.parse(docker('inspect', ids[0]!)) as Inspect[])[0]!;
  };
  const engineState = (podId: string) => inspectPod(podId).State.Status;
  /** What the engine recorded happening to a container from `since` (unix seconds) until now, oldest first. */
  const engineActions = (containerId: string, since: string) =>
    docker('events', '--since', since, '--until', (Date.now() / 1000).toFixed(3), '--filter', `container=${containerId}`, '--format', '{{.Action}}').split('\n').filter(Boolean);
  const unixNow = () => (Date.now() / 1000).toFixed(3);
  const waitEngine = (podId: string, status: string) => waitFor(() => engineState(podId) === status, { what: `container of ${podId} ${status}`, timeoutMs: 10_000 });

  // A web server: httpd on PORT, a greeting and a tick every 200 ms in its log.
  const WEB = 'mkdir -p /tmp/www && echo "hi from $GREETING" > /tmp/www/index.html && echo "hello $GREETING on $PORT" && httpd -p $PORT -h /tmp/www && i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done';
  const created = Date.now();
  const web = await createPod('web', { command: ['sh', '-c', WEB], ports: [8080], env: { GREETING: 'berth' }, cpu: 0.25, memoryMiB: 64 });
  const running = await waitPod(web, 'Running with a host port', (p) => p.status.phase === 'Running' && p.status.hostPort !== undefined);
  const toRunning = Date.now() - created;
  const bare = Date.now();
  docker('run', '--rm', '--network', 'host', IMAGE, 'true');
  t.comment(`create-to-Running of a busybox pod: ${toRunning} ms; a bare \`docker run --rm\`: ${Date.now() - bare} ms`);
  const port = running.status.hostPort!;

  t.test('a pod runs as a container with its limits, labels, env and host network', async (t) => {
    const c = inspectPod(web);
    t.equal(c.State.Status, 'running');
    t.equal(c.HostConfig.NanoCpus, 250_000_000, 'NanoCpus = cpu * 1e9');
    t.equal(c.HostConfig.Memory, 64 * 1024 * 1024, 'Memory = memoryMiB MiB');
    t.equal(c.HostConfig.NetworkMode, 'host');
    t.equal(c.HostConfig.Init, true);
    t.same(c.HostConfig.SecurityOpt, ['no-new-privileges'], 'no-new-privileges');
    t.same(c.HostConfig.CapDrop, ['ALL'], 'every capability dropped');
    t.notOk(c.HostConfig.CapAdd, 'none added back unasked');
    t.equal(c.HostConfig.PidsLimit, 512, 'PidsLimit = --pids-limit');
    t.equal(c.HostConfig.ReadonlyRootfs, false, 'a writable root file system unless asked');
    t.equal(c.Config.Labels['berth.pod'], web);
    t.equal(c.Config.Labels['berth.node'], nodeId);
    t.ok(c.Config.Env.includes(`PORT=${port}`), 'PORT is the allocated host port');
    const res = await waitFor(() => fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).catch(() => undefined), { what: 'httpd to answer' });
    t.equal(res, 'hi from berth\n', 'answers on its host port');
    const p = await waitPod(web, 'with a usage sample', (p) => p.status.usage !== undefined, 10_000);
    t.ok(p.status.usage!.memoryMiB > 0 && p.status.usage!.memoryMiB < 64, `status.usage from docker stats: ${JSON.stringify(p.status.usage)}`);
  });

  t.test('a pod keeps only the capabilities it asks for, and can have a read-only root file system', async (t) => {
    const PROBE = 'touch /probe 2>/dev/null && echo rootfs writable || echo rootfs read-only; grep -E "^(CapEff|NoNewPrivs):" /proc/self/status; exec sleep 300';
    const id = await createPod('hardened', { command: ['sh', '-c', PROBE], capabilities: ['NET_BIND_SERVICE'], readOnlyRootFilesystem: true });
    await waitPod(id, 'hardened Running', (p) => p.status.phase === 'Running');
    const c = inspectPod(id);
    t.same(c.HostConfig.CapDrop, ['ALL']);
    t.same(c.HostConfig.CapAdd, ['NET_BIND_SERVICE'], 'the asked-for capability is added back');
    t.equal(c.HostConfig.ReadonlyRootfs, true);
    const log = await waitFor(async () => {
      const text = await (await agentApi(`/v1/pods/${id}/logs`)).text();
      return /NoNewPrivs/.test(text) ? text : undefined;
    }, { what: 'the probe output' });
    t.match(log, /^rootfs read-only$/m, 'the root file system refuses writes');
    // CAP_NET_BIND_SERVICE is bit 10: the process holds it and nothing else.
    t.match(log, /^CapEff:\s+0000000000000400$/m, 'effective capabilities: NET_BIND_SERVICE only');
    t.match(log, /^NoNewPrivs:\s+1$/m, 'no_new_privs in the container');
    await change(id, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    await waitFor(async () => (await get(id)) === undefined, { what: 'hardened deleted' });
  });

  t.test('logs through the agent API: tail and follow', async (t) => {
    await checkTickLogs(t, agentApi, web);
    const all = await (await agentApi(`/v1/pods/${web}/logs`)).text();
    t.match(all, `hello berth on ${port}\n`, 'stdout from the start of the container');
  });

  t.test('the agent answers a body that is not JSON with 400 VALIDATION_FAILED', async (t) => {
    const res = await agentApi(`/v1/pods/${web}/logs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tail":' });
    t.equal(res.status, 400);
    t.match(await res.json(), { error: 'VALIDATION_FAILED', message: /not valid JSON/ });
  });

  t.test('a followed log goes on across restarts, each line once, and ends when the pod is deleted', async (t) => {
    // Each run counts itself in a file that survives restarts of the same container.
    const RUNS = 'n=$(cat /tmp/runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/runs; echo "run $n"; exit 1';
    const id = await createPod('counter', { command: ['sh', '-c', RUNS], restartPolicy: 'Always' });
    await waitFor(() => containersOf(id).length === 1, { what: 'the counter container' });
    const ac = new AbortController();
    t.teardown(() => ac.abort());
    const res = await agentApi(`/v1/pods/${id}/logs?follow=1`, { signal: ac.signal });
    t.equal(res.status, 200);
    const stream = new TextStream(res);
    t.ok(await stream.until((text) => text.includes('run 3\n')), 'three runs followed');
    const runs = stream.text.split('\n').filter(Boolean);
    t.same(runs, runs.map((_, i) => `run ${i + 1}`), `every run, in order, none twice: ${runs.join(', ')}`);
    await change(id, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    t.equal(await stream.until(() => false), false, 'the stream ends when the pod is gone');
    t.same(containersOf(id), [], 'the container is gone');
  });

  t.test('pause/resume, stop/start and restart drive the container', async (t) => {
    const cid = inspectPod(web).Id;
    await change(web, (p) => ({ ...p, desired: 'paused' }));
    await waitPod(web, 'Paused', (p) => p.status.phase === 'Paused');
    t.equal(engineState(web), 'paused');
    await change(web, (p) => ({ ...p, desired: 'running' }));
    await waitPod(web, 'Running', (p) => p.status.phase === 'Running');
    t.equal(engineState(web), 'running');

    await change(web, (p) => ({ ...p, desired: 'stopped' }));
    await waitPod(web, 'Stopped', (p) => p.status.phase === 'Stopped');
    t.equal(engineState(web), 'exited');
    await change(web, (p) => ({ ...p, desired: 'running' }));
    const again = await waitPod(web, 'Running again', (p) => p.status.phase === 'Running');
    t.equal(engineState(web), 'running');
    t.equal(again.status.hostPort, port, 'same host port');
    t.equal(inspectPod(web).Id, cid, 'the same container, started again');

    const startedAt = inspectPod(web).State.StartedAt;
    const before = (await get(web))!.status.restarts;
    await change(web, (p) => ({ ...p, restartRequestedAt: new Date().toISOString() }));
    await waitPod(web, 'restarted', (p) => p.status.phase === 'Running' && p.status.restarts === before + 1);
    t.equal(engineState(web), 'running');
    t.not(inspectPod(web).State.StartedAt, startedAt, 'the container started again');
  });

  t.test('an image that cannot be pulled fails the pod with the engine message', async (t) => {
    const id = await createPod('noimage', { image: 'berth-test/does-not-exist:nope', command: ['true'] });
    const p = await waitPod(id, 'Failed', (p) => p.status.phase === 'Failed', 20_000);
    t.equal(p.status.reason, 'CreateFailed');
    t.match(p.status.message, /cannot pull image "berth-test\/does-not-exist:nope" \(3 attempts\): .+/);
    t.match(p.status.message, /registry|no such host|dial tcp|pull access denied|not found/i, `carries the engine's text: ${p.status.message}`);
    t.same(containersOf(id), [], 'no container');
  });

  t.test('Always restarts a crashing container with growing back-off; Never does not', async (t) => {
    const crash = await createPod('crash', { command: ['sh', '-c', 'echo boom; exit 3'], restartPolicy: 'Always' });
    const never = await createPod('never', { command: ['sh', '-c', 'exit 4'], restartPolicy: 'Never' });
    const f = await waitPod(never, 'Failed', (p) => p.status.phase === 'Failed');
    t.match(f.status, { reason: 'Error', exitCode: 4 });
    const p = await waitPod(crash, 'restarted 3 times', (p) => p.status.restarts >= 3, 20_000);
    t.equal(p.status.exitCode, 3, 'the exit code is recorded');
    // Events are written after the status they describe: wait for the third one too.
    const delays = await waitFor(async () => {
      const d = (await eventsOf(crash)).filter((e) => e.reason === 'BackOff').map((e) => Number(/restarting in (\d+) ms/.exec(e.message)?.[1]));
      return d.length >= 3 ? d : undefined;
    }, { what: 'three BackOff events' });
    t.ok(delays.length >= 3, `BackOff events: ${delays.join(', ')}`);
    t.same(delays.slice(0, 3), [500, 1000, 2000], 'back-off doubles');
    t.equal(containersOf(crash).length, 1, 'one container, restarted in place');
    // Never: a restart would have come one back-off (500 ms) after its exit. The crash pod,
    // created with it, has since been restarted three times by the same agent (3.5 s of back-off),
    // so that moment is past; the engine's record of the container since its creation shows it.
    const nc = inspectPod(never);
    const crashRun = inspectPod(crash).State.StartedAt;
    t.ok(Date.parse(crashRun) - Date.parse(nc.State.FinishedAt) > 500, `the crash pod started again (${crashRun}) over a back-off after never exited (${nc.State.FinishedAt})`);
    t.same(engineActions(nc.Id, String(Date.parse(nc.Created) / 1000 - 1)).filter((a) => a === 'start' || a === 'die'), ['start', 'die'], 'the engine ran it once');
    const n = await get(never);
    t.match(n?.status, { phase: 'Failed', restarts: 0 }, 'Never: not restarted');
    t.equal(engineState(never), 'exited');
    await change(crash, (p) => ({ ...p, desired: 'stopped' }));
    await waitPod(crash, 'Stopped', (p) => p.status.phase === 'Stopped', 10_000);
  });

  t.test('a stop that outlasts --stop-timeout is forced, with a ForcedKill event', async (t) => {
    const id = await createPod('stubborn', { command: ['sh', '-c', 'trap "" TERM; echo up; while true; do sleep 0.2; done'] });
    await waitPod(id, 'Running', (p) => p.status.phase === 'Running');
    await waitFor(async () => (await (await agentApi(`/v1/pods/${id}/logs`)).text()).includes('up'), { what: 'the trap to be set' });
    await change(id, (p) => ({ ...p, desired: 'stopped' }));
    const p = await waitPod(id, 'Stopped', (p) => p.status.phase === 'Stopped');
    t.equal(p.status.exitCode, 137);
    t.ok(await eventSeen(id, (e) => e.reason === 'ForcedKill', 'a ForcedKill event'), 'ForcedKill event');
    t.equal(engineState(id), 'exited');
  });

  t.test('kill -9 of the agent: containers are adopted on restart, no duplicates', async (t) => {
    const before = (await get(web))!;
    const cid = inspectPod(web).Id;
    const gone = await createPod('gone', { command: ['sleep', '1000'] });
    await waitPod(gone, 'Running', (p) => p.status.phase === 'Running');
    const killedAt = unixNow();
    await agent.process.stop('SIGKILL');
    t.equal(engineState(web), 'running', 'the container outlives a killed agent');
    // While the agent is away the pod 'gone' is deleted by someone else: its container must go.
    await client.delete().key(keyOf('pods', gone));
    await client.delete().key(nameKey('pods', 'gone'));
    await agent.start();
    await waitFor(() => containersOf(gone).length === 0, { what: 'the container of the deleted pod to be removed' });
    // The new agent has synced web once it acts on a change to it (a pod's syncs run one after
    // another): had adopting it restarted the container, that would be done and recorded by then.
    const startedAt = inspectPod(web).State.StartedAt;
    await change(web, (p) => ({ ...p, desired: 'paused' }));
    await waitPod(web, 'Paused by the new agent', (p) => p.status.phase === 'Paused');
    t.same(engineActions(cid, killedAt), ['pause'], 'since the kill the engine only paused the container: no stop, no start');
    t.equal(inspectPod(web).State.StartedAt, startedAt, 'the same run');
    await change(web, (p) => ({ ...p, desired: 'running' }));
    const after = await waitPod(web, 'Running', (p) => p.status.phase === 'Running');
    t.equal(after.status.restarts, before.status.restarts, 'not restarted');
    t.same(containersOf(web), [cid], 'the same single container');
    t.equal(engineState(web), 'running');
    const listed = (await (await agentApi(`/v1/nodes`)).json()) as { items: Array<{ pods: Array<{ id: string; containerId?: string }> }> };
    t.equal(listed.items[0]?.pods.find((p) => p.id === web)?.containerId, cid, 'the agent reports the adopted container');
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
    t.equal(res.status, 200, 'still answers');
  });

  t.test('another node\'s container of the pod on this engine: exited or live (its agent gone), it is replaced', async (t) => {
    // Nodes sharing one engine (npm start): a pod that moved here meets the container its old node has not removed yet.
    const elsewhere = new LeaderStandIn(client, () => 'elsewhere', { image: IMAGE, cpu: 0.25 });
    const moveHere = (id: string) => change(id, (p) => ({ ...p, status: { ...p.status, nodeId } }));
    const leftover = (id: string, name: string, live: boolean) =>
      docker(live ? 'run' : 'create', ...(live ? ['-d'] : []), '--name', `berth-pod-${name}-${id}`, '--label', `berth.pod=${id}`, '--label', 'berth.node=elsewhere', IMAGE, 'sleep', '3600').trim();

    const exitedId = await elsewhere.createPod('heir', { command: ['sleep', '3600'] });
    const old = leftover(exitedId, 'heir', false);
    await moveHere(exitedId);
    await waitPod(exitedId, 'Running here', (p) => p.status.phase === 'Running');
    t.same(containersOf(exitedId).filter((c) => c.startsWith(old)), [], 'the other node\'s exited container was replaced');
    t.equal(inspectPod(exitedId).Config.Labels['berth.node'], nodeId, 'by this node\'s');

    const liveId = await elsewhere.createPod('twin', { command: ['sleep', '3600'] });
    const running = leftover(liveId, 'twin', true);
    await moveHere(liveId);
    // The pod is bound here only after the leader moved it: a live container of the old node is its dead agent's orphan.
    await waitPod(liveId, 'Running here', (p) => p.status.phase === 'Running', 20_000);
    t.ok(agent.process.recentOutput(400).includes("removing another node's orphaned container"), 'the agent says it removed the orphan');
    t.same(containersOf(liveId).filter((c) => c.startsWith(running)), [], 'the orphan is gone');
    t.equal(containersOf(liveId).length, 1, 'one container, its own');
    t.equal(inspectPod(liveId).Config.Labels['berth.node'], nodeId, "and it is this node's");
    for (const id of [exitedId, liveId]) await change(id, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    await waitFor(async () => (await get(exitedId)) === undefined && (await get(liveId)) === undefined, { what: 'both deleted' });
  });

  t.test('deletionRequested removes the container, the record and the name claim', async (t) => {
    await change(web, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    await waitFor(async () => (await get(web)) === undefined, { what: 'the record to be deleted' });
    t.equal(await client.get(nameKey('pods', 'web')).string(), null, 'the name is free again');
    t.same(containersOf(web), [], 'the container is gone');
    t.equal((await agentApi(`/v1/pods/${web}/logs`)).status, 404);
  });
});
