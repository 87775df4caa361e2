#!/usr/bin/env node
/**
 * Services, routing and jobs, side by side in one run: etcd, three
 * controller replicas, one process-runtime agent and a service of N pods
 * (a minimal node HTTP server with keep-alive).
 *
 * Routing: a closed-loop load generator (undici Pool, C connections, one
 * request at a time each) measures requests/s and p50/p99 latency directly
 * to one pod, and through one replica's proxy to the service; both again at
 * concurrency 1 (the latency the proxy adds when nothing queues); and a bare
 * Fastify route in its own process, for scale.
 *
 * Jobs: etcd's ceiling for 128-put transactions and for single puts; then J
 * jobs submitted over the three replicas, each durable before its 202,
 * routed to a pod, its result stored; ends seen through an etcd watch.
 *
 * CPU seconds per process are printed for each phase: the machine has two
 * cores, so who spends them says where the time goes.
 *
 *   npm run bench:services -- [--pods 3] [--concurrency 32] [--seconds 8] [--jobs 10000] [--job-concurrency 96] [--job-replicas 3] [--kept 0] [--only routing|jobs] [--cpu-prof DIR]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { JobRecord, ServiceView } from '@berth/core';
import { createEtcdClient } from '@berth/store';
import { AgentProcess, freePort, killChildrenOnSignals, LocalCluster, ManagedProcess, repoRoot, waitFor, type ControllerProcess, runDir } from '@berth/devcluster';
import { CpuMeter, cpuSeconds, describeCpu, podPids } from './cpu.js';
import { etcdCeiling, keepFinished, revision, runJobs, type JobsRunResult } from './jobs-load.js';
import { closedLoop, type LoadResult } from './load.js';
import { machineSummary } from './machine.js';

const { values: o } = parseArgs({
  options: {
    pods: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    jobs: { type: 'string', default: '10000' },
    'job-concurrency': { type: 'string', default: '96' },
    'job-replicas': { type: 'string', default: '3' },
    kept: { type: 'string', default: '0' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const num = (name: keyof typeof o) => {
  const v = Number(o[name]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number, got ${String(o[name])}`);
  return v;
};
const pods = num('pods');
const concurrency = num('concurrency');
const durationMs = num('seconds') * 1000;
const warmupMs = Number(o.warmup) * 1000;
const jobCount = num('jobs');
const jobConcurrency = num('job-concurrency');
const jobReplicas = Math.min(3, num('job-replicas'));
const kept = Number(o.kept);
if (o.only !== undefined && o.only !== 'routing' && o.only !== 'jobs') throw new Error(`--only must be routing or jobs, got ${o.only}`);
const doRouting = o.only !== 'jobs';
const doJobs = o.only !== 'routing';
const profDir = o['cpu-prof'] === undefined ? undefined : path.resolve(o['cpu-prof']);

/** Every pod answers this small body on any path, with keep-alive. */
const POD_SERVER = `
const http = require('node:http');
const body = JSON.stringify({ pod: process.env.BERTH_POD_ID });
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body); });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

killChildrenOnSignals();
const loadBefore = os.loadavg();
const dir = runDir('berth-bench-svc-');
const podIds = new Set<string>();
// Node refuses --cpu-prof in NODE_OPTIONS: the controllers run under a shell that execs node with it.
const profWrap = path.join(dir, 'cpu-prof.sh');
if (profDir !== undefined) fs.writeFileSync(profWrap, `node="$1"; shift; exec "$node" --cpu-prof --cpu-prof-dir=${JSON.stringify(profDir)} "$@"\n`);
const cluster = await LocalCluster.start({
  dir,
  controllers: 3,
  controllerArgs: ['--log-level', 'warn'],
  ...(profDir === undefined ? {} : { controllerWrap: ['/bin/sh', profWrap] }),
}).catch((err: unknown) => {
  // Whatever it started is killed when this process exits; the directory is ours to remove.
  fs.rmSync(dir, { recursive: true, force: true });
  throw err;
});
const agent = new AgentProcess({ name: 'w1', etcd: cluster.etcd.endpoint, logDir: dir, runtime: 'process', cpu: 16, memoryMiB: 16384, extraArgs: [] }); // info level: start() waits for its 'agent running' line
const client = createEtcdClient(cluster.etcd.endpoint);
const lines: string[] = [];
const say = (s = '') => {
  lines.push(s);
  console.log(s);
};

try {
  await agent.start();
  const leader = await cluster.waitForAgreedLeader();
  const follower = cluster.controllers.find((c) => c.id !== leader.id)!;
  await waitFor(async () => (await leader.request('GET', '/v1/nodes?status=Ready')).body.items.length === 1, { what: 'the node Ready' });
  const serverFile = path.join(dir, 'pod-server.cjs');
  fs.writeFileSync(serverFile, POD_SERVER);
  const created = await leader.request('POST', '/v1/services', { name: 'bench', replicas: pods, template: { command: [process.execPath, serverFile], cpu: 0.1, memoryMiB: 32, ports: [8080] } });
  if (created.status !== 201) throw new Error(`POST /v1/services: ${created.status} ${JSON.stringify(created.body)}`);
  const ready = async (c: ControllerProcess) =>
    waitFor(async () => {
      const s = (await c.request('GET', '/v1/services/bench')).body as ServiceView;
      for (const e of s.status.endpoints) podIds.add(e.podId);
      return s.status.readyReplicas === pods ? s : undefined;
    }, { what: `${pods} ready endpoints on ${c.id}`, timeoutMs: 60_000 });
  const views = await Promise.all(cluster.controllers.map(ready));
  const endpoint = views[0]!.status.endpoints[0]!;

  let fastify: ManagedProcess | undefined;
  const cpu = new CpuMeter(() => ({
    ...(fastify?.running ? { 'Fastify route': [fastify.pid] } : {}),
    ...Object.fromEntries(cluster.controllers.map((c) => [c.id === leader.id ? `${c.id} (leader)` : c.id, [c.process.pid]])),
    etcd: [cluster.etcd.process.pid],
    pods: [...podPids(podIds).values()].flat(),
    agent: [agent.process.pid],
    bench: [process.pid],
  }));

  say(`# services: routing and jobs — ${new Date().toISOString().slice(0, 10)}`);
  say(`# machine: ${machineSummary()}`);
  say(`# load average before the run: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
  say(`# cluster: etcd, 3 controller replicas (leader ${leader.id}), 1 process-runtime agent, service "bench" of ${pods} pods (node http server, keep-alive)`);

  if (doRouting) {
    const fastifyPort = await freePort();
    fastify = new ManagedProcess('fastify-route', process.execPath, [path.join(repoRoot, 'bench/dist/fastify-route.js'), String(fastifyPort)], { logFile: path.join(dir, 'fastify-route.log') });
    fastify.start();
    await waitFor(() => fastify!.recentOutput().includes('listening'), { what: 'the Fastify route to listen' });
    const fastifyOrigin = `http://127.0.0.1:${fastifyPort}`;
    const rows: { name: string; c: number; r: LoadResult; cpu: string }[] = [];
    const run = async (name: string, origin: string, p: string, c: number) => {
      cpu.start();
      const r = await closedLoop({ origin, path: p, concurrency: c, durationMs, warmupMs });
      // CPU is sampled over warm-up and window alike: divide by the requests of both (the warm-up runs at the same rate).
      rows.push({ name, c, r, cpu: describeCpu(cpu.stop(), { count: r.perSecond * ((durationMs + warmupMs) / 1000), unit: 'req' }) });
      console.error(`${name} c=${c}: ${r.perSecond.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`);
      return r;
    };
    const proxyPath = '/v1/services/bench/proxy/';
    await run('bare Fastify route', fastifyOrigin, '/', concurrency);
    await fastify.stop('SIGTERM');
    const direct = await run(`direct to one pod (${endpoint.address})`, `http://${endpoint.address!}`, '/', concurrency);
    const proxied = await run(`through replica ${follower.id}'s proxy (${pods} pods)`, follower.url, proxyPath, concurrency);
    const direct1 = await run('direct to one pod', `http://${endpoint.address!}`, '/', 1);
    const proxied1 = await run(`through replica ${follower.id}'s proxy`, follower.url, proxyPath, 1);
    say();
    say(`## routing (closed loop, undici Pool with keep-alive, ${durationMs / 1000} s after ${warmupMs / 1000} s warm-up)`);
    say('| target | concurrency | req/s | p50 ms | p99 ms | max ms | non-2xx | errors |');
    say('|---|---|---|---|---|---|---|---|');
    for (const { name, c, r } of rows) say(`| ${name} | ${c} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${r.non2xx} | ${r.errors} |`);
    say();
    say(`proxy / direct throughput at concurrency ${concurrency}: ${(proxied.perSecond / direct.perSecond).toFixed(2)} x (target >= 0.5 x)`);
    say(`added p99 at concurrency 1: ${(proxied1.p99 - direct1.p99).toFixed(2)} ms (target < 2 ms); added p50: ${(proxied1.p50 - direct1.p50).toFixed(2)} ms`);
    say(`added p99 at concurrency ${concurrency} (includes queueing behind the slower path): ${(proxied.p99 - direct.p99).toFixed(2)} ms`);
    say(`answers through the proxy named a pod: ${String(proxied.lastHeaders['x-berth-pod'] ?? 'no x-berth-pod header')}`);
    say('CPU during each run:');
    for (const { name, c, cpu: d } of rows) say(`- ${name}, c=${c}: ${d}`);
  }

  if (doJobs) {
    // One job first: it warms the path up and tells how large a finished job's record is.
    const first = await follower.request('POST', '/v1/jobs', { service: 'bench', path: '/' });
    if (first.status !== 202) throw new Error(`POST /v1/jobs: ${first.status} ${JSON.stringify(first.body)}`);
    const done = await follower.request('GET', `/v1/jobs/${first.body.id as string}?wait=10`);
    const recordBytes = JSON.stringify(done.body).length;

    // etcd's CPU per put and per transaction, with no watcher on the keys: what a job's writes cost it before any fan-out.
    const etcdPid = cluster.etcd.process.pid;
    const ceiling = async (opsPerTxn: number, inFlight: number) => {
      const before = cpuSeconds(etcdPid);
      const r = await etcdCeiling(client, { opsPerTxn, valueBytes: recordBytes, inFlight, ms: 3000 });
      const after = cpuSeconds(etcdPid);
      const used = after.user + after.sys - before.user - before.sys;
      return { ...r, usPerTxn: (used / (r.txnsPerSecond * 3)) * 1e6 };
    };
    const batched = await ceiling(128, 4);
    const single = await ceiling(1, 64);
    if (kept > 0) {
      await keepFinished(client, done.body as JobRecord, kept);
      const at = await revision(client);
      await waitFor(async () => (await Promise.all(cluster.controllers.map((c) => c.metric('berth_cache_revision')))).every((r) => (r ?? 0) >= at), { what: `every replica to cache the ${kept} kept jobs`, timeoutMs: 120_000 });
    }

    cpu.start();
    const r: JobsRunResult = await runJobs({
      client,
      replicas: cluster.controllers.slice(0, jobReplicas).map((c) => c.url),
      service: 'bench',
      jobs: jobCount,
      concurrency: jobConcurrency,
      timeoutMs: Math.max(60_000, jobCount * 20),
    });
    const jobCpu = describeCpu(cpu.stop(), { count: r.accepted, unit: 'job' });
    const n = r.accepted;
    say();
    say(`## jobs end to end (${jobCount} jobs, ${jobConcurrency} submissions in flight over ${jobReplicas} replica(s), POST / on the service; ends seen through an etcd watch${kept > 0 ? `; ${kept} finished jobs kept in etcd beforehand` : ''})`);
    say('| jobs | accepted | jobs/s (first POST to last terminal) | submit phase s | p50 submit-to-result ms | p99 ms | max ms | p50 POST-to-202 ms | p99 ms | etcd revisions / job | key writes / job | all revisions / job |');
    say('|---|---|---|---|---|---|---|---|---|---|---|---|');
    say(
      `| ${jobCount} | ${n} | ${r.jobsPerSecond.toFixed(0)} | ${(r.submitMs / 1000).toFixed(1)} | ${r.result.p50.toFixed(0)} | ${r.result.p99.toFixed(0)} | ${r.result.max.toFixed(0)} | ${r.ack.p50.toFixed(1)} | ${r.ack.p99.toFixed(1)} | ${(r.jobRevisions / n).toFixed(3)} | ${(r.keyWrites / n).toFixed(2)} | ${((r.revisions.after - r.revisions.before) / n).toFixed(3)} |`,
    );
    say();
    say(`statuses: ${JSON.stringify(r.statuses)}; retried: ${r.retried}; refused submissions: ${r.refused}; Running writes: ${r.runningWrites}; all seen terminal: ${r.complete}`);
    say(`a finished job's record: ${recordBytes} bytes`);
    say(`etcd ceiling, txns of 128 puts of ${recordBytes} B, 4 in flight: ${batched.putsPerSecond.toFixed(0)} puts/s (${batched.txnsPerSecond.toFixed(0)} txns/s; etcd CPU ${batched.usPerTxn.toFixed(0)} us/txn, ${(batched.usPerTxn / 128).toFixed(1)} us/put)`);
    say(`etcd ceiling, single puts of ${recordBytes} B, 64 in flight: ${single.putsPerSecond.toFixed(0)} puts/s (etcd CPU ${single.usPerTxn.toFixed(0)} us/put)`);
    say(`target >= 2,000 jobs/s: ${r.jobsPerSecond >= 2000 ? 'met' : 'not met'}`);
    say(`CPU during the jobs run: ${jobCpu}`);
  }
  say(`# load average after the run: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  await cluster.controllers[0]!.request('DELETE', '/v1/services/bench').catch(() => undefined);
  await waitFor(async () => (await cluster.controllers[0]!.request('GET', '/v1/pods?service=bench')).body.items.length === 0, { what: 'the service pods gone', timeoutMs: 20_000 }).catch(() => undefined);
  await agent.process.stop('SIGTERM');
  for (const pids of podPids(podIds).values()) for (const pid of pids) killQuietly(pid);
  client.close();
  await cluster.stop();
  if (profDir !== undefined) console.error(`controller CPU profiles: ${profDir}`);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
