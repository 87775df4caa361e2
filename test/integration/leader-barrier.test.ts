import t, { type Test } from 'tap';
import type { Etcd3 } from 'etcd3';
import { keyOf, leaderRecordKey, prefixes, TERMINAL_PHASES, type AllocationRecord, type NodeRecord, type PodRecord } from '@berth/core';
import { commit, EventRecorder, Informer, LeaderElector, PodRepository, putJson } from '@berth/store';
import { ClusterState, LeaderLoops, NodeLifecycle, PodScheduler } from '@berth/controller';
import { waitFor } from '@berth/devcluster';
import { clientFor, etcdFor, testLog } from '../helpers/fixtures.js';
import { podRecord } from '../helpers/pods.js';
import { WatchHold } from '../helpers/watch-hold.js';

/*
 * A new leader's caches follow separate watches, which can lag each other
 * (a re-watch replays one prefix while another is current). Its loops must
 * not decide on such a pair: they start only once every cache reflects etcd
 * at the revision of the term's first write. The skew is made deterministic
 * by holding back what etcd sends to one cache's watch (`WatchHold`).
 */

const put = (client: Etcd3, key: string, value: unknown) => commit(client, [], [putJson(key, value)]).then((r) => r.revision);

t.test('the barrier: a cache reaches a revision written under another prefix', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);

  t.test('with nothing changing under its prefix, etcd is asked instead of waiting for an event', async (t) => {
    for (const id of ['a', 'b', 'c']) await put(client, `/berth/quiet/${id}`, { id });
    await client.put('/berth/quiet/garbage').value('not json').exec();
    const inf = new Informer<{ id: string }>(client, '/berth/quiet/', testLog);
    t.teardown(() => inf.stop());
    await inf.start();
    let changes = 0;
    inf.on('change', () => (changes += 1));
    const before = inf.revision;
    const R = await put(client, '/berth/elsewhere/x', { x: 1 });
    t.ok(before < R);
    t.equal(await inf.waitForProgress(R), true);
    t.ok(inf.revision >= R, `applied revision ${inf.revision} >= ${R} with no event under the prefix`);
    t.equal(changes, 0, 'nothing changed in the cache');
    t.equal(inf.size, 3, 'a value that is not JSON is not cached, and does not stop the barrier');
    // Later events are still applied, and the ones the barrier passed over are not applied twice.
    const later = await put(client, '/berth/quiet/d', { id: 'd' });
    t.ok(await inf.waitForRevision(later, 5000));
    t.same(inf.list().map((i) => i.value.id), ['a', 'b', 'c', 'd']);
  });

  t.test('a lagging watch holds it until the changes it carries are applied', async (t) => {
    const hold = new WatchHold(client, '/berth/lag/');
    await put(client, '/berth/lag/old', { v: 0 });
    const inf = new Informer<{ v: number }>(hold.client, '/berth/lag/', testLog);
    t.teardown(() => inf.stop());
    await inf.start();
    hold.hold();
    await put(client, '/berth/lag/new', { v: 1 });
    await client.delete().key('/berth/lag/old').exec();
    const R = await put(client, '/berth/elsewhere/y', { y: 1 });
    let done: boolean | undefined;
    void inf.waitForProgress(R).then((ok) => (done = ok));
    // The barrier asked etcd twice and was told both times that changes are on their way.
    const checks = inf.progressChecks;
    await waitFor(() => inf.progressChecks >= checks + 2 && hold.heldResponses > 0, { what: 'two progress checks while the watch is held' });
    t.equal(done, undefined, 'not caught up while the watch is held');
    t.ok(inf.revision < R);
    t.same(inf.list().map((i) => i.key), ['/berth/lag/old'], 'the cache still shows the old content');
    hold.release();
    await waitFor(() => done, { what: 'the barrier once the watch is released' });
    t.ok(inf.revision >= R);
    t.same(inf.list().map((i) => [i.key, i.value.v]), [['/berth/lag/new', 1]], 'the cache is etcd at R');
  });

  t.test('an abort ends the wait with false', async (t) => {
    const hold = new WatchHold(client, '/berth/stuck/');
    const inf = new Informer<unknown>(hold.client, '/berth/stuck/', testLog);
    t.teardown(() => inf.stop());
    await inf.start();
    hold.hold();
    await put(client, '/berth/stuck/k', { k: 1 });
    const R = await put(client, '/berth/elsewhere/z', { z: 1 });
    const abort = new AbortController();
    const wait = inf.waitForProgress(R, abort.signal);
    await waitFor(() => inf.progressChecks > 0, { what: 'a progress check' });
    abort.abort();
    t.equal(await wait, false);
    hold.release();
  });

  t.test('every cache of a replica reaches the revision', async (t) => {
    const state = new ClusterState(client, testLog);
    state.start();
    t.teardown(() => state.stop());
    const R = await put(client, leaderRecordKey, { leaderId: 'x', address: '', term: 1, since: new Date().toISOString() });
    t.equal(await state.caughtUp(R), true);
    t.same(state.behind(R), [], 'no cache is behind');
    for (const inf of state.informers) t.ok(inf.revision >= R, `${inf.prefix} at ${inf.revision}`);
  });
});

