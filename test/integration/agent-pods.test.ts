import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { keyOf, nameKey, newId, type BerthEvent, type NodeRecord, type PodRecord, type PodSpec } from '@berth/core';
import { absent, commit, putJson } from '@berth/store';
import { AgentProcess, waitFor } from '@berth/devcluster';
import { agentCaller } from '../helpers/agent-api.js';
import { checkTickLogs } from '../helpers/agent-logs.js';
import { podGroups } from '../helpers/pod-processes.js';
import { processAgent } from '../helpers/process-agent.js';
import { TextStream } from '../helpers/fixtures.js';

// The agent side of pods against a real etcd and a real agent process, with no controller:
// the test plays the leader's binding role by writing pod records itself.

const NODE = 'pods1';
const BACKOFF_MAX_MS = 2000;

/** A small HTTP server pod: answers on PORT, /health follows HEALTHY, logs a tick every 100 ms. */
const SERVER = `
const http = require('http');
let n = 0;
http.createServer((req, res) => {
  if (req.url === '/health') { res.statusCode = process.env.HEALTHY === '0' ? 500 : 200; return res.end('health'); }
  res.end('hello ' + process.env.GREETING + ' on ' + process.env.PORT + '\\n');
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening on ' + process.env.PORT));
setInterval(() => console.log('tick ' + ++n), 100);
`;

const procState = (pid: number): string | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
};
/** Alive and not a zombie. */
const alive = (pid: number) => {
  const s = procState(pid);
  return s !== undefined && s !== 'Z';
};

