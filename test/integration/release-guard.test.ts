import t, { type Test } from 'tap';
import { keyOf, type AllocationRecord } from '@berth/core';
import { absent, commit, EventRecorder, PodRepository, putJson } from '@berth/store';
import { ClusterState, PodBinder, RaceLost } from '@berth/controller';
import { waitFor } from '@berth/devcluster';
import { clientFor, etcdFor, testLog } from '../helpers/fixtures.js';
import { podRecord, testFence } from '../helpers/pods.js';

// A leader whose pods cache is behind its reservations cache (they follow
// separate watches) must not free the reservation of a pod that was just
// bound: the release is guarded on the pod record as the cache shows it.
// The skew is made deterministic by freezing the pods cache.

/** The leader's parts over a real etcd, without a controller process: its caches, its fence, its binder. */
async function leaderParts(t: Test) {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const repo = new PodRepository(client);
  const fence = await testFence(client);
  const state = new ClusterState(client, testLog);
  state.start();
  t.teardown(() => state.stop());
  await state.whenSynced();
  const binder = new PodBinder(repo, state, new EventRecorder(client, 'test', testLog), testLog);
  return { client, repo, fence, state, binder };
}

t.test('a pods cache behind the reservations cannot release a live pod\'s reservation', async (t) => {
  const { client, repo, fence, state, binder } = await leaderParts(t);

  // 1. A Pending pod, seen by the leader's caches.
  const pod = podRecord({ id: 'p1', name: 'web' });
  await state.pods.waitForRevision(await repo.create(pod));
  // 2. The pods cache stops seeing changes (its watch lags); the reservations cache does not.
  await state.pods.stop();
  // 3. The pod is bound on n1 with its reservation (what a previous pass of this leader, or the last leader, wrote).
  const cur = (await repo.get('p1'))!;
  const allocKey = keyOf('allocations', 'n1');
  const bound = await repo
    .fenced(fence)
    .put(cur, { ...cur.value, status: { ...cur.value.status, phase: 'Scheduled', nodeId: 'n1', reason: 'Scheduled' } })
    .guard(absent(allocKey))
    .op(putJson(allocKey, { nodeId: 'n1', pods: { p1: { cpuMillis: 500, memoryMiB: 64 } } } satisfies AllocationRecord))
    .commit();
  t.ok(bound.succeeded);
  await state.allocations.waitForRevision(bound.revision);
  t.equal(state.pods.get(keyOf('pods', 'p1'))?.value.status.nodeId, null, 'the pods cache still shows it Pending');
  // 4. The release step reads "p1 is not bound to n1" from the lagging cache; etcd refuses the release.
  const allocs = new Map(state.allocations.list().map((a) => [a.value.nodeId, a]));
  await t.rejects(binder.releaseStale(fence, allocs), RaceLost, 'the release loses: the pod is not as the cache says');
  const record = JSON.parse((await client.get(allocKey).string())!) as AllocationRecord;
  t.ok(record.pods.p1, 'the running pod keeps its reservation');
  // 5. Once the pod is really gone, the reservation is released.
  const gone = (await repo.get('p1'))!;
  const marked = await repo.update('user', gone, { ...gone.value, deletionRequested: new Date().toISOString() });
  await repo.delete('agent', marked, { node: 'n1' });
  const fresh = new ClusterState(client, testLog);
  fresh.start();
  t.teardown(() => fresh.stop());
  await fresh.whenSynced();
  const freshBinder = new PodBinder(repo, fresh, new EventRecorder(client, 'test', testLog), testLog);
  t.ok(await freshBinder.releaseStale(fence, new Map(fresh.allocations.list().map((a) => [a.value.nodeId, a]))), 'released');
  await waitFor(async () => (await client.get(allocKey).string()) === null, { what: 'the empty reservation record removed' });
});

t.test('a binding decided on a node record that changed since does not commit', async (t) => {
  const { client, repo, fence, state, binder } = await leaderParts(t);
  const nodeKey = keyOf('nodes', 'n1');
  const node = { id: 'n1', name: 'node-1', cordoned: false };
  await state.nodes.waitForRevision((await commit(client, [], [putJson(nodeKey, node)])).revision);
  const pod = podRecord({ id: 'p2', name: 'api' });
  await state.pods.waitForRevision(await repo.create(pod));
  // 1. The decision is made on the caches as they are...
  const nodes = new Map(state.nodes.list().map((n) => [n.value.id, n]));
  const pods = new Map(state.pods.list().map((p) => [p.value.id, p]));
  // 2. ...then the node is cordoned before the binding commits.
  await commit(client, [], [putJson(nodeKey, { ...node, cordoned: true })]);
  await t.rejects(binder.bind(fence, [{ kind: 'bound', podId: 'p2', nodeId: 'n1', score: 100 }], pods, new Map(), nodes), RaceLost);
  t.equal((await repo.get('p2'))?.value.status.phase, 'Pending', 'not bound onto the cordoned node');
  t.equal(await client.get(keyOf('allocations', 'n1')).string(), null, 'nothing reserved');
});

