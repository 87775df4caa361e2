import t, { type Test } from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { validate } from '@readme/openapi-parser';
import { keyOf, nameKey, newId, type NodeRecord, type PodRecord } from '@berth/core';
import { commit, EventRecorder, putJson } from '@berth/store';
import { waitFor } from '@berth/devcluster';
import { buildServer, createAuth, ClusterState, Discovery, EtcdHealth, JobDispatcher, JobService, LeadershipView, LiveFeed, Metrics, NodeProvisioner, NodeService, PodService, Router, ServiceCatalog } from '@berth/controller';
import { clientFor, etcdFor, tempDir, testLog } from '../helpers/fixtures.js';
import { podRecord } from '../helpers/pods.js';

/**
 * The API of one replica built from its real services over a real etcd, and
 * called with `inject()`: no controller process, no listening socket, no
 * elector (this replica only follows), so each case costs milliseconds.
 */

/** Health probes: fast, so the outage case needs about a second to see etcd down. */
const PROBE_MS = 300;
const DOWN_AFTER_MS = 900;

interface ErrorBody {
  error: string;
  message: string;
  details?: unknown;
}

/** Builds the services and the server over `endpoint`; everything is closed at teardown. */
async function apiFor(t: Test, endpoint: string, adminTokenFile?: string) {
  const client = clientFor(t, endpoint);
  const log = testLog;
  const self = { id: 'inject', address: 'http://127.0.0.1:0', pid: process.pid, startedAt: new Date().toISOString() };
  const events = new EventRecorder(client, self.id, log);
  const health = new EtcdHealth([endpoint], log, PROBE_MS, DOWN_AFTER_MS);
  const state = new ClusterState(client, log);
  const leadership = new LeadershipView(self, state, { isLeader: false, fence: undefined }, 2);
  const provisioner = new NodeProvisioner(self.id, 'berth:local', path.join(os.tmpdir(), 'berth-inject'), log);
  const discovery = new Discovery(state);
  const router = new Router(discovery, self.id);
  const serviceCatalog = new ServiceCatalog(client, state, discovery, router, events, log);
  const liveFeed = new LiveFeed({ state, leadership, health, services: serviceCatalog, serviceChanges: discovery });
  const jobs = new JobDispatcher(client, state, router, discovery, { replica: self.id, claimTtlSeconds: 2, resultTtlSeconds: 60 }, log);
  const app = await buildServer({
    log,
    advertiseUrl: self.address,
    leadership,
    clusterState: state,
    etcdHealth: health,
    podService: new PodService(client, state, events, log),
    nodeService: new NodeService(client, state, provisioner, events, [endpoint], log, 5000, () => leadership.hasLeader()),
    metrics: new Metrics({ isLeader: () => false, term: () => 0, fencedRejections: () => 0, terms: () => 0, cacheRevision: () => state.revision }),
    liveFeed,
    serviceCatalog,
    router,
    jobService: new JobService(client, state, jobs),
    auth: createAuth({ client, state, events, replica: self.id, config: { insecure: false, metricsPublic: false, rateLimit: { read: 0, write: 0 }, auditTtlSeconds: 600, ...(adminTokenFile === undefined ? {} : { adminTokenFile }) }, tls: false, log }).settings,
  });
  health.start();
  state.start();
  t.teardown(async () => {
    await app.close();
    await jobs.stop();
    await router.close();
    liveFeed.stop();
    health.stop();
    await state.stop();
  });
  await state.whenSynced();
  await waitFor(() => health.reachable, { what: 'the first etcd probe to answer' });
  return { app, client, state, health };
}