t.test('agent runs pods bound to its node', async (t) => {
  const { etcd, client, logDir, dataDir, agent, nodeId, stand, agentUrl, agentApi, pidOf, createPod } = await processAgent(t, NODE, ['--restart-backoff-max', String(BACKOFF_MAX_MS)]);
  const get = (id: string) => stand.get(id);
  const change = (id: string, fn: (p: PodRecord) => PodRecord) => stand.change(id, fn);
  const waitPod = (id: string, what: string, pred: (p: PodRecord) => boolean, timeoutMs = 15_000) => stand.waitPod(id, what, pred, timeoutMs);
  const eventsOf = (id: string) => stand.eventsOf(id);
  const eventSeen = (id: string, pred: (e: BerthEvent) => boolean, what: string) => stand.eventSeen(id, pred, what);
  const answer = async (port: number, p = '/') => {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, text: await res.text() };
  };
  const server = (name: string, env: Record<string, string> = {}, extra: Partial<PodSpec> = {}) =>
    createPod(name, { command: [process.execPath, '-e', SERVER], ports: [8080], env: { GREETING: 'berth', ...env }, ...extra });

  const web = await server('web');
  let running = await waitPod(web, 'Running with a host port', (p) => p.status.phase === 'Running' && p.status.hostPort !== undefined);

  t.test('a server pod runs with an allocated host port (PORT) and answers on it', async (t) => {
    t.equal(running.status.nodeId, nodeId, 'still bound to the node');
    t.equal(running.status.restarts, 0);
    t.ok(running.status.startedAt, 'startedAt is set');
    const port = running.status.hostPort!;
    const res = await waitFor(() => answer(port).catch(() => undefined), { what: 'the pod to answer' });
    t.equal(res.text, `hello berth on ${port}\n`, 'PORT and the spec env reach the process');
  });

  t.test('pause stops the process group (state T), resume continues it', async (t) => {
    const pid = (await pidOf(web))!;
    t.ok(pid, 'the runtime reports the pid');
    await change(web, (p) => ({ ...p, desired: 'paused' }));
    await waitPod(web, 'Paused', (p) => p.status.phase === 'Paused');
    t.equal(procState(pid), 'T', 'the process is stopped');
    await change(web, (p) => ({ ...p, desired: 'running' }));
    running = await waitPod(web, 'Running again', (p) => p.status.phase === 'Running');
    t.not(procState(pid), 'T', 'the process runs again');
    t.equal((await answer(running.status.hostPort!)).status, 200, 'and answers');
    t.equal(running.status.restarts, 0, 'pause/resume is not a restart');
  });

  t.test('stop ends the process (Stopped); start runs it again on the same host port', async (t) => {
    const pid = (await pidOf(web))!;
    await change(web, (p) => ({ ...p, desired: 'stopped' }));
    const stopped = await waitPod(web, 'Stopped', (p) => p.status.phase === 'Stopped');
    t.ok(stopped.status.finishedAt, 'finishedAt is set');
    await waitFor(() => !alive(pid), { what: 'the process to end' });
    await change(web, (p) => ({ ...p, desired: 'running' }));
    running = await waitPod(web, 'Running after start', (p) => p.status.phase === 'Running');
    t.equal(running.status.hostPort, stopped.status.hostPort, 'the host port is kept');
    t.equal(running.status.finishedAt, null, 'finishedAt is cleared');
    const newPid = await waitFor(() => pidOf(web), { what: 'a new pid' });
    t.not(newPid, pid, 'a new process');
    const res = await waitFor(() => answer(running.status.hostPort!).catch(() => undefined), { what: 'the pod to answer' });
    t.equal(res.status, 200);
  });

  t.test('restartRequestedAt restarts the pod once (restarts + 1)', async (t) => {
    const pid = (await pidOf(web))!;
    const before = running.status.restarts;
    await change(web, (p) => ({ ...p, restartRequestedAt: new Date().toISOString() }));
    running = await waitPod(web, 'restarted', (p) => p.status.phase === 'Running' && p.status.restarts === before + 1);
    t.ok(Date.parse(running.status.startedAt!) >= Date.parse((await get(web))!.restartRequestedAt!), 'started after the request');
    t.not(await pidOf(web), pid, 'a new process');
    t.notOk(alive(pid), 'the old process is gone');
    t.ok(await eventSeen(web, (e) => e.reason === 'Restarted' && e.source === NODE, 'a Restarted event'), 'a Restarted event with the node as source');
  });

  t.test('logs through the agent API: tail and follow; 404 for a pod not on this agent', async (t) => {
    await checkTickLogs(t, agentApi, web);
    const bare = await fetch(`${await agentUrl()}/v1/pods/${web}/logs`);
    t.equal(bare.status, 401, 'logs without the node credential: 401');
    t.match(await bare.json(), { error: 'UNAUTHENTICATED', message: /node credential/ });
    t.equal((await fetch(`${await agentUrl()}/v1/nodes`, { headers: { authorization: 'Bearer not-the-secret' } })).status, 401, 'a wrong secret: 401');
    t.equal((await fetch(`${await agentUrl()}/healthz`)).status, 200, '/healthz stays open');

    const missing = await agentApi(`/v1/pods/nosuchpod/logs`);
    t.equal(missing.status, 404);
    t.same(await missing.json(), { error: 'NOT_FOUND', message: 'pod "nosuchpod" not found' });
    t.equal((await agentApi(`/v1/pods/${web}/logs?tail=-1`)).status, 400, 'a bad tail is a validation error');
  });

  t.test('Always: a pod exiting 1 restarts with exponential back-off', async (t) => {
    const id = await createPod('crash', { command: [process.execPath, '-e', 'console.log("boom"); process.exit(1)'], restartPolicy: 'Always' });
    const p = await waitPod(id, 'restarted 3 times', (p) => p.status.restarts >= 3, 20_000);
    t.equal(p.status.exitCode, 1, 'the exit code is recorded');
    const delays = await waitFor(async () => {
      const d = (await eventsOf(id)).filter((e) => e.reason === 'BackOff').map((e) => Number(/restarting in (\d+) ms/.exec(e.message)?.[1]));
      return d.length >= 3 ? d : undefined;
    }, { what: 'three BackOff events' });
    t.same(delays.slice(0, 3), [500, 1000, BACKOFF_MAX_MS], 'back-off doubles up to --restart-backoff-max');
    t.ok(await eventSeen(id, (e) => e.reason === 'Restarted', 'Restarted events'), 'Restarted events');
    const logs = await (await agentApi(`/v1/pods/${id}/logs`)).text();
    t.ok(logs.split('\n').filter((l) => l === 'boom').length >= 3, 'output of every run is kept');
    await change(id, (p) => ({ ...p, desired: 'stopped' }));
    await waitPod(id, 'Stopped', (p) => p.status.phase === 'Stopped');
  });

  t.test('Never: exit 1 -> Failed with the exit code; OnFailure: exit 0 -> Succeeded', async (t) => {
    const failing = await createPod('fail-once', { command: [process.execPath, '-e', 'process.exit(3)'], restartPolicy: 'Never' });
    const done = await createPod('done-once', { command: [process.execPath, '-e', 'console.log("done")'], restartPolicy: 'OnFailure' });
    const f = await waitPod(failing, 'Failed', (p) => p.status.phase === 'Failed');
    t.match(f.status, { reason: 'Error', exitCode: 3, restarts: 0 });
    t.match(f.status.message, /code 3/);
    t.ok(f.status.finishedAt);
    const s = await waitPod(done, 'Succeeded', (p) => p.status.phase === 'Succeeded');
    t.match(s.status, { reason: 'Completed', exitCode: 0, restarts: 0 });
    t.ok(await eventSeen(failing, (e) => e.reason === 'Failed' && e.type === 'Warning', 'a Failed event'), 'a Failed event');
    t.ok(await eventSeen(done, (e) => e.reason === 'Completed', 'a Completed event'), 'a Completed event');
    t.equal(await (await agentApi(`/v1/pods/${done}/logs`)).text(), 'done\n', 'logs of a finished pod');
  });

  t.test('a failing health check restarts the pod', async (t) => {
    const id = await server('sick', { HEALTHY: '0' }, { healthCheck: { path: '/health', intervalSeconds: 0.2, timeoutSeconds: 1, failureThreshold: 2 } });
    const p = await waitPod(id, 'restarted by the health check', (p) => p.status.restarts >= 1 && p.status.phase === 'Running');
    t.ok(p.status.restarts >= 1);
    // (On a loaded machine the server may not listen yet at the first two probes: that restart says "connection
    // refused", and a later one HTTP 500.)
    const unhealthy = await waitFor(async () => (await eventsOf(id)).find((x) => x.reason === 'Unhealthy' && /HTTP 500/.test(x.message)), { what: 'an Unhealthy event for HTTP 500', timeoutMs: 30_000 });
    t.match(unhealthy, { type: 'Warning', source: NODE, message: /\/health failed 2 times in a row \(last: HTTP 500\)/ });
    await change(id, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    await waitFor(async () => (await get(id)) === undefined, { what: 'the sick pod to be deleted' });
  });

  t.test('a stop that outlasts --stop-timeout is forced, with a ForcedKill event', async (t) => {
    const id = await createPod('stubborn', { command: [process.execPath, '-e', 'process.on("SIGTERM", () => console.log("ignoring SIGTERM")); setInterval(() => {}, 1000); console.log("up")'] });
    await waitPod(id, 'Running', (p) => p.status.phase === 'Running');
    await waitFor(async () => (await (await agentApi(`/v1/pods/${id}/logs`)).text()).includes('up'), { what: 'the handler installed' });
    const pid = (await pidOf(id))!;
    await change(id, (p) => ({ ...p, desired: 'stopped' }));
    const p = await waitPod(id, 'Stopped', (p) => p.status.phase === 'Stopped');
    t.equal(p.status.exitCode, 137, 'killed by SIGKILL');
    t.notOk(alive(pid));
    const e = await waitFor(async () => (await eventsOf(id)).find((x) => x.reason === 'ForcedKill'), { what: 'a ForcedKill event' });
    t.match(e, { type: 'Warning', source: NODE });
  });

  t.test('a killed agent takes its pods with it; restarted, it runs each again once', async (t) => {
    const id = await server('survivor');
    const before = await waitPod(id, 'Running', (p) => p.status.phase === 'Running');
    const oldPid = (await pidOf(id))!;
    await agent.process.stop('SIGKILL');
    await waitFor(() => !alive(oldPid), { what: 'the pod to die with its agent' });
    await agent.start();
    const after = await waitPod(id, 'Running again', (p) => p.status.phase === 'Running' && p.status.restarts === before.status.restarts + 1);
    t.equal(after.status.reason, 'Restarted');
    const newPid = (await pidOf(id))!;
    t.not(newPid, oldPid);
    t.same(podGroups([id]).get(id), [newPid], 'exactly one process group runs the pod');
    const res = await waitFor(() => answer(after.status.hostPort!).catch(() => undefined), { what: 'the pod to answer' });
    t.equal(res.status, 200, 'on its host port');
    t.equal(after.status.hostPort, before.status.hostPort);

    t.test('unbinding (Pending, no node) stops it without writing its status', async (t) => {
      await change(id, (p) => ({ ...p, status: { ...p.status, phase: 'Pending', nodeId: null, reason: 'NodeDrained' } }));
      await waitFor(() => !alive(newPid), { what: 'the unbound pod to stop' });
      await waitFor(async () => (await pidOf(id)) === undefined && !fs.existsSync(path.join(dataDir, 'pods', id)), { what: 'the runtime to drop it' });
      t.match((await get(id))!.status, { phase: 'Pending', nodeId: null, reason: 'NodeDrained' }, 'the record is left to the leader');
    });
  });

  t.test('simulated runtime: one reconciler for many nodes; rebinding moves the pod', async (t) => {
    const sim = new AgentProcess({ name: 'sim', etcd: etcd.endpoint, logDir, runtime: 'simulated', extraArgs: ['--simulate', '2'] });
    t.teardown(() => sim.process.stop('SIGTERM', 5000));
    await sim.start();
    const ids = await Promise.all(['sim-0', 'sim-1'].map(async (n) => JSON.parse((await client.get(nameKey('nodes', n)).string())!) as string));
    const simApi = agentCaller(client, () => ids[0]!);
    const held = async () => {
      const body = (await (await simApi('/v1/nodes')).json()) as { items: Array<{ id: string; pods: Array<{ id: string; state: string }> }> };
      return Object.fromEntries(body.items.map((n) => [n.id, n.pods]));
    };
    const id = newId();
    const pod: PodRecord = {
      id,
      name: 'simpod',
      spec: { env: {}, cpu: 0.5, memoryMiB: 64, ports: [80], restartPolicy: 'Always', priority: 0, nodeSelector: {}, healthCheck: { path: '/', intervalSeconds: 0.1, timeoutSeconds: 1, failureThreshold: 1 } },
      desired: 'running',
      status: { phase: 'Scheduled', nodeId: ids[0]!, reason: 'Scheduled', message: '', restarts: 0, startedAt: null, finishedAt: null },
      createdAt: new Date().toISOString(),
    };
    await commit(client, [absent(keyOf('pods', id))], [putJson(nameKey('pods', 'simpod'), id), putJson(keyOf('pods', id), pod)]);
    const p = await waitPod(id, 'Running on sim-0', (p) => p.status.phase === 'Running');
    t.equal(p.status.hostPort, undefined, 'simulated pods get no host port');
    t.equal(p.status.ready, true, 'a simulated pod has nothing to probe: ready with Running');

    // Follow the simulated log: the pause/resume below does not write lines, the stop does.
    const ac = new AbortController();
    const follow = await simApi(`/v1/pods/${id}/logs?follow=1`, { signal: ac.signal });
    const stream = new TextStream(follow);
    const readUntil = (needle: string) => stream.until((text) => text.includes(needle));
    t.ok(await readUntil('started'), 'the log so far');
    await change(id, (p) => ({ ...p, desired: 'paused' }));
    await waitPod(id, 'Paused', (p) => p.status.phase === 'Paused');
    t.match((await held())[ids[0]!], [{ id, state: 'paused' }]);
    await change(id, (p) => ({ ...p, desired: 'stopped' }));
    await waitPod(id, 'Stopped', (p) => p.status.phase === 'Stopped');
    t.ok(await readUntil('stopped'), 'followed output arrives');
    ac.abort();
    await stream.close();
    await change(id, (p) => ({ ...p, desired: 'running' }));
    const again = await waitPod(id, 'Running again', (p) => p.status.phase === 'Running');
    t.equal(again.status.restarts, 0, 'no health check restarts for simulated pods');

    // The leader moves it: bound to sim-1 now, so sim-0 drops it and sim-1 runs it.
    await change(id, (p) => ({ ...p, status: { ...p.status, phase: 'Scheduled', nodeId: ids[1]! } }));
    await waitPod(id, 'Running on sim-1', (p) => p.status.phase === 'Running' && p.status.nodeId === ids[1]);
    await waitFor(async () => {
      const h = await held();
      return h[ids[0]!]!.length === 0 && h[ids[1]!]!.some((x) => x.id === id && x.state === 'running');
    }, { what: 'the pod to move between simulated nodes' });
    t.pass('moved');
    await change(id, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    await waitFor(async () => (await get(id)) === undefined, { what: 'the simulated pod to be deleted' });
    t.same((await held())[ids[1]!], [], 'and removed from the runtime');
  });

  t.test('deletionRequested removes the process, the record and the name claim', async (t) => {
    const pid = (await pidOf(web))!;
    await change(web, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    await waitFor(async () => (await get(web)) === undefined, { what: 'the record to be deleted' });
    t.equal(await client.get(nameKey('pods', 'web')).string(), null, 'the name is free again');
    t.notOk(alive(pid), 'the process is gone');
    t.notOk(fs.existsSync(path.join(dataDir, 'pods', web)), 'its directory is removed');
    t.equal((await agentApi(`/v1/pods/${web}/logs`)).status, 404);
  });
});
