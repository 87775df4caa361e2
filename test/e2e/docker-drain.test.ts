import t from 'tap';
import type { NodeView, PodRecord } from '@berth/core';
import { AgentProcess, waitFor } from '@berth/devcluster';
import { clusterFor, docker, dockerProblem, tempDir } from '../helpers/fixtures.js';

// Two docker-runtime agents on one engine, as `npm start` runs them: a drain
// moves a pod from one node to the other through the two-phase eviction. The
// pod must end Running on the new node (in `npm start` it once failed
// CreateFailed: the old node's container still held its name), and the engine
// must never show two live containers of it. The name conflict itself is made
// certain in docker-runtime.test.ts; here the whole path runs.

const IMAGE = 'berth-test/busybox:local';

t.test('a drain between two nodes on one Docker engine moves the pod, never running it twice', async (t) => {
  const problem = dockerProblem(IMAGE, 'deploy/docker/build-test-images.sh');
  if (problem) {
    t.fail(`this test needs a Docker engine and cannot get one: ${problem}`);
    return;
  }
  const cluster = await clusterFor(t, { controllers: 1, controllerArgs: ['--policy', 'first-fit'] });
  const logDir = tempDir(t, 'berth-docker-drain-');
  const agents = ['dd1', 'dd2'].map(
    (name) => new AgentProcess({ name, etcd: cluster.etcd.endpoint, logDir, runtime: 'docker', cpu: 2, extraArgs: ['--stop-timeout', '1', '--heartbeat-interval', '500'] }),
  );
  let podId = '';
  t.teardown(async () => {
    await Promise.all(agents.map((a) => a.process.stop('SIGKILL')));
    if (podId) {
      const left = docker('ps', '-aq', '--filter', `label=berth.pod=${podId}`).split('\n').filter(Boolean);
      if (left.length > 0) docker('rm', '-f', ...left);
    }
  });
  await cluster.waitForAgreedLeader();
  const c = cluster.controllers[0]!;
  await agents[0]!.start();
  const node = async (name: string) => (await c.request('GET', `/v1/nodes/${name}`)).body as NodeView;
  await waitFor(async () => (await node('dd1')).status === 'Ready' || undefined, { what: 'dd1 Ready' });
  const created = await c.request('POST', '/v1/pods', { name: 'mover', image: IMAGE, command: ['sleep', '3600'], cpu: 0.25 });
  t.equal(created.status, 201);
  podId = (created.body as PodRecord).id;
  const pod = async () => (await c.request('GET', `/v1/pods/${podId}`)).body as PodRecord;
  const dd1 = (await node('dd1')).id;
  await waitFor(async () => ((p) => p.status.phase === 'Running' && p.status.nodeId === dd1)(await pod()) || undefined, { what: 'mover Running on dd1', timeoutMs: 30_000 });
  await agents[1]!.start();
  const dd2 = (await waitFor(async () => ((n) => (n.status === 'Ready' ? n : undefined))(await node('dd2')), { what: 'dd2 Ready' })).id;

  // The engine's view, every 100 ms: live containers of the pod, by node label.
  const doubles: string[] = [];
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const live = docker('ps', '--filter', `label=berth.pod=${podId}`, '--format', '{{.Label "berth.node"}}').split('\n').filter(Boolean);
      samples += 1;
      if (live.length > 1) doubles.push(`${new Date().toISOString()}: live on ${live.join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    t.equal((await c.request('POST', '/v1/nodes/dd1/drain')).status, 200);
    const moved = await waitFor(async () => ((p) => (p.status.nodeId === dd2 && (p.status.phase === 'Running' || p.status.phase === 'Failed') ? p : undefined))(await pod()), {
      what: 'mover to leave dd1',
      timeoutMs: 30_000,
    });
    t.equal(moved.status.phase, 'Running', `mover Running on dd2 (${moved.status.reason}: ${moved.status.message})`);
  } finally {
    sampling = false;
    await sampler;
  }
  t.same(doubles, [], `never two live containers of the pod (${samples} samples of the engine)`);
  const live = docker('ps', '--filter', `label=berth.pod=${podId}`, '--format', '{{.Label "berth.node"}}').split('\n').filter(Boolean);
  t.same(live, [dd2], 'one live container, dd2\'s');
});