function call(app: FastifyInstance, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<LightMyRequestResponse> {
  return app.inject({ method, url, ...(payload === undefined ? {} : { payload }) });
}

const errorOf = (res: LightMyRequestResponse) => res.json<ErrorBody>();

t.test('API over real services, called with inject()', async (t) => {
  const etcd = await etcdFor(t);
  const { app, client, state, health } = await apiFor(t, etcd.endpoint);

  t.test('validation errors are 400 VALIDATION_FAILED naming the field', async (t) => {
    const cases: Array<{ name: string; method: 'GET' | 'POST'; url: string; body?: object; want: RegExp }> = [
      { name: 'pod name not a DNS label', method: 'POST', url: '/v1/pods', body: { name: 'Web_1', command: ['true'], cpu: 0.1 }, want: /body\/name/ },
      { name: 'pod cpu 0', method: 'POST', url: '/v1/pods', body: { name: 'web', command: ['true'], cpu: 0 }, want: /body\/cpu must be > 0/ },
      { name: 'pod without cpu', method: 'POST', url: '/v1/pods', body: { name: 'web', command: ['true'] }, want: /cpu/ },
      { name: 'unknown pod property', method: 'POST', url: '/v1/pods', body: { name: 'web', command: ['true'], cpu: 1, colour: 'red' }, want: /^body\/colour is not a known field$/ },
      { name: 'pod with neither command nor image', method: 'POST', url: '/v1/pods', body: { name: 'web', cpu: 1 }, want: /^body\/command: / },
      { name: 'node cpu 0', method: 'POST', url: '/v1/nodes', body: { cpu: 0 }, want: /body\/cpu must be > 0/ },
      { name: 'unknown node property', method: 'POST', url: '/v1/nodes', body: { cpu: 1, disks: 2 }, want: /^body\/disks is not a known field$/ },
      { name: 'unknown query parameter', method: 'GET', url: '/v1/pods?colour=red', want: /^querystring\/colour is not a known field$/ },
      { name: 'unknown phase', method: 'GET', url: '/v1/pods?phase=Sleeping', want: /querystring\/phase/ },
      { name: 'event limit out of range', method: 'GET', url: '/v1/events?limit=0', want: /querystring\/limit/ },
    ];
    for (const c of cases) {
      const res = await call(app, c.method, c.url, c.body);
      t.equal(res.statusCode, 400, `${c.name}: 400`);
      const body = errorOf(res);
      t.equal(body.error, 'VALIDATION_FAILED', `${c.name}: VALIDATION_FAILED`);
      t.match(body.message, c.want, `${c.name}: ${body.message}`);
    }
  });

  t.test('unknown pods, nodes and routes are 404 NOT_FOUND', async (t) => {
    const cases: Array<{ method: 'GET' | 'POST' | 'DELETE'; url: string; want: RegExp }> = [
      { method: 'GET', url: '/v1/pods/no-such-pod', want: /^pod "no-such-pod" not found$/ },
      { method: 'GET', url: `/v1/pods/${newId()}`, want: /^pod ".+" not found$/ },
      { method: 'DELETE', url: '/v1/pods/no-such-pod', want: /^pod "no-such-pod" not found$/ },
      { method: 'POST', url: '/v1/pods/no-such-pod/restart', want: /^pod "no-such-pod" not found$/ },
      { method: 'GET', url: '/v1/nodes/no-such-node', want: /^node "no-such-node" not found$/ },
      { method: 'GET', url: `/v1/nodes/${newId()}`, want: /^node ".+" not found$/ },
      { method: 'POST', url: '/v1/nodes/no-such-node/cordon', want: /^node "no-such-node" not found$/ },
      { method: 'GET', url: '/v1/pods?node=no-such-node', want: /^node "no-such-node" not found$/ },
      { method: 'GET', url: '/v1/nope', want: /^no route GET \/v1\/nope$/ },
    ];
    for (const c of cases) {
      const res = await call(app, c.method, c.url);
      t.equal(res.statusCode, 404, `${c.method} ${c.url}: 404`);
      t.match(errorOf(res), { error: 'NOT_FOUND', message: c.want }, `${c.method} ${c.url}`);
    }
  });

  t.test('a taken pod name is 409 CONFLICT naming the field; the pod answers to its name and id', async (t) => {
    const created = await call(app, 'POST', '/v1/pods', { name: 'web', command: ['sleep', '60'], cpu: 0.5 });
    t.equal(created.statusCode, 201);
    const pod = created.json<PodRecord>();
    t.match(pod, { name: 'web', desired: 'running', status: { phase: 'Pending', nodeId: null } });
    const again = await call(app, 'POST', '/v1/pods', { name: 'web', command: ['true'], cpu: 1 });
    t.equal(again.statusCode, 409);
    t.match(errorOf(again), { error: 'CONFLICT', message: /a pod named "web" already exists/, details: { field: 'body/name' } });
    t.equal((await call(app, 'GET', '/v1/pods/web')).json<PodRecord>().id, pod.id, 'by name');
    t.equal((await call(app, 'GET', `/v1/pods/${pod.id}`)).json<PodRecord>().name, 'web', 'by id');
    const restart = await call(app, 'POST', '/v1/pods/web/restart');
    t.equal(restart.statusCode, 409, 'a Pending pod has nothing to restart');
    t.equal(errorOf(restart).error, 'INVALID_TRANSITION');
    const deleted = await call(app, 'DELETE', '/v1/pods/web');
    t.equal(deleted.statusCode, 200, 'an unbound pod is deleted at once');
    t.equal((await call(app, 'GET', '/v1/pods/web')).statusCode, 404);
    t.equal((await call(app, 'POST', '/v1/pods', { name: 'web', command: ['true'], cpu: 1 })).statusCode, 201, 'and its name is free again');
  });

  t.test('restarting a finished pod only records the request; the leader unbinds it', async (t) => {
    // Set-up only: a pod some agent ran to completion on a node that has since gone.
    const id = newId();
    const pod: PodRecord = {
      id,
      name: 'batch',
      spec: { command: ['true'], env: {}, cpu: 1, memoryMiB: 64, ports: [], restartPolicy: 'Never', priority: 0, nodeSelector: {} },
      desired: 'running',
      status: { phase: 'Succeeded', nodeId: 'gone-node', reason: 'Completed', message: 'exited with code 0', restarts: 0, startedAt: '2024-01-01T00:00:00.000Z', finishedAt: '2024-01-01T00:00:01.000Z' },
      createdAt: '2024-01-01T00:00:00.000Z',
    };
    const res = await commit(client, [], [putJson(nameKey('pods', pod.name), id), putJson(keyOf('pods', id), pod)]);
    await state.pods.waitForRevision(res.revision);

    const logs = await call(app, 'GET', '/v1/pods/batch/logs');
    t.equal(logs.statusCode, 409, 'logs of a pod whose node is gone: 409, a state (not 502, which says an agent did not answer)');
    t.match(errorOf(logs), { error: 'INVALID_TRANSITION', message: /gone-node, which is gone/ });

    const restart = await call(app, 'POST', '/v1/pods/batch/restart');
    t.equal(restart.statusCode, 200);
    const written = restart.json<PodRecord>();
    t.match(written, { desired: 'running', status: { phase: 'Succeeded', nodeId: 'gone-node' } }, 'still Succeeded and bound: unbinding is the leader\'s');
    t.ok(written.restartRequestedAt !== undefined && Date.parse(written.restartRequestedAt) > Date.parse(pod.status.finishedAt!), 'restartRequestedAt is newer than finishedAt');
    t.same(state.pods.get(keyOf('pods', id))?.value, written, 'the answer is the record as written');

    const deleted = await call(app, 'DELETE', '/v1/pods/batch');
    t.equal(deleted.statusCode, 200, 'a pod whose node is gone is deleted at once');
    t.equal(state.pods.get(keyOf('pods', id)), undefined);
  });

  t.test('inputs are bounded: 413 past the body limit, names checked in paths, errors quote at most 64 characters', async (t) => {
    const raw = (method: 'GET' | 'POST', url: string, payload: string) => app.inject({ method, url, payload, headers: { 'content-type': 'application/json' } });
    const big = await raw('POST', '/v1/pods', JSON.stringify({ name: 'big', cpu: 1, command: ['x'.repeat(1024 * 1024)] }));
    t.equal(big.statusCode, 413);
    t.match(errorOf(big), { error: 'PAYLOAD_TOO_LARGE', message: /larger than 1048576 bytes/ });

    const cases: Array<{ name: string; res: LightMyRequestResponse; want: RegExp }> = [
      { name: 'a 10 KB id', res: await call(app, 'GET', `/v1/pods/${'a'.repeat(10_000)}`), want: /longer than the router takes/ },
      { name: 'an 80-char id', res: await call(app, 'GET', `/v1/nodes/${'b'.repeat(80)}`), want: /^params\/id must NOT have more than 63 characters$/ },
      { name: 'an upper-case name', res: await call(app, 'DELETE', '/v1/services/Web'), want: /^params\/name must match pattern/ },
      { name: 'a query naming no label', res: await call(app, 'GET', '/v1/pods?service=a_b'), want: /^querystring\/service must match pattern/ },
      { name: 'a 5000-char env key', res: await call(app, 'POST', '/v1/pods', { name: 'p', cpu: 1, command: ['x'], env: { ['K'.repeat(5000)]: 'v' } }), want: /^body\/env key "K{64}…" must match pattern/ },
      { name: 'an env key outside the pattern', res: await call(app, 'POST', '/v1/pods', { name: 'p', cpu: 1, command: ['x'], env: { '1x': 'v' } }), want: /^body\/env key "1x"/ },
      { name: '65 labels', res: await call(app, 'POST', '/v1/nodes', { cpu: 1, labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }), want: /^body\/labels must NOT have more than 64 properties$/ },
      { name: 'a NUL in a label value', res: await call(app, 'POST', '/v1/nodes', { cpu: 1, labels: { k: 'a\u0000b' } }), want: /^body\/labels\/k must match pattern/ },
      { name: '257 command arguments', res: await call(app, 'POST', '/v1/pods', { name: 'p', cpu: 1, command: Array(257).fill('x') }), want: /^body\/command must NOT have more than 256 items$/ },
      { name: 'an unknown 300-char field', res: await call(app, 'POST', '/v1/pods', { name: 'p', cpu: 1, command: ['x'], ['f'.repeat(300)]: 1 }), want: /^body\/f{64}… is not a known field$/ },
      { name: 'a 100,000-deep job body', res: await raw('POST', '/v1/jobs', `{"service":"s","body":${'['.repeat(100_000)}${']'.repeat(100_000)}}`), want: /nests arrays or objects deeper than 64 levels/ },
      { name: 'a health check every 1e-300 s', res: await call(app, 'POST', '/v1/pods', { name: 'p', cpu: 1, command: ['x'], healthCheck: { path: '/', intervalSeconds: 1e-300 } }), want: /intervalSeconds must be >= 0.1/ },
    ];
    for (const c of cases) {
      t.equal(c.res.statusCode, 400, `${c.name}: 400`);
      const body = errorOf(c.res);
      t.equal(body.error, 'VALIDATION_FAILED', c.name);
      t.match(body.message, c.want, `${c.name}: ${body.message}`);
      t.ok(c.res.body.length < 2000, `${c.name}: the answer is ${c.res.body.length} bytes`);
      t.notMatch(c.res.body, /(.)\1{70}/, `${c.name}: no run of 70 characters is echoed`);
    }

    // A JSON job body is stored as a string, escaped again: under the body limit, over what a job may take in etcd.
    t.equal((await call(app, 'POST', '/v1/services', { name: 'big-jobs', replicas: 0, template: { command: ['true'], cpu: 0.1, ports: [8080] } })).statusCode, 201);
    const quotes = await raw('POST', '/v1/jobs', JSON.stringify({ service: 'big-jobs', body: Array(300_000).fill('') }));
    t.equal(quotes.statusCode, 413, 'a job too large to store is 413');
    t.match(errorOf(quotes), { error: 'PAYLOAD_TOO_LARGE', message: /the job would take \d+ bytes in etcd/ });
    t.equal((await call(app, 'DELETE', '/v1/services/big-jobs')).statusCode, 200);
  });

  t.test('the OpenAPI document lists every route with every response it gives', async (t) => {
    type Operation = { parameters?: unknown[]; requestBody?: unknown; responses?: Record<string, unknown> };
    const doc = (await call(app, 'GET', '/openapi.json')).json<{ paths: Record<string, Record<string, Operation>> }>();
    const result = await validate(structuredClone(doc) as never);
    t.ok(result.valid, `the document validates${result.valid ? '' : `: ${JSON.stringify(result.errors).slice(0, 500)}`}`);
    const ops = Object.entries(doc.paths).flatMap(([p, methods]) => Object.entries(methods).map(([m, op]) => ({ route: `${m.toUpperCase()} ${p}`, path: p, op })));
    t.same(
      ops.map((o) => o.route).sort(),
      [
        'GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /v1/leader', 'GET /v1/cluster', 'GET /v1/events',
        'GET /v1/nodes', 'GET /v1/nodes/{id}', 'POST /v1/nodes', 'DELETE /v1/nodes/{id}',
        'POST /v1/nodes/{id}/cordon', 'POST /v1/nodes/{id}/uncordon', 'POST /v1/nodes/{id}/drain',
        'GET /v1/pods', 'GET /v1/pods/{id}', 'POST /v1/pods', 'DELETE /v1/pods/{id}', 'GET /v1/pods/{id}/logs',
        'POST /v1/pods/{id}/stop', 'POST /v1/pods/{id}/start', 'POST /v1/pods/{id}/pause', 'POST /v1/pods/{id}/resume', 'POST /v1/pods/{id}/restart',
        'GET /v1/services', 'GET /v1/services/{name}', 'POST /v1/services', 'PATCH /v1/services/{name}', 'DELETE /v1/services/{name}',
        ...['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].flatMap((m) => [`${m} /v1/services/{name}/proxy`, `${m} /v1/services/{name}/proxy/{*}`]),
        'POST /v1/jobs', 'GET /v1/jobs', 'GET /v1/jobs/{id}', 'DELETE /v1/jobs/{id}',
        'GET /v1/tokens', 'POST /v1/tokens', 'DELETE /v1/tokens/{name}', 'GET /v1/audit',
        'GET /v1/session', 'POST /v1/session', 'DELETE /v1/session',
      ].sort(),
      'every API route is documented',
    );
    for (const { route, path: p, op } of ops) {
      const statuses = Object.keys(op.responses ?? {});
      t.ok(statuses.some((s) => s.startsWith('2')), `${route} documents its success`);
      if (op.parameters?.length || op.requestBody !== undefined) t.ok(statuses.includes('400'), `${route} documents 400`);
      if (p.startsWith('/v1/') && p !== '/v1/cluster') t.ok(statuses.includes('503'), `${route} documents 503`);
      if (p.includes('{id}') || p.includes('{name}')) t.ok(statuses.includes('404'), `${route} documents 404`);
      if (!route.startsWith('GET ') && !route.startsWith('HEAD ')) t.ok(statuses.includes('413') && statuses.includes('400'), `${route} reads a body: documents 400 and 413`);
    }
  });

  t.test('while etcd is away every /v1 request is 503 ETCD_UNAVAILABLE (the service proxy excepted), and then it is not', async (t) => {
    // Set-up: a service with one ready pod, played by an HTTP server in this process, on a Ready node with a heartbeat.
    const server = http.createServer((_req, res) => res.end('from the pod'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const now = new Date().toISOString();
    const node: NodeRecord = {
      id: 'n1', name: 'node-1', labels: {}, runtime: 'process', address: 'http://127.0.0.1:1', capacity: { cpu: 1, memoryMiB: 1024 },
      status: 'Ready', reason: 'AgentRegistered', statusChangedAt: now, cordoned: false, draining: false, registeredAt: now,
      agent: { hostname: 'h', pid: 1, startedAt: now, version: 'test' },
    };
    const created = await call(app, 'POST', '/v1/services', { name: 'echo', replicas: 1, template: { command: ['true'], cpu: 0.1, ports: [8080] } });
    t.equal(created.statusCode, 201);
    const podId = newId();
    const pod = podRecord({ id: podId, name: 'echo-aaaaa', service: 'echo', templateHash: created.json<{ templateHash: string }>().templateHash, spec: { ports: [8080] }, status: { phase: 'Running', nodeId: 'n1', hostPort: (server.address() as { port: number }).port, ready: true } });
    const lease = client.lease(60);
    t.teardown(() => lease.revoke().catch(() => undefined));
    await lease.put(keyOf('heartbeats', 'n1')).value(JSON.stringify({ nodeId: 'n1', reportedAt: now, usage: {}, pods: [podId], instance: 'i1' })).exec();
    const res = await commit(client, [], [putJson(keyOf('nodes', 'n1'), node), putJson(keyOf('pods', podId), pod)]);
    await state.pods.waitForRevision(res.revision);
    await waitFor(() => state.heartbeat('n1') !== undefined, { what: 'the heartbeat in the cache' });
    const routed = await call(app, 'GET', '/v1/services/echo/proxy/');
    t.equal(routed.body, 'from the pod');
    t.equal(routed.headers['x-berth-pod'], podId);

    // A second replica with authentication on (its bootstrap admin token in a file).
    const tokenFile = path.join(tempDir(t, 'berth-inject-auth-'), 'admin-token');
    const authed = await apiFor(t, etcd.endpoint, tokenFile);
    const adminToken = fs.readFileSync(tokenFile, 'utf8').trim();

    // 1. etcd stops; the probe reports it down once every probe failed for DOWN_AFTER_MS.
    await etcd.stop();
    await waitFor(() => health.down && authed.health.down, { what: 'the health probes to report etcd down', timeoutMs: 10_000 });
    // With authentication on, a caller without a token learns 401, not the state of etcd and its endpoints.
    const anonymous = await authed.app.inject({ method: 'GET', url: '/v1/pods' });
    t.equal(anonymous.statusCode, 401, 'no token while etcd is down: 401');
    t.notMatch(anonymous.body, /etcd|127\.0\.0\.1/, 'and nothing about etcd');
    const admin = await authed.app.inject({ method: 'GET', url: '/v1/pods', headers: { authorization: `Bearer ${adminToken}` } });
    t.equal(admin.statusCode, 503, 'with a token: 503');
    t.equal(errorOf(admin).error, 'ETCD_UNAVAILABLE');
    for (const [method, url, body] of [
      ['GET', '/v1/pods', undefined],
      ['GET', '/v1/leader', undefined],
      ['POST', '/v1/pods', { name: 'late', command: ['true'], cpu: 1 }],
    ] as const) {
      const res = await call(app, method, url, body);
      t.equal(res.statusCode, 503, `${method} ${url}: 503`);
      t.equal(res.headers['retry-after'], '1', 'with Retry-After');
      t.match(errorOf(res), { error: 'ETCD_UNAVAILABLE', message: /^etcd (cannot be reached|did not answer in time)/ });
    }
    const stillRouted = await call(app, 'GET', '/v1/services/echo/proxy/');
    t.equal(stillRouted.statusCode, 200, 'the service proxy routes from the last known endpoints');
    t.equal(stillRouted.body, 'from the pod');
    const readyz = await call(app, 'GET', '/readyz');
    t.equal(readyz.statusCode, 503);
    t.equal(errorOf(readyz).error, 'ETCD_UNAVAILABLE');
    const cluster = await call(app, 'GET', '/v1/cluster');
    t.equal(cluster.statusCode, 200, '/v1/cluster still answers (diagnostics)');
    t.match(cluster.json(), { etcd: { endpoints: [etcd.endpoint], reachable: false }, self: { id: 'inject', role: 'follower', ready: false } });
    t.equal((await call(app, 'GET', '/healthz')).statusCode, 200, 'liveness does not depend on etcd');

    // 2. etcd comes back on the same data; the API serves again without a restart.
    await etcd.start();
    await waitFor(() => !health.down && health.reachable, { what: 'the health probe to report etcd back', timeoutMs: 15_000 });
    const pods = await call(app, 'GET', '/v1/pods');
    t.equal(pods.statusCode, 200);
    t.same(pods.json<{ items: PodRecord[] }>().items.map((p) => p.name).sort(), ['echo-aaaaa', 'web'], 'with the state from before the outage');
  });
});
