import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '@berth/devcluster';
import type { PodRecord } from '@berth/core';
import { podProcesses } from '../helpers/pod-processes.js';
import { HC, serviceCluster, viaProxy } from '../helpers/services.js';

t.test('services: replicas, routing through any replica, failures retried, rollouts without errors', async (t) => {
  const s = await serviceCluster(t);
  const { cluster, api, command } = s;
  const leader = await cluster.waitForAgreedLeader();
  const follower = cluster.controllers.find((c) => c.id !== leader.id)!;

  t.test('bad input is refused, naming the field', async (t) => {
    const neg = await api(follower, 'POST', '/v1/services', { name: 'neg', replicas: -1, template: { command, cpu: 0.1, ports: [8080], healthCheck: HC } });
    t.equal(neg.status, 400);
    t.match(neg.body.message, /replicas/);
    const noPort = await api(follower, 'POST', '/v1/services', { name: 'noport', replicas: 1, template: { command, cpu: 0.1 } });
    t.equal(noPort.status, 400);
    t.match(noPort.body.message, /template\/ports/);
    const wrongPort = await api(follower, 'POST', '/v1/services', { name: 'wrongport', replicas: 1, port: 9, template: { command, cpu: 0.1, ports: [8080], healthCheck: HC } });
    t.equal(wrongPort.status, 400);
    t.match(wrongPort.body.message, /body\/port/);
    t.equal((await api(follower, 'GET', '/v1/services/nope')).status, 404);
    t.equal((await viaProxy(follower, 'nope', '/')).status, 404, 'proxy to an unknown service: 404');
    const badMethod = await api(follower, 'POST', '/v1/jobs', { service: 'web', method: 'BREW' });
    t.equal(badMethod.status, 400);
    t.match(badMethod.body.message, /method/);
    t.equal((await api(follower, 'POST', '/v1/jobs', { service: 'nope' })).status, 404, 'job for an unknown service: 404');
    const bigJob = await api(follower, 'POST', '/v1/jobs', { service: 'nope', body: 'x'.repeat(1024 * 1024 + 1) });
    t.equal(bigJob.status, 413, 'a job body over the limit: 413');
    t.equal(bigJob.body.error, 'PAYLOAD_TOO_LARGE');
    t.same((await api(follower, 'GET', '/v1/services')).body.items, [], 'nothing half-written');
  });

  t.test('a service of 3 keeps 3 pods, spread, and 300 requests through a follower reach each of them', async (t) => {
    const res = await api(follower, 'POST', '/v1/services', { name: 'web', replicas: 3, template: { command, cpu: 0.1, memoryMiB: 32, ports: [8080], healthCheck: HC, env: { FAIL_DIR: s.dir } } });
    t.equal(res.status, 201, JSON.stringify(res.body));
    t.equal((await api(follower, 'POST', '/v1/services', { name: 'web', replicas: 1, template: { command, cpu: 0.1, ports: [8080], healthCheck: HC } })).status, 409, 'a second service of the name: 409');
    const view = await s.readyEndpoints(follower, 'web', 3);
    t.equal(view.status.endpoints.length, 3);
    const pods = await s.podsOf(follower, 'web');
    t.ok(pods.every((p) => p.name.startsWith('web-') && p.service === 'web'), 'pods are named <service>-<suffix> and carry the service');
    t.equal(new Set(pods.map((p) => p.status.nodeId)).size, 3, 'one pod per node');
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const r = await viaProxy(follower, 'web', `/hello?i=${i}`);
      t.equal(r.status, 200);
      const body = JSON.parse(r.body) as { pod: string; path: string };
      t.equal(body.pod, r.pod, 'x-berth-pod names the pod that answered');
      counts.set(body.pod, (counts.get(body.pod) ?? 0) + 1);
      if (i === 0) t.equal(body.path, '/hello?i=0', 'path and query arrive as sent');
    }
    t.equal(counts.size, 3, 'all 3 pods served');
    for (const [pod, n] of counts) t.ok(n >= 60, `pod ${pod} served ${n}/300 (>= 20 %)`);
  });

  t.test('the proxy forwards method, headers and body, and returns the pod status as is', async (t) => {
    const echo = await fetch(`${follower.url}/v1/services/web/proxy/echo?x=1`, { method: 'PUT', headers: { 'content-type': 'text/plain', 'x-custom': 'yes' }, body: 'hello pod' });
    t.equal(echo.status, 200);
    const body = (await echo.json()) as { method: string; path: string; headers: Record<string, string>; body: string };
    t.equal(body.method, 'PUT');
    t.equal(body.path, '/echo?x=1');
    t.equal(body.body, 'hello pod');
    t.equal(body.headers['x-custom'], 'yes');
    t.ok(body.headers['x-forwarded-for'], 'x-forwarded-for is set');
    t.equal((await viaProxy(follower, 'web', '/bad')).status, 400, "a pod's 4xx comes back as is");
    const big = await fetch(`${follower.url}/v1/services/web/proxy/echo`, { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 97) });
    t.equal(big.status, 413, 'a body over the limit: 413');
    t.equal(((await big.json()) as { error: string }).error, 'PAYLOAD_TOO_LARGE');
  });

  t.test('SIGKILL of a pod during a stream of GETs: no failure seen, the pod is ejected and replaced, the new one gets traffic', async (t) => {
    // restartPolicy Never: the killed pod ends Failed, so the service controller (not the agent) replaces it.
    t.equal((await api(follower, 'POST', '/v1/services', { name: 'fragile', replicas: 3, template: { command, cpu: 0.1, memoryMiB: 32, ports: [8080], healthCheck: HC, restartPolicy: 'Never' } })).status, 201);
    const before = await s.readyEndpoints(follower, 'fragile', 3);
    const victim = before.status.endpoints[0]!;
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const seen = new Set<string>();
    const stream = (async () => {
      while (!stop) {
        const r = await viaProxy(follower, 'fragile', '/');
        sent += 1;
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        else seen.add(r.pod!);
      }
    })();
    await waitFor(() => sent >= 50, { what: '50 requests before the kill' });
    const pids = (podProcesses([victim.podId]).get(victim.podId) ?? []).map((p) => p.pid);
    t.ok(pids.length > 0, `found the process of pod ${victim.podName}`);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const replaced = await waitFor(async () => {
      const v = await s.service(follower, 'fragile');
      const fresh = v.status.endpoints.filter((e) => e.ready && !before.status.endpoints.some((b) => b.podId === e.podId));
      return fresh.length === 1 && v.status.readyReplicas === 3 ? fresh[0] : undefined;
    }, { what: 'a ready replacement pod', timeoutMs: 30_000 });
    await waitFor(() => seen.has(replaced.podId), { what: 'the new pod to get traffic' });
    stop = true;
    await stream;
    t.same(failures, [], `no client-visible failure in ${sent} requests`);
    const killed = await api(follower, 'GET', `/v1/pods/${victim.podId}`);
    t.ok(killed.status === 404 || (killed.body as PodRecord).status.phase !== 'Running', 'the killed pod is gone or no longer Running');
    t.notOk((await s.service(follower, 'fragile')).status.endpoints.some((e) => e.podId === victim.podId && e.ready), 'the killed pod is no endpoint');
    t.ok(sent > 50, `requests kept flowing (${sent})`);
  });

  t.test('scaling up and down', async (t) => {
    t.equal((await api(leader, 'PATCH', '/v1/services/web', { replicas: 5 })).status, 200);
    await s.readyEndpoints(follower, 'web', 5);
    t.equal((await api(leader, 'PATCH', '/v1/services/web', { replicas: 2 })).status, 200);
    await waitFor(async () => (await s.podsOf(follower, 'web')).length === 2, { what: 'web scaled down to 2 pods' });
    t.equal((await s.service(follower, 'web')).status.readyReplicas, 2);
    t.equal((await api(leader, 'PATCH', '/v1/services/web', { replicas: -1 })).status, 400, 'negative replicas: 400');
  });

  t.test('a pod that answers 503 is ejected, and its requests are retried on another pod', async (t) => {
    const view = await s.readyEndpoints(follower, 'web', 2);
    const bad = view.status.endpoints[0]!;
    const ejectionsBefore = (await follower.metric('berth_proxy_pod_ejections_total')) ?? 0;
    const flag = path.join(s.dir, `fail-${bad.podId}`);
    fs.writeFileSync(flag, '');
    t.teardown(() => fs.rmSync(flag, { force: true }));
    const served = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const r = await viaProxy(follower, 'web', '/');
      t.equal(r.status, 200, 'the client sees no failure');
      served.set(r.pod!, (served.get(r.pod!) ?? 0) + 1);
    }
    t.notOk(served.has(bad.podId), 'every answer came from the healthy pod');
    t.ok(((await follower.metric('berth_proxy_pod_ejections_total')) ?? 0) > ejectionsBefore, 'berth_proxy_pod_ejections_total rose');
    const ejected = (await s.service(follower, 'web')).status.endpoints.find((e) => e.podId === bad.podId);
    t.ok(ejected?.ejectedUntil !== undefined || ((await follower.metric('berth_proxy_pod_ejections_total')) ?? 0) >= ejectionsBefore + 2, 'the follower shows the pod ejected (or ejected it more than once)');
    fs.rmSync(flag, { force: true });
  });

  t.test('a template change replaces pods one at a time with no request failing', async (t) => {
    const old = new Set((await s.podsOf(follower, 'web')).map((p) => p.id));
    let stop = false;
    const failures: string[] = [];
    let sent = 0;
    let maxPods = 0;
    const stream = (async () => {
      while (!stop) {
        const r = await viaProxy(follower, 'web', '/');
        sent += 1;
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
      }
    })();
    const res = await api(follower, 'PATCH', '/v1/services/web', { template: { command, cpu: 0.1, memoryMiB: 32, ports: [8080], healthCheck: HC, env: { VERSION: '2' } } });
    t.equal(res.status, 200);
    await waitFor(async () => {
      const pods = (await s.podsOf(follower, 'web')).filter((p) => p.deletionRequested === undefined);
      maxPods = Math.max(maxPods, pods.length);
      const v = await s.service(follower, 'web');
      return v.status.updatedReplicas === 2 && v.status.readyReplicas === 2 && pods.every((p) => !old.has(p.id)) ? true : undefined;
    }, { what: 'both pods replaced', timeoutMs: 60_000 });
    stop = true;
    await stream;
    t.same(failures, [], `no request failed during the rollout (${sent} sent)`);
    t.ok(maxPods <= 3, `never more than replicas + 1 pods (${maxPods})`);
    const pods = (await s.podsOf(follower, 'web')).filter((p) => p.deletionRequested === undefined);
    t.equal(pods.length, 2);
    t.ok(pods.every((p) => p.spec.env.VERSION === '2'), 'every pod kept runs the new template');
  });

  t.test('deleting a service removes its pods', async (t) => {
    t.equal((await api(follower, 'DELETE', '/v1/services/fragile')).status, 200);
    await waitFor(async () => (await s.podsOf(follower, 'fragile')).length === 0, { what: 'the pods of fragile to go' });
    const r = await viaProxy(follower, 'fragile', '/');
    t.equal(r.status, 404);
  });
});
