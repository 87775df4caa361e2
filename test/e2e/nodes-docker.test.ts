import t from 'tap';
import { clusterFor, docker, dockerProblem } from '../helpers/fixtures.js';

t.test('POST /v1/nodes with a Docker engine starts a node container; DELETE removes it', async (t) => {
  const problem = dockerProblem(process.env.BERTH_IMAGE ?? 'berth:local', 'deploy/docker/build-local-image.sh');
  if (problem) {
    t.fail(`this test needs a Docker engine and cannot get one: ${problem}`);
    return;
  }
  // Every container this test may create carries the berth.node label: remove them whatever happens.
  t.teardown(() => {
    const ids = docker('ps', '-aq', '--filter', 'label=berth.provisioned-by').split('\n').filter(Boolean);
    if (ids.length > 0) docker('rm', '-f', ...ids);
  });
  const cluster = await clusterFor(t, { controllerArgs: ['--provision-timeout', '60'] });
  await cluster.waitForAgreedLeader();
  const c = cluster.controllers[0]!;

  const res = await fetch(`${c.url}/v1/nodes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'dock-1', cpu: 0.5, memoryMiB: 256, runtime: 'simulated' }),
    signal: AbortSignal.timeout(90_000),
  });
  const node = (await res.json()) as { id: string; status: string; provisioner?: { kind: string; containerId?: string }; capacity: unknown };
  t.equal(res.status, 201, JSON.stringify(node).slice(0, 400));
  t.equal(node.status, 'Ready');
  t.equal(node.provisioner?.kind, 'docker');
  t.same(node.capacity, { cpu: 0.5, memoryMiB: 256 });

  const listed = docker('ps', '--filter', `label=berth.node=${node.id}`, '--format', '{{.ID}} {{.Names}}');
  t.match(listed, /berth-node-dock-1-/, '`docker ps` shows the node container');
  const inspect = JSON.parse(docker('inspect', node.provisioner!.containerId!))[0] as {
    HostConfig: { NanoCpus: number; Memory: number; NetworkMode: string };
    Config: { Labels: Record<string, string> };
  };
  t.equal(inspect.HostConfig.NanoCpus, 500_000_000, 'CPU limit matches the request');
  t.equal(inspect.HostConfig.Memory, 256 * 1024 * 1024, 'memory limit matches the request');
  t.equal(inspect.HostConfig.NetworkMode, 'host', 'host networking');
  t.equal(inspect.Config.Labels['berth.node'], node.id);

  const del = await fetch(`${cluster.controllers[1]!.url}/v1/nodes/dock-1`, { method: 'DELETE', signal: AbortSignal.timeout(30_000) });
  t.equal(del.status, 200);
  t.equal(docker('ps', '-a', '--filter', `label=berth.node=${node.id}`, '--format', '{{.ID}}'), '', 'the container is removed');
  t.equal((await fetch(`${c.url}/v1/nodes/dock-1`)).status, 404);
});
