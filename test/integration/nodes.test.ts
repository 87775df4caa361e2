import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { deadAfterMs, prefixes, type BerthEvent, type NodeView } from '@berth/core';
import { AgentProcess, repoRoot, waitFor, type ControllerProcess } from '@berth/devcluster';
import { clientFor, clusterFor, tempDir } from '../helpers/fixtures.js';
import { removeNodeCgroups } from '../helpers/pod-processes.js';

const HEARTBEAT_TTL = 3;
const GRACE = 3;

/** Calls the API of one replica. */
const api = (c: ControllerProcess, method: string, path: string, body?: unknown) => c.request(method, path, body);

const node = async (c: ControllerProcess, name: string) => (await api(c, 'GET', `/v1/nodes/${name}`)).body as NodeView;
/** Command lines of every process on the machine. */
const psArgs = () => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n');
const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test('nodes: agents, heartbeats through leases, lifecycle, provisioning', async (t) => {
  // No Docker engine for these replicas: provisioning falls back to agent processes (nodes-docker.test covers containers).
  const noDocker = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
  const cluster = await clusterFor(t, { controllerArgs: ['--node-grace', String(GRACE), '--provision-timeout', '20'], controllerEnv: noDocker });
  const client = clientFor(t, cluster.etcd.endpoint);
  const logDir = tempDir(t, 'berth-agents-');
  const agentArgs = ['--heartbeat-ttl', String(HEARTBEAT_TTL), '--heartbeat-interval', '500', '--report-interval', '500'];
  const agents = ['n1', 'n2'].map((name) => new AgentProcess({ name, etcd: cluster.etcd.endpoint, logDir, cpu: 2, memoryMiB: 1024, extraArgs: agentArgs }));
  t.teardown(async () => {
    await Promise.all(agents.map((a) => a.process.stop('SIGKILL')));
    // A SIGKILLed agent leaves its node's cgroups behind (there are no pods in them here).
    for (const n of ['n1', 'n2']) removeNodeCgroups(n);
  });
  await Promise.all(agents.map((a) => a.start()));
  const [n1, n2] = agents as [AgentProcess, AgentProcess];
  await cluster.waitForAgreedLeader();
  const c = cluster.controllers[1]!; // any replica answers

  t.test('agents register: listed Ready with capacity and usage', async (t) => {
    const items = await waitFor(
      async () => {
        const list = (await api(c, 'GET', '/v1/nodes')).body.items as NodeView[];
        return list.length === 2 && list.every((n) => n.status === 'Ready' && n.usage !== null) ? list : undefined;
      },
      { what: 'both nodes Ready with usage' },
    );
    for (const n of items) {
      t.same(n.capacity, { cpu: 2, memoryMiB: 1024 }, `${n.name} capacity`);
      t.ok(n.usage!.memoryMiB > 0 && n.usage!.cpuPercent >= 0 && n.usage!.load1 >= 0, `${n.name} reports usage from /proc`);
      t.ok(n.lastHeartbeat, `${n.name} has a last heartbeat`);
      t.match(n.id, /^[0-9a-z]{12}$/);
    }
    const ready = await api(c, 'GET', '/v1/nodes?status=Ready');
    t.equal(ready.body.items.length, 2, 'filter by status');
    const byId = await node(c, items[0]!.id);
    t.equal(byId.name, items[0]!.name, 'a node can be fetched by id or by name');
  });

  t.test('SIGKILL an agent: NotReady within TTL + 1 s, Dead after the grace, Ready again on restart with the same id', async (t) => {
    const before = await node(c, 'n1');
    const killedAt = Date.now();
    n1.process.signal('SIGKILL');
    await n1.process.waitExit();
    const notReady = await waitFor(async () => ((await node(c, 'n1')).status === 'NotReady' ? Date.now() : undefined), {
      what: 'n1 NotReady',
      timeoutMs: (HEARTBEAT_TTL + 1) * 1000,
    });
    t.comment(`NotReady ${notReady - killedAt} ms after SIGKILL`);
    t.equal((await node(c, 'n1')).reason, 'HeartbeatLost');
    // The grace, stretched to the node's own fence budget (its agent assumes the default grace, 5 s, so here 5 s, not 3).
    const deadAfter = deadAfterMs(GRACE * 1000, before.fence);
    await waitFor(async () => (await node(c, 'n1')).status === 'Dead', { what: 'n1 Dead', timeoutMs: deadAfter + 3000 });
    t.ok(Date.now() - notReady >= deadAfter - 200, `Dead only after the grace stretched to the fence budget (${deadAfter} ms)`);
    await n1.start();
    const back = await waitFor(async () => {
      const n = await node(c, 'n1');
      return n.status === 'Ready' ? n : undefined;
    }, { what: 'n1 Ready again' });
    t.equal(back.id, before.id, 'same node id after restart');
    t.equal((await api(c, 'GET', '/v1/nodes')).body.items.length, 2, 'no duplicate node');
  });

  t.test('SIGTERM an agent: it deregisters cleanly and re-joins on restart', async (t) => {
    n2.process.signal('SIGTERM');
    t.equal(await n2.process.waitExit(), 0, 'the agent exits cleanly');
    const gone = await waitFor(async () => {
      const n = await node(c, 'n2');
      return n.status === 'NotReady' ? n : undefined;
    }, { what: 'n2 NotReady at once', timeoutMs: 2000 });
    t.equal(gone.reason, 'AgentDeregistered');
    t.ok(gone.deregisteredAt, 'marked deregistered: its pods are treated as on a drained node');
    await n2.start();
    const back = await waitFor(async () => {
      const n = await node(c, 'n2');
      return n.status === 'Ready' ? n : undefined;
    }, { what: 'n2 Ready again' });
    t.equal(back.deregisteredAt, undefined, 're-joining clears the deregistration');
  });

  t.test('leader killed while agents heartbeat: no false NotReady or Dead', async (t) => {
    const since = new Date().toISOString();
    const leader = await cluster.waitForAgreedLeader();
    leader.process.signal('SIGKILL');
    await leader.process.waitExit();
    const next = await cluster.waitForAgreedLeader({ excluding: leader.id });
    // Give the new leader a full grace period to misjudge, if it would.
    await waitFor(async () => Date.now() - Date.parse(since) > (GRACE + 1) * 1000, { what: 'a grace period', timeoutMs: (GRACE + 3) * 1000 });
    const nodes = (await api(next, 'GET', '/v1/nodes')).body.items as NodeView[];
    t.same(nodes.map((n) => n.status), ['Ready', 'Ready']);
    const res = await client.getAll().prefix(prefixes.events).exec();
    const bad = res.kvs
      .map((kv) => JSON.parse(kv.value.toString()) as BerthEvent)
      .filter((e) => e.time > since && (e.reason === 'NodeNotReady' || e.reason === 'NodeDead'));
    t.same(bad, [], 'no node status change during the failover');
    await leader.start();
  });

  t.test('cordon, uncordon, drain', async (t) => {
    t.equal((await api(c, 'POST', '/v1/nodes/n1/cordon')).body.cordoned, true);
    const drained = (await api(c, 'POST', '/v1/nodes/n1/drain')).body as NodeView;
    t.ok(drained.cordoned && drained.draining);
    const un = (await api(c, 'POST', '/v1/nodes/n1/uncordon')).body as NodeView;
    t.ok(!un.cordoned && !un.draining);
  });

  t.test('bad input is refused naming the field, and nothing is written', async (t) => {
    const keysBefore = execFileSync('etcdctl', ['--endpoints', cluster.etcd.endpoint, 'get', '--prefix', '/berth/nodes/', '--keys-only']).toString();
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ['POST', '/v1/nodes', { cpu: 0 }, 400, /body\/cpu must be > 0/],
      ['POST', '/v1/nodes', { cpu: -1 }, 400, /body\/cpu/],
      ['POST', '/v1/nodes', { cpu: 1, runtime: 'kvm' }, 400, /body\/runtime must be equal to one of the allowed values/],
      ['POST', '/v1/nodes', { cpu: 1, name: 'Bad_Name' }, 400, /body\/name must match pattern/],
      ['POST', '/v1/nodes', { cpu: 1, memoryMiB: 1.5 }, 400, /body\/memoryMiB must be integer/],
      ['POST', '/v1/nodes', { cpu: 1, colour: 'red' }, 400, /body\/colour is not a known field/],
      ['POST', '/v1/nodes', { name: 'n1', cpu: 1 }, 409, /a node named "n1" already exists/],
      ['GET', '/v1/nodes/no-such-node', undefined, 404, /node "no-such-node" not found/],
      ['POST', '/v1/nodes/no-such-node/cordon', undefined, 404, /node "no-such-node" not found/],
      ['DELETE', '/v1/nodes/no-such-node', undefined, 404, /node "no-such-node" not found/],
      ['GET', '/v1/nodes?status=Sleepy', undefined, 400, /querystring\/status/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await api(c, method, path, body);
      t.equal(res.status, status, `${method} ${path} ${JSON.stringify(body ?? '')} -> ${status}`);
      t.match(res.body.message, message);
      t.type(res.body.error, 'string');
    }
    const keysAfter = execFileSync('etcdctl', ['--endpoints', cluster.etcd.endpoint, 'get', '--prefix', '/berth/nodes/', '--keys-only']).toString();
    t.equal(keysAfter, keysBefore, 'no node was written');
  });

  t.test('POST /v1/nodes without a Docker engine starts an agent process; DELETE stops it', async (t) => {
    const created = await api(c, 'POST', '/v1/nodes', { name: 'prov-1', cpu: 1, memoryMiB: 256, runtime: 'simulated', labels: { zone: 'a' } });
    t.equal(created.status, 201, JSON.stringify(created.body).slice(0, 300));
    const n = created.body as NodeView;
    t.equal(n.status, 'Ready', 'answered once registered and Ready');
    t.equal(n.provisioner?.kind, 'process');
    const pid = n.provisioner?.pid ?? 0;
    t.ok(pidAlive(pid), `agent process ${pid} runs`);
    t.same(n.capacity, { cpu: 1, memoryMiB: 256 });
    const other = cluster.controllers.find((x) => x !== c && x.process.running)!;
    const deleted = await api(other, 'DELETE', '/v1/nodes/prov-1');
    t.equal(deleted.status, 200, 'any replica can delete it');
    await waitFor(() => !pidAlive(pid), { what: 'the agent process to exit' });
    t.equal((await api(c, 'GET', '/v1/nodes/prov-1')).status, 404, 'the node is gone');
    const again = await api(c, 'POST', '/v1/nodes', { name: 'prov-1', cpu: 1, runtime: 'simulated' });
    t.equal(again.status, 201, 'the name is free again');
    await api(c, 'DELETE', '/v1/nodes/prov-1');
  });

  t.test('a node deleted while it is being provisioned: the POST answers 409, and nothing is left behind', async (t) => {
    const posted = api(c, 'POST', '/v1/nodes', { name: 'prov-race', cpu: 1, runtime: 'simulated' });
    // DELETE it as soon as its record exists (it is written first, then the agent is started and awaited).
    const placeholder = await waitFor(async () => {
      const res = await api(c, 'GET', '/v1/nodes/prov-race');
      return res.status === 200 ? (res.body as NodeView) : undefined;
    }, { what: 'the node record of the POST', intervalMs: 20 });
    t.equal(placeholder.reason, 'Provisioning');
    t.equal((await api(c, 'DELETE', '/v1/nodes/prov-race')).status, 200, 'the DELETE wins');
    const res = await posted;
    t.equal(res.status, 409, JSON.stringify(res.body).slice(0, 300));
    t.equal(res.body.error, 'CONFLICT');
    t.match(res.body.message, 'node "prov-race" was deleted while it was being provisioned');
    t.equal((await api(c, 'GET', '/v1/nodes/prov-race')).status, 404, 'no node record left');
    t.equal(await client.get('/berth/names/nodes/prov-race').string(), null, 'the name is released');
    await waitFor(() => !psArgs().some((a) => a.includes('--name prov-race')), { what: 'no agent process of prov-race left' });
  });

  t.test('an agent that cannot register: 504 after the timeout, and nothing is left behind', async (t) => {
    // A replica whose environment breaks every agent it starts (a bad BERTH_LABELS).
    const brokenEnv = { ...noDocker, BERTH_LABELS: 'not-a-label' };
    // 1. Such an agent exits on its own saying why: run one directly and wait for its exit (no deadline).
    //    How long that took is how long an agent needs to start on this machine under its load right now.
    const startedAt = Date.now();
    const direct = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const args = [path.join(repoRoot, 'apps/agent/dist/main.js'), '--etcd', cluster.etcd.endpoint, '--name', 'doomed-direct', '--cpu', '1'];
      const child = execFile(process.execPath, args, { env: { ...process.env, ...brokenEnv } }, (_err, stdout, stderr) => resolve({ code: child.exitCode, output: stdout + stderr }));
    });
    const startupMs = Date.now() - startedAt;
    t.not(direct.code, 0, 'the agent refuses to start');
    t.match(direct.output, /--labels: expected k=v/, 'and says why');
    // 2. The provisioning timeout is a multiple of that (2 s at least), so the agent has failed and said so
    //    before the replica gives up, however slow the machine is, and the test stays short when it is not.
    const timeoutS = Math.max(2, Math.ceil((5 * startupMs) / 1000));
    t.comment(`an agent took ${startupMs} ms to fail; provisioning timeout ${timeoutS} s`);
    const broken = await clusterFor(t, { etcd: cluster.etcd, controllers: 1, controllerArgs: ['--provision-timeout', String(timeoutS)], controllerEnv: brokenEnv });
    const b = broken.controllers[0]!;
    const res = await api(b, 'POST', '/v1/nodes', { name: 'doomed', cpu: 1 });
    t.equal(res.status, 504);
    t.equal(res.body.error, 'TIMEOUT');
    t.match(res.body.message, `did not register within ${timeoutS} s; removed its process`);
    t.match(res.body.message, /--labels: expected k=v/, 'the agent\'s own error is shown');
    t.equal((await api(c, 'GET', '/v1/nodes/doomed')).status, 404, 'no node record left');
    t.equal(await client.get('/berth/names/nodes/doomed').string(), null, 'the name is released');
    t.equal((await api(c, 'GET', '/v1/nodes/doomed-direct')).status, 404, 'the agent run directly registered nothing either');
  });
});
