import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { EtcdPermissionDeniedError, type Etcd3 } from 'etcd3';
import { keyOf, type PodRecord } from '@berth/core';
import { createEtcdClient, type EtcdCredentials } from '@berth/store';
import { AgentProcess, enableEtcdAuth, EtcdServer, LocalCluster, makeTestPki, waitFor, type ControllerProcess } from '@berth/devcluster';
import { agentCaller } from '../helpers/agent-api.js';
import { tempDir } from '../helpers/fixtures.js';
import { killPodProcesses } from '../helpers/pod-processes.js';

// Components with their own etcd credentials, against a real etcd with auth on: agents cannot write what is
// the controllers' (etcd refuses), and the cluster still works (pods run, logs come back, failover). Then the
// same over TLS with client certificates, each component identified by its certificate's CN.

const TICKS = [process.execPath, '-e', "let i = 0; setInterval(() => console.log('tick ' + i++), 100)"];

/** An etcd for this test (extra flags, TLS), destroyed at teardown. */
async function etcdWith(t: Test, dir: string, opts: Parameters<typeof EtcdServer.start>[0] = {}): Promise<EtcdServer> {
  const etcd = await EtcdServer.start({ dataDir: path.join(dir, 'etcd'), logDir: dir, ...opts });
  t.teardown(() => etcd.destroy());
  return etcd;
}

function client(t: Test, endpoint: string, credentials: EtcdCredentials): Etcd3 {
  const c = createEtcdClient(endpoint, { credentials });
  t.teardown(() => c.close());
  return c;
}

/** Controllers (with `controllerArgs`) and one process-runtime agent (with `agentArgs`), stopped at teardown. */
async function clusterWith(t: Test, dir: string, etcd: EtcdServer, controllerArgs: string[], agentArgs: string[], controllers = 3) {
  const cluster = await LocalCluster.start({ dir, etcd, controllers, controllerArgs: ['--node-grace', '3', ...controllerArgs] });
  const agent = new AgentProcess({ name: 'n1', etcd: etcd.endpoint, logDir: dir, runtime: 'process', extraArgs: ['--heartbeat-ttl', '2', '--stop-timeout', '1', ...agentArgs] });
  const pods = new Set<string>();
  t.teardown(async () => {
    if (!t.passing()) {
      for (const c of cluster.running) t.comment(`${c.id}: leader ${JSON.stringify(await c.leader().catch((e: Error) => e.message))} self ${JSON.stringify((await c.cluster().catch(() => undefined))?.self)}`);
      for (const p of [...cluster.controllers.map((c) => c.process), agent.process]) t.comment(`--- ${p.name} ---\n${p.recentOutput(30)}`);
    }
    await agent.process.stop('SIGTERM');
    killPodProcesses(pods);
    await cluster.stop(true);
  });
  await agent.start();
  await cluster.waitForAgreedLeader();
  return { cluster, agent, pods };
}

