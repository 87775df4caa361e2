import t from 'tap';
import { absent, modifiedAt, putJson, TxnBatcher } from '@berth/store';
import { clientFor, etcdFor } from '../helpers/fixtures.js';

t.test('group commit over a real etcd', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);

  t.test('parts that arrive together share transactions, and each gets its own outcome', async (t) => {
    const batcher = new TxnBatcher(client, { maxInFlight: 1 });
    const before = Number((await client.get('/x').exec()).header.revision);
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => batcher.submit({ compares: [absent(`/b/${i}`)], ops: [putJson(`/b/${i}`, i)] })));
    t.ok(results.every((r) => r.succeeded));
    t.equal(batcher.stats.parts, 300);
    t.ok(batcher.stats.transactions < 30, `300 parts in ${batcher.stats.transactions} transactions`);
    const after = Number((await client.get('/x').exec()).header.revision);
    t.equal(after - before, batcher.stats.transactions, 'one etcd revision per transaction');
    t.equal(await client.getAll().prefix('/b/').count(), 300);
  });

  t.test('a part whose guard fails fails alone; the others in its batch are written', async (t) => {
    const batcher = new TxnBatcher(client, { maxInFlight: 1 });
    await client.put('/c/taken').value('"x"');
    const [ok1, lost, ok2] = await Promise.all([
      batcher.submit({ compares: [absent('/c/1')], ops: [putJson('/c/1', 1)] }),
      batcher.submit({ compares: [absent('/c/taken')], ops: [putJson('/c/taken', 'mine')] }),
      batcher.submit({ compares: [absent('/c/2')], ops: [putJson('/c/2', 2)] }),
    ]);
    t.ok(ok1!.succeeded && ok2!.succeeded);
    t.notOk(lost!.succeeded);
    t.equal(await client.get('/c/taken').string(), '"x"', 'the losing write did not happen');
    t.equal(await client.get('/c/1').string(), '1');
  });

  t.test('two writes of one key never share a transaction', async (t) => {
    const batcher = new TxnBatcher(client, { maxInFlight: 1 });
    const first = await batcher.submit({ compares: [], ops: [putJson('/d/k', 0)] });
    // Both guard on the same revision: the first wins, the second loses (instead of etcd refusing the whole batch).
    const [a, b] = await Promise.all([
      batcher.submit({ compares: [modifiedAt('/d/k', first.revision)], ops: [putJson('/d/k', 'a')] }),
      batcher.submit({ compares: [modifiedAt('/d/k', first.revision)], ops: [putJson('/d/k', 'b')] }),
    ]);
    t.ok(a!.succeeded);
    t.notOk(b!.succeeded);
    t.equal(await client.get('/d/k').string(), '"a"');
  });
});