/** One replica's leader parts in this process: caches, elector, loops and their start sequence. */
function replica(t: Test, id: string, client: Etcd3) {
  const state = new ClusterState(client, testLog);
  const events = new EventRecorder(client, id, testLog);
  const replicaInfo = { id, address: `http://${id}`, pid: process.pid, startedAt: new Date().toISOString() };
  const elector = new LeaderElector({ client, replica: replicaInfo, ttlSeconds: 2, log: testLog, events });
  const lifecycle = new NodeLifecycle(client, state, elector, events, 60_000, testLog);
  const scheduler = new PodScheduler(client, state, elector, events, 'binpack', testLog);
  const loops = new LeaderLoops(elector, state, [lifecycle, scheduler], testLog);
  t.teardown(async () => {
    await elector.stop();
    await state.stop();
  });
  return { state, elector, loops };
}

/** Reservations and live bound pods of `nodeId` at `rev`, in millicores. */
async function usageAt(client: Etcd3, nodeId: string, rev: number) {
  const alloc = await client.get(keyOf('allocations', nodeId)).revision(rev).string();
  const reserved = alloc === null ? {} : (JSON.parse(alloc) as AllocationRecord).pods;
  const pods = Object.values(await client.getAll().prefix(prefixes.pods).revision(rev).strings())
    .map((v) => JSON.parse(v) as PodRecord)
    .filter((p) => p.status.nodeId === nodeId && !TERMINAL_PHASES.has(p.status.phase));
  const reservedMillis = Object.values(reserved).reduce((s, r) => s + r.cpuMillis, 0);
  const boundMillis = pods.reduce((s, p) => s + Math.round(p.spec.cpu * 1000), 0);
  return { reserved, reservedMillis, bound: pods.map((p) => p.id), boundMillis };
}

