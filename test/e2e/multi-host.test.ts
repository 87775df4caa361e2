import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { endpointHost, podEndpoint, type NodeRecord, type PodRecord } from '@berth/core';
import { AgentProcess, ControllerProcess, EtcdServer, waitFor } from '@berth/devcluster';
import { tempDir } from '../helpers/fixtures.js';
import { netnsProblem, simulatedHosts, type SimHost } from '../helpers/netns.js';
import { killPodProcesses } from '../helpers/pod-processes.js';

// Berth across hosts: etcd, a controller and two process-runtime agents each
// on a host of its own (network namespaces on one switch; see DEVELOPERS.md),
// every one of them started without --host or --advertise-address. The
// addresses they hand out must be the ones the other hosts reach them at (the
// interface that reaches etcd), and the controller's host must reach the
// agents (logs) and the pods (their node's address and host port) on both.

const problem = netnsProblem();

/** What one GET answered (or the error). */
interface Answer {
  url: string;
  status?: number;
  body?: string;
  /** `x-berth-pod`, when the controller's proxy answered. */
  pod?: string;
  error?: string;
}

/** GETs every URL at once from `host` (one node process inside its namespace). */
async function getFrom(host: SimHost, script: string, urls: string[], token = ''): Promise<Answer[]> {
  return JSON.parse(await host.run(process.execPath, [script, JSON.stringify(urls), token])) as Answer[];
}