/** Creates a pod of ticks through `c` and waits until it runs. */
async function runPod(c: ControllerProcess, name: string, pods: Set<string>): Promise<PodRecord> {
  const res = await c.request('POST', '/v1/pods', { name, command: TICKS, cpu: 0.1, memoryMiB: 32 });
  if (res.status !== 201) throw new Error(`POST /v1/pods ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  pods.add(res.body.id);
  return waitFor(
    async () => {
      const p = (await c.request('GET', `/v1/pods/${name}`)).body as PodRecord;
      return p.status.phase === 'Running' ? p : undefined;
    },
    { what: `${name} Running`, timeoutMs: 30_000 },
  );
}

/** Logs through the controller work; straight at the agent without the node credential they answer 401. */
async function checkLogs(t: Test, c: ControllerProcess, root: Etcd3, pod: PodRecord): Promise<void> {
  const text = await waitFor(
    async () => {
      const res = await c.request('GET', `/v1/pods/${pod.name}/logs?tail=3`);
      return res.status === 200 && /tick \d+\n$/.test(res.body) ? (res.body as string) : undefined;
    },
    { what: `logs of ${pod.name} through ${c.id}` },
  );
  t.match(text, /^tick \d+\n/, `GET /v1/pods/${pod.name}/logs through the controller`);
  const agentUrl = (JSON.parse((await root.get(keyOf('nodes', pod.status.nodeId!)).string())!) as { address: string }).address;
  const bare = await fetch(`${agentUrl}/v1/pods/${pod.id}/logs`);
  t.equal(bare.status, 401, 'the same logs straight from the agent, without its node credential: 401');
  t.equal((await fetch(`${agentUrl}/v1/nodes`)).status, 401, "the agent's node list too");
  t.equal((await fetch(`${agentUrl}/healthz`)).status, 200, '/healthz stays open');
  const withCred = await agentCaller(root, () => pod.status.nodeId!)(`/v1/pods/${pod.id}/logs?tail=1`);
  t.equal(withCred.status, 200, 'with the credential the controllers read from etcd: 200');
}

/** etcd refuses each write (and read) the agent's credentials must not do, and allows those it needs. */
async function checkAgentLimits(t: Test, agent: Etcd3, controller: Etcd3): Promise<void> {
  const denied = async (what: string, op: () => Promise<unknown>) => {
    const err = await op().then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof EtcdPermissionDeniedError, `agent: ${what} is refused (${err instanceof Error ? err.message : 'allowed!'})`);
  };
  for (const key of ['/berth/allocations/x', '/berth/election/controller/x', '/berth/leader', '/berth/services/x', '/berth/jobs/x', '/berth/jobclaims/x', '/berth/tokens/x', '/berth/audit/x']) {
    await denied(`put ${key}`, () => agent.put(key).value('{}').exec());
  }
  await denied('delete /berth/election/ (a leader key)', () => agent.delete().prefix('/berth/election/').exec());
  await denied('read /berth/tokens/', () => agent.getAll().prefix('/berth/tokens/').keys());
  await denied("read another node's credential", () => agent.getAll().prefix('/berth/nodecreds/').keys());
  t.ok((await agent.getAll().prefix('/berth/pods/').keys()).length >= 1, 'agent: reads pods');
  t.ok((await controller.getAll().prefix('/berth/nodecreds/').keys()).length >= 1, 'controller: reads node credentials');
}

/**
 * No component's log shows a refused etcd request: the roles grant all that Berth's own code does. (Watches
 * refused for a stale token after etcd restarted are logged, and renewed: not a refusal.)
 */
function checkNoDenials(t: Test, dir: string): void {
  const logs = fs.readdirSync(dir).filter((f) => /^(c\d|agent-.*)\.log$/.test(f));
  const denials = logs.filter((f) => /permission denied|user name is empty/.test(fs.readFileSync(path.join(dir, f), 'utf8')));
  t.same(denials, [], `no refused etcd request in ${logs.join(', ')}`);
}

t.test('etcd auth on: each component with its own user', async (t) => {
  const dir = tempDir(t, 'berth-etcd-auth-');
  // Tokens expire after 2 s unused (etcd's default is 300 s): the clients must keep renewing them.
  const etcd = await etcdWith(t, dir, { extraArgs: ['--auth-token-ttl', '2'] });
  const auth = await enableEtcdAuth(etcd.endpoint, path.join(dir, 'etcd-auth'));
  for (const f of Object.values(auth.passwordFiles)) t.equal(fs.statSync(f).mode & 0o777, 0o600, `${path.basename(f)} is 0600`);
  await t.rejects(client(t, etcd.endpoint, {}).get('/berth/pods/x').string(), /user name is empty/, 'an anonymous client is refused');
  const root = client(t, etcd.endpoint, auth.root);
  const { cluster, agent, pods } = await clusterWith(t, dir, etcd, auth.controllerArgs, auth.agentArgs);
  t.notOk(cluster.controllers[0]!.process.recentOutput(200).includes(fs.readFileSync(auth.passwordFiles.controller, 'utf8').trim()), 'the password is not logged');

  const c = cluster.controllers[0]!;
  const first = await runPod(c, 'p1', pods);
  t.pass('a pod runs on the agent (its pod status writes pass)');
  await checkAgentLimits(t, client(t, etcd.endpoint, auth.agent), client(t, etcd.endpoint, auth.controller));
  await checkLogs(t, c, root, first);

  t.test('etcd restarts (every token it issued is gone): watches and writes carry on with new tokens', async (t) => {
    await etcd.stop();
    await etcd.start();
    const leader = await cluster.waitForAgreedLeader({ timeoutMs: 30_000 });
    const pod = await runPod(leader, 'p2', pods);
    t.equal(pod.status.nodeId, first.status.nodeId, 'scheduled by the leader, run by the agent');
    await checkLogs(t, leader, root, pod);
  });

  t.test('failover: the leader is killed; a new one is elected and schedules', async (t) => {
    const old = await cluster.waitForAgreedLeader();
    await old.process.stop('SIGKILL');
    const next = await cluster.waitForAgreedLeader({ excluding: old.id, timeoutMs: 20_000 });
    t.not(next.id, old.id, `${next.id} took over from ${old.id}`);
    const pod = await runPod(next, 'p3', pods);
    t.equal(pod.status.phase, 'Running');
    await checkLogs(t, next, root, pod);
  });

  t.test('logs', async (t) => {
    checkNoDenials(t, dir);
    t.ok(agent.process.running, 'the agent ran throughout');
  });
});

t.test('etcd over TLS with client certificates: components identified by their certificate', async (t) => {
  const dir = tempDir(t, 'berth-etcd-tls-');
  const pki = makeTestPki(path.join(dir, 'pki'), ['root', 'controller', 'agent']);
  const etcd = await etcdWith(t, dir, { tls: { ca: pki.ca, server: pki.server, probe: pki.clients.root! } });
  t.match(etcd.endpoint, /^https:/);
  const tlsAs = (cn: string): EtcdCredentials => ({ ca: fs.readFileSync(pki.ca), cert: fs.readFileSync(pki.clients[cn]!.cert), key: fs.readFileSync(pki.clients[cn]!.key) });
  // Auth on: with --client-cert-auth etcd takes a certificate's CN as the user when no password is sent.
  const auth = await enableEtcdAuth(etcd.endpoint, path.join(dir, 'etcd-auth'), tlsAs('root'));
  const flags = (cn: string) => ['--etcd-ca', pki.ca, '--etcd-cert', pki.clients[cn]!.cert, '--etcd-key', pki.clients[cn]!.key];
  const { cluster, pods } = await clusterWith(t, dir, etcd, flags('controller'), flags('agent'), 2);
  const c = cluster.controllers[0]!;
  const pod = await runPod(c, 'tls-1', pods);
  t.pass('a pod runs: controllers and the agent talk to etcd over TLS');
  const root = client(t, etcd.endpoint, auth.root);
  await checkAgentLimits(t, client(t, etcd.endpoint, tlsAs('agent')), client(t, etcd.endpoint, tlsAs('controller')));
  await checkLogs(t, c, root, pod);
  const plain = createEtcdClient(etcd.endpoint.replace('https:', 'http:'), { callTimeoutMs: 2000 });
  t.teardown(() => plain.close());
  await t.rejects(plain.get('/berth/pods/x').string(), 'a client without TLS gets nothing');
  checkNoDenials(t, dir);
});