t.test('forced cache skew at election cannot release a live pod\'s reservation', async (t) => {
  const etcd = await etcdFor(t);
  const direct = clientFor(t, etcd.endpoint);
  const repo = new PodRepository(direct);

  // One node of 1 core, cordoned for now, with a heartbeat.
  const nodeKey = keyOf('nodes', 'n1');
  const now = new Date().toISOString();
  const node: NodeRecord = {
    id: 'n1', name: 'node-1', labels: {}, runtime: 'simulated', address: 'http://127.0.0.1:1', capacity: { cpu: 1, memoryMiB: 1024 },
    status: 'Ready', reason: 'AgentRegistered', statusChangedAt: now, cordoned: true, draining: false, registeredAt: now,
    agent: { hostname: 'h', pid: 1, startedAt: now, version: 'test' },
  };
  await put(direct, nodeKey, node);
  const lease = direct.lease(30);
  t.teardown(() => lease.revoke().catch(() => undefined));
  await lease.put(keyOf('heartbeats', 'n1')).value(JSON.stringify({ nodeId: 'n1', reportedAt: now, usage: {}, pods: [], instance: 'i1' })).exec();

  // Replica A leads; replica B follows, its pods watch can be held back.
  const a = replica(t, 'a', clientFor(t, etcd.endpoint));
  a.state.start();
  a.elector.start();
  await waitFor(() => a.loops.phase === 'running', { what: 'A leading' });
  const hold = new WatchHold(clientFor(t, etcd.endpoint), prefixes.pods);
  const b = replica(t, 'b', hold.client);
  b.state.start();
  await b.state.whenSynced();
  b.elector.start();

  // Two pods of 0.75 core: only one fits. B sees both Pending (the node is cordoned).
  for (const id of ['p1', 'p2']) await repo.create(podRecord({ id, name: id, spec: { cpu: 0.75 } }));
  await waitFor(() => b.state.pods.size === 2, { what: 'B seeing both pods' });

  // B's pods watch lags from now on; A binds one pod once the node is uncordoned.
  hold.hold();
  const uncordonRev = await put(direct, nodeKey, { ...node, cordoned: false });
  const boundId = await waitFor(async () => (await usageAt(direct, 'n1', 0)).bound[0], { what: 'A binding a pod to n1' });
  await waitFor(() => b.state.allocations.get(keyOf('allocations', 'n1'))?.value.pods[boundId] !== undefined, { what: 'B\'s reservations cache seeing the binding' });

  // A steps down; B is elected while its pods cache still shows the pod Pending.
  let skew: { podPhase: string | undefined; reserved: boolean; podsRev: number; R: number } | undefined;
  b.elector.once('elected', (_fence, R) => {
    skew = {
      podPhase: b.state.pods.get(keyOf('pods', boundId))?.value.status.phase,
      reserved: b.state.allocations.get(keyOf('allocations', 'n1'))?.value.pods[boundId] !== undefined,
      podsRev: b.state.pods.revision,
      R,
    };
  });
  let released = false;
  let atStart: { released: boolean; podNode: string | null | undefined; behind: string[]; waitedMs: number } | undefined;
  b.loops.once('started', ({ revision, waitedMs }) => {
    atStart = { released, podNode: b.state.pods.get(keyOf('pods', boundId))?.value.status.nodeId, behind: b.state.behind(revision), waitedMs };
  });
  await a.elector.stop();
  const R = await waitFor(() => skew?.R, { what: 'B elected' });
  t.equal(skew?.podPhase, 'Pending', 'at election B\'s pods cache shows the bound pod Pending');
  t.ok(skew?.reserved, '...while its reservations cache holds the pod\'s reservation');
  t.ok(skew!.podsRev < R, 'the pods cache is behind the term\'s first write');

  // Every other cache reaches R; the pods cache cannot, and the loops wait for it.
  const checks = b.state.pods.progressChecks;
  await waitFor(() => atStart !== undefined || (b.state.behind(R).join() === prefixes.pods && b.state.pods.progressChecks >= checks + 2), {
    what: 'B\'s other caches at R (or its loops starting)',
  });
  t.equal(b.loops.phase, 'catching-up', 'B\'s loops have not started');
  t.equal(atStart, undefined);

  released = true;
  hold.release();
  await waitFor(() => atStart, { what: 'B\'s loops starting' });
  t.equal(atStart?.released, true, 'the loops started only after the lagging watch delivered');
  t.equal(atStart?.podNode, 'n1', 'when they started, the pods cache showed the binding');
  t.same(atStart?.behind, [], 'and no cache was behind R');
  t.comment(`B waited ${atStart?.waitedMs} ms for its caches`);

  // B acts: a small pod binds onto n1 next to the bound one, the other 0.75-core pod stays Pending.
  await repo.create(podRecord({ id: 'p3', name: 'p3', spec: { cpu: 0.25 } }));
  await waitFor(async () => (await usageAt(direct, 'n1', 0)).bound.includes('p3'), { what: 'B binding p3' });

  // Nothing released the bound pod's reservation at any revision since the binding, and n1 never held more than 1 core.
  const last = Number((await direct.get('/berth/none').exec()).header.revision);
  let sawBinding = false;
  for (let rev = uncordonRev; rev <= last; rev++) {
    const u = await usageAt(direct, 'n1', rev);
    if (u.bound.includes(boundId)) sawBinding = true;
    if (sawBinding && u.reserved[boundId] === undefined) t.fail(`the reservation of ${boundId} was released at revision ${rev}`);
    if (u.reservedMillis > 1000 || u.boundMillis > 1000) t.fail(`n1 overcommitted at revision ${rev}: reserved ${u.reservedMillis}m, bound ${u.boundMillis}m`);
  }
  t.ok(sawBinding);
  const end = await usageAt(direct, 'n1', last);
  t.same(end.bound.sort(), [boundId, 'p3'].sort(), 'n1 runs the bound pod and p3');
  t.equal(end.reservedMillis, 1000);
});
