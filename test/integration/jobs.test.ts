import t from 'tap';
import { waitFor } from '@berth/devcluster';
import type { JobRecord } from '@berth/core';
import { HC, serviceCluster } from '../helpers/services.js';

t.test('jobs: durable, routed, retried, answered', async (t) => {
  const s = await serviceCluster(t, { agents: 2 });
  const { cluster, api, command } = s;
  const leader = await cluster.waitForAgreedLeader();
  const follower = cluster.controllers.find((c) => c.id !== leader.id)!;
  t.equal((await api(leader, 'POST', '/v1/services', { name: 'api', replicas: 2, template: { command, cpu: 0.1, memoryMiB: 32, ports: [8080], healthCheck: HC } })).status, 201);
  await s.readyEndpoints(follower, 'api', 2);

  t.test('a job runs on a pod and keeps its answer; headers name the job and the attempt', async (t) => {
    const res = await api(follower, 'POST', '/v1/jobs', { service: 'api', method: 'POST', path: '/echo', headers: { 'X-Trace': 'abc' }, body: { hello: 'world' } });
    t.equal(res.status, 202);
    t.equal(res.body.status, 'Queued');
    const job = await s.job(follower, res.body.id, 20);
    t.equal(job.status, 'Succeeded', job.message);
    t.equal(job.attempts.length, 1);
    t.equal(job.attempts[0]!.outcome, 'Succeeded');
    t.equal(job.result!.statusCode, 200);
    const echoed = JSON.parse(job.result!.body) as { pod: string; headers: Record<string, string>; body: string };
    t.equal(echoed.pod, job.attempts[0]!.podId, 'the attempt names the pod that answered');
    t.equal(echoed.headers['x-berth-job-id'], job.id);
    t.equal(echoed.headers['x-berth-attempt'], '1');
    t.equal(echoed.headers['x-trace'], 'abc');
    t.same(JSON.parse(echoed.body), { hello: 'world' }, 'a JSON body is sent as JSON');
    t.equal(echoed.headers['content-type'], 'application/json');
    // Any replica answers from its cache, once its watch delivered the change (a moment after the follower saw it).
    await waitFor(async () => (await s.job(leader, job.id)).status === 'Succeeded', { what: "the leader's cache to show the job Succeeded", timeoutMs: 5000 });
  });

  t.test('5xx answers are retried on the other pod, then the job fails with every attempt recorded', async (t) => {
    const res = await api(leader, 'POST', '/v1/jobs', { service: 'api', path: '/fail', maxAttempts: 2 });
    const job = await s.job(leader, res.body.id, 20);
    t.equal(job.status, 'Failed');
    t.equal(job.reason, 'AttemptsExhausted');
    t.equal(job.attempts.length, 2);
    t.ok(job.attempts.every((a) => a.outcome === 'Error' && a.statusCode === 503));
    t.not(job.attempts[0]!.podId, job.attempts[1]!.podId, 'the second attempt went to another pod');
  });

  t.test('an attempt that times out is retried on the other pod', async (t) => {
    const res = await api(leader, 'POST', '/v1/jobs', { service: 'api', path: '/slow?ms=5000', attemptTimeoutMs: 300, maxAttempts: 2, timeoutMs: 20_000 });
    const job = await s.job(leader, res.body.id, 20);
    t.equal(job.status, 'Failed', job.message);
    t.same(job.attempts.map((a) => a.outcome), ['TimedOut', 'TimedOut']);
    t.not(job.attempts[0]!.podId, job.attempts[1]!.podId, 'on another pod');
  });

  t.test('a 4xx fails the job at once', async (t) => {
    const job = await s.job(leader, (await api(leader, 'POST', '/v1/jobs', { service: 'api', path: '/bad', method: 'GET' })).body.id, 20);
    t.equal(job.status, 'Failed');
    t.equal(job.attempts.length, 1);
    t.equal(job.result!.statusCode, 400);
  });

  t.test('a result over 1 MiB fails the job, naming why', async (t) => {
    const job = await s.job(leader, (await api(leader, 'POST', '/v1/jobs', { service: 'api', path: `/big?bytes=${2 * 1024 * 1024}`, method: 'GET' })).body.id, 20);
    t.equal(job.status, 'Failed');
    t.equal(job.reason, 'ResultTooLarge');
    t.match(job.message, /1048576 bytes/);
  });

  t.test('a result that would make the record too big for etcd fails the job, naming why', async (t) => {
    // 750 KB sent and echoed back: each half fits, the record with both would not (etcd takes 1.5 MiB a request).
    const job = await s.job(leader, (await api(leader, 'POST', '/v1/jobs', { service: 'api', path: '/echo', body: 'x'.repeat(750_000) })).body.id, 20);
    t.equal(job.status, 'Failed');
    t.equal(job.reason, 'ResultTooLarge');
    t.match(job.message, /would be \d+ bytes in etcd/);
    t.equal(job.attempts.length, 1, 'the request was sent once');
  });

  t.test('a job past its timeout is TimedOut', async (t) => {
    const job = await s.job(leader, (await api(leader, 'POST', '/v1/jobs', { service: 'api', path: '/slow?ms=5000', timeoutMs: 800 })).body.id, 20);
    t.equal(job.status, 'TimedOut');
    t.ok(job.attempts.length >= 1);
  });

  t.test('an idempotency key returns the existing job', async (t) => {
    const a = await api(follower, 'POST', '/v1/jobs', { service: 'api', idempotencyKey: 'order-42' });
    t.equal(a.status, 202);
    const b = await api(leader, 'POST', '/v1/jobs', { service: 'api', idempotencyKey: 'order-42' });
    t.equal(b.status, 200);
    t.equal(b.body.id, a.body.id);
  });

  t.test('a job can be canceled while it runs', async (t) => {
    const res = await api(follower, 'POST', '/v1/jobs', { service: 'api', path: '/slow?ms=20000', timeoutMs: 30000, attemptTimeoutMs: 25000 });
    await waitFor(async () => (await s.job(follower, res.body.id)).status === 'Running', { what: 'the job to be Running' });
    const del = await api(leader, 'DELETE', `/v1/jobs/${res.body.id}`);
    t.equal(del.status, 200);
    t.equal(del.body.status, 'Canceled');
    t.equal((await api(leader, 'DELETE', `/v1/jobs/${res.body.id}`)).status, 409, 'a finished job cannot be canceled again');
    // The follower's cache has it with its watch event.
    const job = await waitFor(async () => {
      const j = await s.job(follower, res.body.id);
      return j.status === 'Canceled' && j.attempts[0]?.outcome === 'Canceled' ? j : undefined;
    }, { what: 'the follower to show the job and its attempt Canceled', timeoutMs: 5000 });
    t.equal(job.status, 'Canceled');
    t.equal(job.attempts[0]!.outcome, 'Canceled');
  });

  t.test('jobs wait Queued, with the reason, while no pod is ready, and run when one is', async (t) => {
    t.equal((await api(leader, 'POST', '/v1/services', { name: 'later', replicas: 0, template: { command, cpu: 0.1, memoryMiB: 32, ports: [8080], healthCheck: HC } })).status, 201);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await api(follower, 'POST', '/v1/jobs', { service: 'later', path: `/n${i}` })).body.id);
    const queued = await waitFor(async () => {
      const j = await s.job(follower, ids[0]!);
      return j.reason === 'NoEndpoints' ? j : undefined;
    }, { what: 'the reason to be written' });
    t.equal(queued.status, 'Queued');
    t.match(queued.message, /no pods/);
    t.equal((await api(leader, 'PATCH', '/v1/services/later', { replicas: 1 })).status, 200);
    for (const id of ids) {
      const j = await s.job(follower, id, 30);
      t.equal(j.status, 'Succeeded', `job ${id}: ${j.message}`);
    }
    // (Read on the other replica: its cache has the last result with its watch event.)
    const list = await waitFor(async () => {
      const items = (await api(leader, 'GET', '/v1/jobs?service=later&status=Succeeded')).body.items as JobRecord[];
      return items.length === 5 ? items : undefined;
    }, { what: 'the five jobs Succeeded on the other replica', timeoutMs: 5000 });
    t.equal(list.length, 5, 'the list filters by service and status');
  });
});
