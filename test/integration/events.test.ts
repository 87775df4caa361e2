import t from 'tap';
import { prefixes } from '@berth/core';
import { commit, EventRecorder, putJson } from '@berth/store';
import { clientFor, etcdFor, testLog } from '../helpers/fixtures.js';

// Events share a cached TTL lease. When etcd loses that lease (revoked by an
// operator, or expired while etcd was away), the next event must go on a new
// one: before, every transaction carrying an event (the leader's node status
// changes) failed until the cache would have renewed it, 10 minutes later.

t.test('an event lease gone from etcd is replaced at the next event', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const recorder = new EventRecorder(client, 'test', testLog);
  const revoke = (ID: string) => client.leaseClient.leaseRevoke({ ID });
  const leaseOf = async (id: string) => {
    const all = await client.getAll().prefix(prefixes.events).exec();
    const kv = all.kvs.find((k) => k.value.toString().includes(id));
    return kv?.lease;
  };

  const first = await recorder.record({ type: 'Normal', reason: 'First', message: 'one', involved: { kind: 'test', id: 'x' } });
  const lease = await leaseOf(first.id);
  t.ok(lease && lease !== '0', 'the event is on a lease');
  // 1. etcd loses the lease (and with it the event).
  await revoke(lease!);
  // 2. The next event still records, on a new lease.
  const second = await recorder.record({ type: 'Normal', reason: 'Second', message: 'two', involved: { kind: 'test', id: 'x' } });
  const next = await leaseOf(second.id);
  t.ok(next && next !== lease, 'recorded on a new lease');

  // 3. A caller that commits prepared events in its own transaction learns the same way.
  await revoke(next!);
  const { op } = await recorder.prepare({ type: 'Normal', reason: 'Third', message: 'three', involved: { kind: 'test', id: 'x' } });
  const failed = await commit(client, [], [op, putJson('/test/other', 1)]).catch((err: unknown) => err);
  t.ok(failed instanceof Error, 'the transaction with the stale lease fails');
  t.ok(recorder.forgetLeaseOn(failed), 'and the recorder recognises why');
  const { op: retry } = await recorder.prepare({ type: 'Normal', reason: 'Third', message: 'three', involved: { kind: 'test', id: 'x' } });
  await commit(client, [], [retry, putJson('/test/other', 1)]);
  t.equal(await client.get('/test/other').string(), '1', 'the retry commits');
  t.notOk(recorder.forgetLeaseOn(new Error('something else')), 'other failures are not about the lease');
});