t.test('a bound running pod without a reservation is reserved again, and only from caches that agree', async (t) => {
  const { client, repo, fence, state, binder } = await leaderParts(t);
  const pod = podRecord({ id: 'p3', name: 'orphan', spec: { cpu: 0.25, memoryMiB: 32 } });
  await repo.create(pod);
  // 1. A binding without its reservation (what no Berth code writes; a bug or a hand edit).
  const cur = (await repo.get('p3'))!;
  const res = await repo.fenced(fence).put(cur, { ...cur.value, status: { ...cur.value.status, phase: 'Scheduled', nodeId: 'n1', reason: 'Scheduled' } }).commit();
  await state.pods.waitForRevision(res.revision);
  const snapshot = () => ({ pods: [...state.pods.values()], allocs: new Map([...state.allocations.values()].map((a) => [a.value.nodeId, a])) });
  // 2. A cache that has not seen a reservation written meanwhile loses the race instead of reserving twice.
  const stale = snapshot();
  await commit(client, [], [putJson(keyOf('allocations', 'n1'), { nodeId: 'n1', pods: { other: { cpuMillis: 100, memoryMiB: 8 } } } satisfies AllocationRecord)]);
  await t.rejects(binder.reserveMissing(fence, stale.pods, stale.allocs), RaceLost);
  // 3. From caches that agree, the pod is reserved next to what the record holds.
  await waitFor(() => state.allocations.get(keyOf('allocations', 'n1')) !== undefined, { what: 'the reservation cache caught up' });
  const fresh = snapshot();
  t.ok(await binder.reserveMissing(fence, fresh.pods, fresh.allocs), 'it wrote');
  const record = JSON.parse((await client.get(keyOf('allocations', 'n1')).string())!) as AllocationRecord;
  t.same(record.pods, { other: { cpuMillis: 100, memoryMiB: 8 }, p3: { cpuMillis: 250, memoryMiB: 32 } });
  const again = snapshot();
  t.notOk(await binder.reserveMissing(fence, again.pods, again.allocs), 'nothing left to repair');
});

t.test('unbinding more pods from one node than fit in one transaction releases exactly theirs', async (t) => {
  const { client, repo, fence, state, binder } = await leaderParts(t);
  // 90 pods bound to n1 (three of the binder's 40-pod chunks), and one on n1 that stays.
  const ids = Array.from({ length: 90 }, (_, i) => `p${i}`);
  const bound = (id: string) => podRecord({ id, name: `w-${id}`, status: { phase: 'Running', nodeId: 'n1', reason: 'Started' } });
  // As earlier passes left them (set up directly: the repository creates only Pending pods).
  const pods: AllocationRecord['pods'] = Object.fromEntries([...ids, 'stay'].map((id) => [id, { cpuMillis: 10, memoryMiB: 1 }]));
  const allocKey = keyOf('allocations', 'n1');
  const { revision } = await commit(client, [], [...[...ids, 'stay'].map((id) => putJson(keyOf('pods', id), bound(id))), putJson(allocKey, { nodeId: 'n1', pods } satisfies AllocationRecord)]);
  await Promise.all([state.pods.waitForRevision(revision), state.allocations.waitForRevision(revision)]);
  const allocs = new Map(state.allocations.list().map((a) => [a.value.nodeId, a]));
  const leaving = ids.map((id) => ({ pod: state.pods.get(keyOf('pods', id))!, reason: 'NodeDead' as const }));
  await binder.unbind(fence, leaving, [], allocs, new Map());
  const record = JSON.parse((await client.get(allocKey).string())!) as AllocationRecord;
  t.same(Object.keys(record.pods), ['stay'], 'only the pod that stays is still reserved');
  const all = await Promise.all(ids.map((id) => repo.get(id)));
  t.ok(all.every((p) => p?.value.status.phase === 'Pending' && p.value.status.nodeId === null), 'all 90 are Pending');
});
