import t from 'tap';
import { keyOf, nameKey, prefixes, type PodRecord } from '@berth/core';
import { commit, Informer, PodRepository, putJson, type Versioned } from '@berth/store';
import { waitFor } from '@berth/devcluster';
import { clientFor, etcdFor, testLog } from '../helpers/fixtures.js';
import { podRecord, testFence } from '../helpers/pods.js';

// The one write path for pod records against a real etcd: every writer's
// rules are enforced before anything reaches etcd, every write is a
// compare-and-swap, and the leader's batches only commit through its fence.

const pod = (id: string, name: string): PodRecord => podRecord({ id, name });

t.test('pod repository against a real etcd', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const repo = new PodRepository(client);
  const read = async (id: string) => {
    const cur = await repo.get(id);
    if (cur === undefined) throw new Error(`pod ${id} is missing`);
    return cur;
  };

  const fence = await testFence(client);
  const { electionKey } = fence;

  t.test('create claims the name in the same transaction', async (t) => {
    await repo.create(pod('p1', 'web'));
    t.equal((await client.get(nameKey('pods', 'web')).string()), JSON.stringify('p1'));
    await t.rejects(repo.create(pod('p2', 'web')), { code: 'CONFLICT', details: { field: 'body/name' } });
    t.equal(await repo.get('p2'), undefined, 'the losing create wrote nothing');
    const bound = pod('p3', 'bound');
    bound.status = { ...bound.status, phase: 'Scheduled', nodeId: 'n1' };
    await t.rejects(repo.create(bound), { code: 'VALIDATION_FAILED' }, 'a new pod starts Pending');
  });

  t.test('users write intent with CAS; a stale revision loses and learns the revision that won', async (t) => {
    const cur = await read('p1');
    const next = await repo.update('user', cur, { ...cur.value, desired: 'stopped' });
    t.equal((await read('p1')).value.desired, 'stopped');
    // Other prefixes move the store on; the loser must learn the pod's revision, which a pods cache reaches.
    await commit(client, [], [putJson(keyOf('heartbeats', 'n9'), {})]);
    const err = await repo.update('user', cur, { ...cur.value, desired: 'paused' }).catch((e: unknown) => e);
    t.match(err, { code: 'CONFLICT', details: { revision: next.modRevision } });
    t.equal((await read('p1')).modRevision, next.modRevision, 'nothing written by the loser');
    await t.rejects(repo.update('user', next, { ...next.value, status: { ...next.value.status, phase: 'Scheduled', nodeId: 'n1' } }), { code: 'INTERNAL' }, 'users never bind');
  });

  t.test('an update that changes nothing is only compared: no revision, no watch event, still guarded', async (t) => {
    await repo.create(pod('p-same', 'same'));
    const cur = await read('p-same');
    const events: number[] = [];
    const watcher = await client.watch().key(keyOf('pods', 'p-same')).create();
    watcher.on('put', (kv) => events.push(Number(kv.mod_revision)));
    t.teardown(() => watcher.cancel());
    const same = await repo.update('user', cur, structuredClone(cur.value));
    t.equal(same.modRevision, cur.modRevision, 'the revision it answers is the one read');
    const after = await read('p-same');
    t.equal(after.modRevision, cur.modRevision, 'etcd holds the record at the revision read');
    t.equal(after.version, cur.version, 'and at the same version');
    // A real change after it: its event is the first and only one the watch sees.
    const changed = await repo.update('user', after, { ...after.value, desired: 'paused' });
    await waitFor(() => events.length > 0, { what: 'the watch to see the real write' });
    t.same(events, [changed.modRevision], 'the unchanged update made no event');
    const err = await repo.update('user', cur, structuredClone(cur.value)).catch((e: unknown) => e);
    t.match(err, { code: 'CONFLICT', details: { revision: changed.modRevision } }, 'a stale unchanged update loses like any other');
  });

  t.test('the leader binds through its fence, with the reservation in the same transaction', async (t) => {
    const cur = await read('p1');
    const allocKey = keyOf('allocations', 'n1');
    const res = await repo
      .fenced(fence)
      .put(cur, { ...cur.value, status: { ...cur.value.status, phase: 'Scheduled', nodeId: 'n1', reason: 'Scheduled' } })
      .guard({ key: allocKey, target: 'Create', cmp: '==', value: 0 })
      .op(putJson(allocKey, { nodeId: 'n1', pods: { p1: { cpuMillis: 500, memoryMiB: 64 } } }))
      .commit();
    t.ok(res.succeeded);
    t.equal((await read('p1')).value.status.nodeId, 'n1');
    t.ok(await client.get(allocKey).string(), 'reservation written with the binding');
    const stale = await repo.fenced(fence).put(cur, { ...cur.value, status: { ...cur.value.status, reason: 'Unschedulable', message: 'x' } }).commit();
    t.notOk(stale.succeeded, 'a decision from a stale read does not commit');
  });

  t.test('agents write only pods bound to their node, along the table', async (t) => {
    const cur = await read('p1');
    await t.rejects(repo.update('agent', cur, { ...cur.value, status: { ...cur.value.status, phase: 'Starting' } }, 'n2'), { code: 'CONFLICT' }, 'not its node');
    await t.rejects(repo.update('agent', cur, { ...cur.value, status: { ...cur.value.status, phase: 'Succeeded' } }, 'n1'), { code: 'INVALID_TRANSITION' });
    const starting = await repo.update('agent', cur, { ...cur.value, status: { ...cur.value.status, phase: 'Starting' } }, 'n1');
    const running = await repo.update('agent', starting, { ...starting.value, status: { ...starting.value.status, phase: 'Running', startedAt: new Date().toISOString() } }, 'n1');
    const done = await repo.update('agent', running, { ...running.value, status: { ...running.value.status, phase: 'Succeeded', finishedAt: new Date().toISOString() } }, 'n1');
    await t.rejects(
      repo.update('agent', done, { ...done.value, status: { ...done.value.status, phase: 'Starting' } }, 'n1'),
      { code: 'INVALID_TRANSITION' },
      'a finished pod holds no reservation: its agent cannot start it again',
    );
    await t.rejects(repo.delete('agent', done, { node: 'n1' }), { code: 'INTERNAL' }, 'agents delete only marked pods');
  });

  t.test('a deposed leader writes nothing', async (t) => {
    const cur = await read('p1');
    await client.delete().key(electionKey);
    await t.rejects(
      repo.fenced(fence).put(cur, { ...cur.value, status: { ...cur.value.status, phase: 'Pending', nodeId: null, reason: 'RestartRequested' } }).commit(),
      { code: 'LEADERSHIP_LOST' },
    );
    t.equal((await read('p1')).modRevision, cur.modRevision);
  });

  t.test('a CAS on a pod that is gone answers NOT_FOUND', async (t) => {
    await repo.create(pod('p5', 'brief'));
    const cur = await read('p5');
    await repo.delete('user', cur);
    await t.rejects(repo.update('user', cur, { ...cur.value, desired: 'stopped' }), { code: 'NOT_FOUND' });
  });

  t.test('users delete unbound pods; a bound pod is marked and its agent deletes it with its name', async (t) => {
    await repo.create(pod('p4', 'idle'));
    await repo.delete('user', await read('p4'));
    t.equal(await repo.get('p4'), undefined);
    t.equal(await client.get(nameKey('pods', 'idle')).string(), null, 'name released');
    const cur = await read('p1');
    await t.rejects(repo.delete('user', cur), { code: 'INTERNAL' });
    // A cache that has not seen node n1 yet says it is gone; etcd has the final word.
    await commit(client, [], [putJson(keyOf('nodes', 'n1'), { id: 'n1' })]);
    await t.rejects(repo.delete('user', cur, { nodeGone: true }), { code: 'CONFLICT' }, 'its node exists: only its agent deletes it');
    t.ok(await repo.get('p1'), 'nothing deleted');
    await client.delete().key(keyOf('nodes', 'n1'));
    const marked = await repo.update('user', cur, { ...cur.value, deletionRequested: new Date().toISOString() });
    await repo.delete('agent', marked, { node: 'n1' });
    t.equal(await repo.get('p1'), undefined);
    t.equal(await client.get(nameKey('pods', 'web')).string(), null);
  });
});

