import t from 'tap';
import { LeaseClient } from 'etcd3';
import { errors, isBerthError, keyOf, leaderRecordKey, prefixes } from '@berth/core';
import { commit, commitFenced, EventRecorder, putJson, Repository } from '@berth/store';
import { clientFor, etcdFor, testLog } from '../helpers/fixtures.js';

interface Thing {
  name: string;
  n: number;
}

t.test('store against a real etcd', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const repo = new Repository<Thing>(client, 'nodes', 'node');

  t.test('keys follow the layout in ARCHITECTURE.md', async (t) => {
    t.equal(keyOf('nodes', 'n1'), '/berth/nodes/n1');
    t.equal(keyOf('heartbeats', 'n1'), '/berth/heartbeats/n1');
    t.equal(prefixes.election, '/berth/election/controller/');
    t.throws(() => keyOf('pods', 'a/b'), RangeError);
    t.throws(() => keyOf('pods', ''), RangeError);
  });

  t.test('create is compare-and-swap on absence', async (t) => {
    const rev = await repo.create('a', { name: 'a', n: 1 });
    const got = await repo.get('a');
    t.same(got?.value, { name: 'a', n: 1 });
    t.equal(got?.modRevision, rev);
    await t.rejects(repo.create('a', { name: 'a', n: 2 }), { code: 'CONFLICT', statusCode: 409 });
    t.same((await repo.get('a'))?.value, { name: 'a', n: 1 }, 'the losing create wrote nothing');
  });

  t.test('update and delete compare mod_revision', async (t) => {
    const before = await repo.get('a');
    if (!before) throw new Error('missing');
    const rev = await repo.update('a', { name: 'a', n: 2 }, before.modRevision);
    await t.rejects(repo.update('a', { name: 'a', n: 3 }, before.modRevision), { code: 'CONFLICT' }, 'a stale revision loses');
    t.equal((await repo.get('a'))?.value.n, 2);
    await t.rejects(repo.delete('a', before.modRevision), { code: 'CONFLICT' });
    await repo.delete('a', rev);
    t.equal(await repo.get('a'), undefined);
  });

  t.test('list reads a whole prefix in pages at one revision', async (t) => {
    const ids = Array.from({ length: 25 }, (_, i) => `p${String(i).padStart(2, '0')}`);
    for (const id of ids) await repo.create(id, { name: id, n: 0 });
    const { items, revision } = await repo.list();
    t.same(items.map((i) => i.value.name), ids);
    t.ok(revision >= Math.max(...items.map((i) => i.modRevision)));
  });

  t.test('fenced writes need the election key with the term as create revision', async (t) => {
    const electionKey = `${prefixes.election}test-lease`;
    const lease = client.lease(5);
    await lease.grant();
    t.teardown(() => lease.revoke().catch(() => undefined));
    const { revision: term } = await commit(client, [], [putJson(electionKey, { id: 'x' }, await lease.grant())]);
    const fence = { electionKey, term };

    const ok = await commitFenced(client, fence, [], [putJson(leaderRecordKey, { term })]);
    t.ok(ok.succeeded, 'the current term writes');

    const before = await repo.get('p00');
    if (!before) throw new Error('missing');
    await repo.updateFenced(fence, 'p00', { name: 'p00', n: 1 }, before.modRevision);
    await t.rejects(repo.updateFenced(fence, 'p00', { name: 'p00', n: 2 }, before.modRevision), { code: 'CONFLICT' }, 'fence held, CAS did not');

    await t.rejects(commitFenced(client, { electionKey, term: term + 1 }, [], [putJson(leaderRecordKey, { term: -1 })]), {
      code: 'LEADERSHIP_LOST',
      statusCode: 503,
    });
    await lease.revoke();
    await t.rejects(commitFenced(client, fence, [], [putJson(leaderRecordKey, { term: -2 })]), { code: 'LEADERSHIP_LOST' }, 'a deposed term cannot write');
    const record = await client.get(leaderRecordKey).json();
    t.same(record, { term }, 'no rejected write reached etcd');
  });

  t.test('events are recorded on a TTL lease, fenced when asked', async (t) => {
    const events = new EventRecorder(client, 'test', testLog, 60);
    const ev = await events.record({ type: 'Normal', reason: 'Test', message: 'hello', involved: { kind: 'test', id: '1' } });
    const kvs = (await client.getAll().prefix(prefixes.events).exec()).kvs;
    const stored = kvs.find((kv) => kv.key.toString().endsWith(ev.id));
    t.ok(stored, 'event stored under /berth/events/<time>-<id>');
    t.match(stored?.key.toString(), /^\/berth\/events\/\d{4}-\d\d-\d\dT[\d:.]+Z-[0-9a-z]+$/);
    t.not(stored?.lease, '0', 'event is on a lease');
    const leases = new LeaseClient((client as unknown as { pool: ConstructorParameters<typeof LeaseClient>[0] }).pool);
    const ttl = await leases.leaseTimeToLive({ ID: stored?.lease ?? '0' });
    t.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= 60, `event lease expires within its TTL (${ttl.TTL} s left)`);
    await t.rejects(
      events.recordFenced({ electionKey: `${prefixes.election}nobody`, term: 1 }, { type: 'Normal', reason: 'X', message: 'x', involved: { kind: 'k', id: 'i' } }),
      { code: 'LEADERSHIP_LOST' },
    );
  });

  t.test('etcd errors map to the catalogue', async (t) => {
    t.ok(isBerthError(errors.etcdUnavailable('x'), 'ETCD_UNAVAILABLE'));
    t.equal(errors.notFound('pod', 'p').message, 'pod "p" not found');
  });
});
