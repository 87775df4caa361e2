import t, { type Test } from 'tap';
import type { AllocationRecord, NodeView, PodRecord } from '@berth/core';
import { deadAfterMs, prefixes } from '@berth/core';
import { listPrefix } from '@berth/store';
import { AgentProcess, waitFor, type ControllerProcess } from '@berth/devcluster';
import { clientFor, clusterFor, tempDir } from '../helpers/fixtures.js';

const TTL = 3;
const GRACE = 3;

/** Calls the API of one replica. */
const api = (c: ControllerProcess, method: string, path: string, body?: unknown) => c.request(method, path, body);

t.test('pods on simulated nodes: binding, reasons, rescheduling, leader kill', async (t) => {
  const cluster = await clusterFor(t, { controllerArgs: ['--node-grace', String(GRACE)] });
  const client = clientFor(t, cluster.etcd.endpoint);
  const logDir = tempDir(t, 'berth-sim-');
  const args = (n: number) => ['--simulate', String(n), '--heartbeat-ttl', String(TTL), '--heartbeat-interval', '500', '--labels', 'zone=earth'];
  const simA = new AgentProcess({ name: 'a', etcd: cluster.etcd.endpoint, logDir, runtime: 'simulated', cpu: 2, memoryMiB: 4096, extraArgs: args(2) });
  const simB = new AgentProcess({ name: 'b', etcd: cluster.etcd.endpoint, logDir, runtime: 'simulated', cpu: 2, memoryMiB: 4096, extraArgs: args(1) });
  t.teardown(() => Promise.all([simA.process.stop('SIGKILL'), simB.process.stop('SIGKILL')]));
  await Promise.all([simA.start(), simB.start()]);
  await cluster.waitForAgreedLeader();
  const c = () => cluster.running[0]!;
  await waitFor(async () => (await api(c(), 'GET', '/v1/nodes?status=Ready')).body.items.length === 3, { what: '3 Ready nodes' });

  /** Reservation invariants straight from etcd: no node over capacity, every bound pod reserved exactly once on its node. */
  async function checkInvariants(t: Test) {
    const pods = (await listPrefix(client, prefixes.pods)).kvs.map((kv) => JSON.parse(kv.value.toString()) as PodRecord);
    const allocs = (await listPrefix(client, prefixes.allocations)).kvs.map((kv) => JSON.parse(kv.value.toString()) as AllocationRecord);
    const nodes = (await api(c(), 'GET', '/v1/nodes')).body.items as Array<{ id: string; capacity: { cpu: number; memoryMiB: number } }>;
    for (const a of allocs) {
      const cap = nodes.find((n) => n.id === a.nodeId)?.capacity;
      const cpu = Object.values(a.pods).reduce((s, r) => s + r.cpuMillis, 0);
      const mem = Object.values(a.pods).reduce((s, r) => s + r.memoryMiB, 0);
      if (cap) t.ok(cpu <= cap.cpu * 1000 && mem <= cap.memoryMiB, `node ${a.nodeId} reserved ${cpu}m/${mem}Mi within ${cap.cpu * 1000}m/${cap.memoryMiB}Mi`);
    }
    for (const p of pods.filter((p) => p.status.nodeId !== null && p.status.phase !== 'Succeeded' && p.status.phase !== 'Failed')) {
      const holders = allocs.filter((a) => a.pods[p.id] !== undefined).map((a) => a.nodeId);
      t.same(holders, [p.status.nodeId], `pod ${p.name} is reserved exactly once, on its node`);
    }
    const names = pods.map((p) => p.name);
    t.equal(new Set(names).size, names.length, 'no duplicate pod names');
    return pods;
  }

  t.test('bad input and impossible requests get clear answers', async (t) => {
    const bad: Array<[unknown, RegExp]> = [
      [{ name: 'x', command: ['true'], cpu: 0 }, /body\/cpu must be > 0/],
      [{ name: 'X!', command: ['true'], cpu: 1 }, /body\/name must match pattern/],
      [{ name: 'x', cpu: 1 }, /body\/command: give a command/],
      [{ name: 'x', command: [], cpu: 1 }, /body\/command must NOT have fewer than 1 items/],
      [{ name: 'x', command: ['true'], cpu: 1, restartPolicy: 'Sometimes' }, /body\/restartPolicy/],
      [{ name: 'x', command: ['true'], cpu: 1, memoryMiB: 0 }, /body\/memoryMiB must be >= 1/],
      [{ name: 'x', command: ['true'], cpu: 1, healthCheck: { path: 'health' } }, /body\/healthCheck\/path must match pattern/],
      [{ name: 'x', command: ['true'], cpu: 1, flavour: 'mint' }, /body\/flavour is not a known field/],
    ];
    for (const [body, message] of bad) {
      const res = await api(c(), 'POST', '/v1/pods', body);
      t.equal(res.status, 400, JSON.stringify(body));
      t.match(res.body.message, message);
    }
    t.equal((await api(c(), 'GET', '/v1/pods')).body.items.length, 0, 'nothing was written');

    const huge = await api(c(), 'POST', '/v1/pods', { name: 'huge', command: ['true'], cpu: 64 });
    t.equal(huge.status, 201, 'an impossible pod is accepted and stays Pending');
    const reason = await waitFor(async () => {
      const p = (await api(c(), 'GET', '/v1/pods/huge')).body as PodRecord;
      return p.status.reason === 'Unschedulable' ? p.status.message : undefined;
    }, { what: 'the scheduler to give a reason' });
    t.equal(reason, '0/3 nodes: 3 insufficient cpu');
    await api(c(), 'POST', '/v1/pods', { name: 'mars', command: ['true'], cpu: 0.1, nodeSelector: { zone: 'mars' } });
    const mars = await waitFor(async () => {
      const p = (await api(c(), 'GET', '/v1/pods/mars')).body as PodRecord;
      return p.status.reason === 'Unschedulable' ? p.status.message : undefined;
    }, { what: 'the selector reason' });
    t.equal(mars, '0/3 nodes: 3 node selector mismatch');
    t.equal((await api(c(), 'POST', '/v1/pods', { name: 'huge', command: ['true'], cpu: 1 })).status, 409, 'names are unique');
    const pause = await api(c(), 'POST', '/v1/pods/huge/pause');
    t.equal(pause.status, 409);
    t.match(pause.body.message, /huge is Pending; only a Running pod can be paused/);
    t.equal((await api(c(), 'GET', '/v1/pods/nope')).status, 404);
    for (const name of ['huge', 'mars']) t.equal((await api(c(), 'DELETE', `/v1/pods/${name}`)).status, 200, `delete ${name}`);
    await waitFor(async () => (await api(c(), 'GET', '/v1/pods')).body.items.length === 0, { what: 'Pending pods deleted at once' });
  });

  t.test('SIGKILL the leader while creating 200 pods: every acknowledged pod exists once, bound once', async (t) => {
    const acked = new Set<string>();
    let killed = false;
    const leader = await cluster.waitForAgreedLeader();
    const names = Array.from({ length: 200 }, (_, i) => `load-${i}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < names.length) {
          const name = names[next++]!;
          if (!killed && acked.size >= 50) {
            killed = true;
            leader.process.signal('SIGKILL');
          }
          // Any live replica; a request that fails is not acknowledged (and may or may not have been written).
          const target = cluster.running[next % cluster.running.length]!;
          try {
            const res = await api(target, 'POST', '/v1/pods', { name, command: ['sleep', '100'], cpu: 0.01, memoryMiB: 8 });
            if (res.status === 201) acked.add(name);
          } catch {
            /* not acknowledged */
          }
        }
      }),
    );
    t.ok(killed, 'the leader was killed mid-run');
    t.ok(acked.size >= 150, `${acked.size} creates acknowledged`);
    await cluster.waitForAgreedLeader({ excluding: leader.id });
    const pods = await waitFor(async () => {
      const items = (await api(c(), 'GET', '/v1/pods')).body.items as PodRecord[];
      return items.every((p) => p.status.nodeId !== null) ? items : undefined;
    }, { what: 'every pod bound', timeoutMs: 30_000 });
    for (const name of acked) t.equal(pods.filter((p) => p.name === name).length, 1, `${name} exists exactly once`);
    t.ok(pods.every((p) => p.status.phase !== 'Pending'), 'all bound');
    await checkInvariants(t);
    await leader.start();
  });

  t.test('a dead node\'s pods are rescheduled elsewhere', async (t) => {
    const before = (await api(c(), 'GET', '/v1/pods')).body.items as PodRecord[];
    const nodes = (await api(c(), 'GET', '/v1/nodes')).body.items as NodeView[];
    const onA = new Set(nodes.filter((n) => n.name.startsWith('a-')).map((n) => n.id));
    const moving = before.filter((p) => p.status.nodeId !== null && onA.has(p.status.nodeId));
    const fenceOfA = nodes.find((n) => onA.has(n.id))?.fence;
    t.ok(moving.length > 0, `${moving.length} pods on agent a's nodes`);
    const killedAt = Date.now();
    simA.process.signal('SIGKILL');
    await waitFor(
      async () => {
        const items = (await api(c(), 'GET', '/v1/pods')).body.items as PodRecord[];
        return moving.every((m) => {
          const p = items.find((x) => x.id === m.id);
          return p !== undefined && p.status.nodeId !== null && !onA.has(p.status.nodeId);
        });
      },
      // TTL, then the grace stretched to a's fence budget (the agents assume the default grace: 5 s, not 3), then rebinding.
      { what: 'pods rebound off the dead nodes', timeoutMs: TTL * 1000 + deadAfterMs(GRACE * 1000, fenceOfA) + 6000 },
    );
    t.comment(`rescheduled ${Date.now() - killedAt} ms after SIGKILL`);
    const pods = await checkInvariants(t);
    t.ok(pods.filter((p) => p.status.nodeId !== null).every((p) => !onA.has(p.status.nodeId!)), 'nothing left on dead nodes');
  });

  t.test('drain moves pods off a node; deleting a node drains it first', async (t) => {
    await simA.start();
    await waitFor(async () => (await api(c(), 'GET', '/v1/nodes?status=Ready')).body.items.length === 3, { what: '3 Ready nodes again' });
    const nodes = (await api(c(), 'GET', '/v1/nodes')).body.items as NodeView[];
    const b0 = nodes.find((n) => n.name === 'b-0')!.id;
    const a0 = nodes.find((n) => n.name === 'a-0')!.id;
    const onB = (await api(c(), 'GET', '/v1/pods?node=b-0')).body.items as PodRecord[];
    t.ok(onB.length > 0, `${onB.length} pods on b-0`);
    t.equal((await api(c(), 'POST', '/v1/nodes/b-0/drain')).status, 200);
    await waitFor(async () => {
      const items = (await api(c(), 'GET', '/v1/pods')).body.items as PodRecord[];
      return onB.every((m) => {
        const p = items.find((x) => x.id === m.id);
        return p !== undefined && p.status.nodeId !== null && p.status.nodeId !== b0;
      });
    }, { what: 'pods moved off the drained node' });
    t.equal((await api(c(), 'GET', '/v1/pods?node=b-0')).body.items.length, 0, 'nothing left on b-0');
    t.equal((await api(c(), 'POST', '/v1/nodes/b-0/uncordon')).status, 200);

    const onA0 = ((await api(c(), 'GET', '/v1/pods?node=a-0')).body.items as PodRecord[]).map((p) => p.id);
    const del = await api(c(), 'DELETE', '/v1/nodes/a-0');
    t.equal(del.status, 200);
    t.equal((await api(c(), 'GET', '/v1/nodes/a-0')).status, 404, 'the node is gone');
    const items = (await api(c(), 'GET', '/v1/pods')).body.items as PodRecord[];
    for (const id of onA0) {
      const p = items.find((x) => x.id === id);
      t.ok(p && p.status.nodeId !== a0, `pod ${p?.name} left a-0 before it was removed`);
    }
    await checkInvariants(t);
  });
});
