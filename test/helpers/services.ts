import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import type { JobRecord, PodRecord, ServiceView } from '@berth/core';
import { AgentProcess, waitFor, type ControllerProcess, type LocalCluster, type LocalClusterOptions } from '@berth/devcluster';
import { clusterFor, tempDir } from './fixtures.js';
import { killPodProcesses } from './pod-processes.js';

/**
 * A small HTTP server a service's pods run (process runtime): answers its pod
 * id on every path, plus a few paths tests steer it with:
 *   /slow?ms=N   answers after N ms
 *   /fail        answers 503
 *   /bad         answers 400
 *   /big?bytes=N answers N bytes
 *   /echo        answers the request (method, headers, body) as JSON
 *   /healthz     200, or 500 while the file $UNHEALTHY_FILE exists
 * and answers 503 to everything else while the file $FAIL_DIR/fail-<its pod id> exists
 * and exits at once on SIGTERM (no graceful drain), like a careless pod would.
 */
const SERVER = `
const http = require('node:http');
const fs = require('node:fs');
const id = process.env.BERTH_POD_ID;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const reply = (status, body) => { res.writeHead(status, { 'content-type': 'application/json', 'x-pod-id': id }); res.end(JSON.stringify(body)); };
    // A pod told to fail (the file $FAIL_DIR/fail-<pod id> exists) answers 503 to everything but its health check.
    if (process.env.FAIL_DIR && url.pathname !== '/healthz' && fs.existsSync(process.env.FAIL_DIR + '/fail-' + id)) return reply(503, { pod: id, error: 'told to fail' });
    switch (url.pathname) {
      case '/slow': return setTimeout(() => reply(200, { pod: id, slow: true }), Number(url.searchParams.get('ms') || 1000));
      case '/fail': return reply(503, { pod: id, error: 'failing on purpose' });
      case '/bad': return reply(400, { pod: id, error: 'bad request on purpose' });
      case '/big': res.writeHead(200, { 'content-type': 'application/octet-stream' }); return res.end(Buffer.alloc(Number(url.searchParams.get('bytes') || 0), 97));
      case '/echo': return reply(200, { pod: id, method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      case '/healthz': return reply(process.env.UNHEALTHY_FILE && fs.existsSync(process.env.UNHEALTHY_FILE) ? 500 : 200, { pod: id });
      default: return reply(200, { pod: id, path: req.url });
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

/** The echo server's health check: a pod is ready (gets requests) once it answers. */
export const HC = { path: '/healthz', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 3 };

/** The command a test service's pods run. */
export function echoServer(dir: string): string[] {
  const file = path.join(dir, 'echo-server.cjs');
  fs.writeFileSync(file, SERVER);
  return [process.execPath, file];
}

/** A cluster with process-runtime agents and the echo server written out, all cleaned up at teardown. */
export async function serviceCluster(t: Test, opts: { agents?: number; cluster?: LocalClusterOptions } = {}) {
  const cluster: LocalCluster = await clusterFor(t, { controllerArgs: ['--node-grace', '3'], ...opts.cluster });
  const dir = tempDir(t, 'berth-svc-');
  const agents = Array.from({ length: opts.agents ?? 3 }, (_, i) =>
    new AgentProcess({
      name: `w${i + 1}`,
      etcd: cluster.etcd.endpoint,
      logDir: dir,
      runtime: 'process',
      cpu: 8,
      memoryMiB: 8192,
      extraArgs: ['--heartbeat-ttl', '2', '--heartbeat-interval', '500', '--stop-timeout', '2', '--restart-backoff-max', '1000'],
    }),
  );
  const podIds = new Set<string>();
  t.teardown(async () => {
    if (!t.passing()) for (const a of agents) t.comment(`--- agent ${a.name} ---\n${a.process.recentOutput(40)}`);
    await Promise.all(agents.map((a) => a.process.stop('SIGTERM')));
    killPodProcesses(podIds);
  });
  await Promise.all(agents.map((a) => a.start()));
  await cluster.waitForAgreedLeader();
  const c = cluster.controllers[0]!;
  await waitFor(async () => (await c.request('GET', '/v1/nodes?status=Ready')).body.items.length === agents.length, { what: `${agents.length} Ready nodes` });
  const command = echoServer(dir);

  const api = (ctl: ControllerProcess, method: string, p: string, body?: unknown) => ctl.request(method, p, body);
  /** A service's view from one replica. */
  const service = async (ctl: ControllerProcess, name: string) => (await api(ctl, 'GET', `/v1/services/${name}`)).body as ServiceView;
  /** Waits until `ctl` sees `ready` ready endpoints (and no more pods than `total`, when given). */
  const readyEndpoints = (ctl: ControllerProcess, name: string, ready: number, timeoutMs = 30_000) =>
    waitFor(async () => {
      const s = await service(ctl, name);
      for (const e of s.status.endpoints) podIds.add(e.podId);
      return s.status.readyReplicas === ready ? s : undefined;
    }, { what: `${ready} ready endpoints of ${name} on ${ctl.id}`, timeoutMs });
  const podsOf = async (ctl: ControllerProcess, name: string) => {
    const pods = (await api(ctl, 'GET', `/v1/pods?service=${name}`)).body.items as PodRecord[];
    for (const p of pods) podIds.add(p.id);
    return pods;
  };
  const job = async (ctl: ControllerProcess, id: string, wait = 0) => (await api(ctl, 'GET', `/v1/jobs/${id}${wait > 0 ? `?wait=${wait}` : ''}`)).body as JobRecord;
  return { cluster, agents, dir, command, api, service, readyEndpoints, podsOf, job, podIds };
}

/** Sends a request through a replica's proxy and reads the answer. */
export async function viaProxy(ctl: ControllerProcess, service: string, p: string, init: RequestInit = {}): Promise<{ status: number; pod: string | null; body: string }> {
  const res = await fetch(`${ctl.url}/v1/services/${service}/proxy${p}`, init);
  return { status: res.status, pod: res.headers.get('x-berth-pod'), body: await res.text() };
}