t.test('informer indexes follow puts, moves and deletes', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const informer = new Informer<PodRecord>(client, prefixes.pods, testLog);
  t.teardown(() => informer.stop());
  informer.addIndex('node', (p) => p.status.nodeId);
  await informer.start();
  const ids = (node: string) => informer.byIndex('node', node).map((v: Versioned<PodRecord>) => v.value.id).sort();
  const put = async (id: string, nodeId: string | null) => {
    const p = pod(id, id);
    p.status.nodeId = nodeId;
    const { revision } = await commit(client, [], [putJson(keyOf('pods', id), p)]);
    await informer.waitForRevision(revision);
  };
  await put('a', 'n1');
  await put('b', 'n1');
  await put('c', null);
  t.same(ids('n1'), ['a', 'b']);
  await put('b', 'n2');
  t.same(ids('n1'), ['a']);
  t.same(ids('n2'), ['b']);
  const { revision } = await commit(client, [], [{ type: 'delete', key: keyOf('pods', 'a') }]);
  await informer.waitForRevision(revision);
  t.same(ids('n1'), [], 'a deleted pod leaves its index');
  // An index added later files what the cache already holds.
  informer.addIndex('phase', (p) => p.status.phase);
  t.same(informer.byIndex('phase', 'Pending').map((v) => v.value.id).sort(), ['b', 'c']);
  t.throws(() => informer.byIndex('nope', 'x'), /no index/);
});