t.test('two agents and a controller on three hosts, etcd on a fourth', { skip: problem ?? false }, async (t) => {
  const logDir = tempDir(t, 'berth-multihost-');
  const net = simulatedHosts(t, ['etcd', 'ctl', 'h1', 'h2']);
  const [etcdHost, ctl, h1, h2] = ['etcd', 'ctl', 'h1', 'h2'].map((n) => net.host(n)) as [SimHost, SimHost, SimHost, SimHost];

  const etcd = await EtcdServer.start({ dataDir: path.join(logDir, 'etcd-data'), logDir, host: etcdHost.ip, wrap: etcdHost.wrap });
  t.teardown(() => etcd.destroy());
  // No --host, no --advertise-*: the defaults are under test. The test process reaches it over its own leg on the switch.
  // Listening beyond loopback needs auth on: the admin token file.
  const controller = await ControllerProcess.start({ id: 'c1', etcd: etcd.endpoint, logDir, wrap: ctl.wrap, reachAt: ctl.ip, adminTokenFile: path.join(logDir, 'admin-token') });
  t.teardown(() => controller.process.stop('SIGTERM'));
  const agents = [h1, h2].map(
    (h) =>
      new AgentProcess({
        name: h.name, etcd: etcd.endpoint, logDir, wrap: h.wrap, runtime: 'process', cpu: 2, memoryMiB: 2048,
        extraArgs: ['--labels', `host=${h.name}`, '--stop-timeout', '1'],
      }),
  );
  const podIds = new Set<string>();
  t.teardown(async () => {
    if (!t.passing()) for (const p of [controller.process, ...agents.map((a) => a.process)]) t.comment(`--- ${p.name} ---\n${p.recentOutput(30)}`);
    await Promise.all(agents.map((a) => a.process.stop('SIGTERM', 5000)));
    killPodProcesses(podIds);
  });
  await Promise.all(agents.map((a) => a.start()));
  await controller.waitReady(20_000);

  const api = (method: string, p: string, body?: unknown) => controller.request(method, p, body, 10_000);
  const nodes = await waitFor(
    async () => {
      const items = (await api('GET', '/v1/nodes?status=Ready')).body.items as NodeRecord[];
      return items.length === 2 ? items : undefined;
    },
    { what: '2 Ready nodes', timeoutMs: 20_000 },
  );

  t.test('every address handed out is the host address that reaches etcd, not loopback', async (t) => {
    for (const h of [h1, h2]) {
      const node = nodes.find((n) => n.name === h.name)!;
      t.equal(endpointHost(node), h.ip, `node ${h.name} is at ${node.address}`);
    }
    for (const a of agents) t.match(a.process.recentOutput(200), /"addressFrom":"route to etcd"/, `${a.name} took its address from the route to etcd`);
    const leader = (await api('GET', '/v1/leader')).body as { address: string };
    t.equal(leader.address, `http://${ctl.ip}:${controller.port}`, 'the controller advertises its host address');
    t.match(controller.process.recentOutput(200), /"listen":"0\.0\.0\.0"/, 'and listens on every interface, since that address is not loopback');
  });

  // Answers its pod id on $PORT, on every interface (the node's address included).
  const server = path.join(logDir, 'server.js');
  fs.writeFileSync(
    server,
    `const http = require('node:http');
     http.createServer((req, res) => res.end(process.env.BERTH_POD_ID))
       .listen(Number(process.env.PORT), () => console.log(process.env.BERTH_POD_NAME + ' listening on ' + process.env.PORT));`,
  );
  const probe = path.join(logDir, 'probe.mjs');
  fs.writeFileSync(
    probe,
    `const out = await Promise.all(JSON.parse(process.argv[2]).map(async (url) => {
       try {
         const res = await fetch(url, { signal: AbortSignal.timeout(5000), headers: process.argv[3] ? { authorization: 'Bearer ' + process.argv[3] } : {} });
         const pod = res.headers.get('x-berth-pod');
         return { url, status: res.status, body: await res.text(), ...(pod === null ? {} : { pod }) };
       } catch (err) {
         return { url, error: String(err.cause ?? err) };
       }
     }));
     console.log(JSON.stringify(out));`,
  );

  const pods: PodRecord[] = [];
  for (const h of [h1, h2]) {
    const res = await api('POST', '/v1/pods', { name: `web-${h.name}`, command: [process.execPath, server], cpu: 0.25, memoryMiB: 64, ports: [8080], nodeSelector: { host: h.name } });
    t.equal(res.status, 201, `pod web-${h.name} created`);
    podIds.add(res.body.id);
  }
  for (const h of [h1, h2]) {
    pods.push(
      await waitFor(
        async () => {
          const p = (await api('GET', `/v1/pods/web-${h.name}`)).body as PodRecord;
          return p.status.phase === 'Running' && p.status.hostPort !== undefined ? p : undefined;
        },
        { what: `web-${h.name} Running`, timeoutMs: 20_000 },
      ),
    );
  }

  t.test('from the controller host: pod logs through the controller (controller to agent, across hosts)', async (t) => {
    for (const p of pods) {
      // A pod's first line may reach its log file a moment after Running.
      await waitFor(
        async () => {
          const [r] = await getFrom(ctl, probe, [`${controller.url}/v1/pods/${p.id}/logs`], controller.token);
          return r!.status === 200 && r!.body!.includes(`${p.name} listening on ${p.status.hostPort}`);
        },
        { what: `logs of ${p.name} through the controller`, timeoutMs: 10_000 },
      );
      t.pass(`logs of ${p.name} (on ${nodes.find((n) => n.id === p.status.nodeId)!.name}) read through the controller`);
    }
  });

  t.test("from the controller host: each pod at its node's address and its host port", async (t) => {
    const targets = pods.map((p) => {
      const node = nodes.find((n) => n.id === p.status.nodeId)!;
      return { pod: p, node, url: `http://${podEndpoint(node, p)}/` };
    });
    t.same(new Set(targets.map((x) => x.node.name)), new Set(['h1', 'h2']), 'one pod on each host');
    // Running means started: wait until both servers listen, then check what each answered.
    const answers = await waitFor(
      async () => {
        const got = await getFrom(ctl, probe, targets.map((x) => x.url));
        return got.every((a) => a.status === 200) ? got : undefined;
      },
      { what: 'both pods to answer from the controller host', timeoutMs: 10_000 },
    );
    for (const [i, x] of targets.entries()) {
      t.equal(endpointHost(x.node), x.node.name === 'h1' ? h1.ip : h2.ip);
      t.same(answers[i], { url: x.url, status: 200, body: x.pod.id }, `${x.pod.name} answers at ${x.url}`);
    }
  });

  t.test("from the controller host: a service of 2 replicas, one per node, reached through the controller's proxy", async (t) => {
    // With a health check, ready means listening (without one a pod is ready once its process runs, and a
    // request that meets it before it listens ejects it for a second: then every request goes to the other).
    const created = await api('POST', '/v1/services', { name: 'hello', replicas: 2, template: { command: [process.execPath, server], cpu: 0.25, memoryMiB: 64, ports: [8080], healthCheck: { path: '/ready', intervalSeconds: 1 } } });
    t.equal(created.status, 201, 'service created');
    const view = await waitFor(
      async () => {
        const v = (await api('GET', '/v1/services/hello')).body as { status: { readyReplicas: number; endpoints: Array<{ podId: string; nodeId: string; address: string; ready: boolean }> } };
        for (const e of v.status.endpoints) podIds.add(e.podId);
        return v.status.readyReplicas === 2 ? v : undefined;
      },
      { what: 'service hello with 2 ready endpoints', timeoutMs: 20_000 },
    );
    const endpoints = view.status.endpoints;
    t.same(new Set(endpoints.map((e) => nodes.find((n) => n.id === e.nodeId)?.name)), new Set(['h1', 'h2']), 'its pods are spread, one per node');
    for (const e of endpoints) {
      const node = nodes.find((n) => n.id === e.nodeId)!;
      t.match(e.address, new RegExp(`^${endpointHost(node).replace(/\./g, '\\.')}:\\d+$`), `endpoint ${e.address} is on ${node.name}'s address`);
    }
    const answers = await getFrom(ctl, probe, Array.from({ length: 20 }, (_, i) => `${controller.url}/v1/services/hello/proxy/req-${i}`), controller.token);
    t.same(answers.filter((a) => a.status !== 200), [], 'all 20 requests answered 200');
    for (const a of answers) t.equal(a.body, a.pod, `${a.url}: answered by the pod x-berth-pod names`);
    t.same(new Set(answers.map((a) => a.body)), new Set(endpoints.map((e) => e.podId)), 'the 20 requests reached both pods, on both hosts');
  });
});
