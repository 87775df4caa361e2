import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import type { Etcd3 } from 'etcd3';
import { prefixes } from '@berth/core';
import { Informer, listPrefix, type InformerChange } from '@berth/store';
import { TcpProxy, waitFor } from '@berth/devcluster';
import { clientFor, etcdFor, testLog } from '../helpers/fixtures.js';

/** What etcd holds under the prefix right now, as key -> [modRevision, value]. */
async function etcdContent(client: Etcd3, prefix: string) {
  const snap = await listPrefix(client, prefix);
  return Object.fromEntries(snap.kvs.map((kv) => [kv.key.toString(), [Number(kv.mod_revision), JSON.parse(kv.value.toString())]]));
}

/** The informer's content in the same shape. */
function cacheContent<T>(inf: Informer<T>) {
  return Object.fromEntries(inf.list().map((i) => [i.key, [i.modRevision, i.value]]));
}

async function converged<T>(t: Test, client: Etcd3, inf: Informer<T>, what: string) {
  await waitFor(
    async () => {
      const truth = await etcdContent(client, inf.prefix);
      return JSON.stringify(truth) === JSON.stringify(cacheContent(inf));
    },
    { what: `cache to converge ${what}`, timeoutMs: 20_000 },
  );
  t.same(cacheContent(inf), await etcdContent(client, inf.prefix), `cache equals a fresh range read ${what}`);
}

t.test('watch cache', async (t) => {
  const etcd = await etcdFor(t);
  const direct = clientFor(t, etcd.endpoint);
  const proxy = await TcpProxy.start(etcd.clientPort);
  t.teardown(() => proxy.close());
  const viaProxy = clientFor(t, proxy.endpoint);
  const prefix = prefixes.pods;
  const put = (id: string, v: unknown) => direct.put(prefix + id).value(JSON.stringify(v)).exec();

  for (let i = 0; i < 20; i++) await put(`p${i}`, { i });
  await direct.put('/berth/podsX').value('"not in the prefix"').exec();

  const inf = new Informer<{ i: number }>(viaProxy, prefix, testLog);
  const changes: InformerChange<{ i: number }>[] = [];
  inf.on('change', (c) => changes.push(c));
  t.teardown(() => inf.stop());
  await inf.start();
  t.ok(inf.ready, 'ready after the first list');
  t.equal(inf.size, 20);
  t.equal(changes.length, 20, 'the initial list is emitted as puts');

  t.test('follows puts and deletes in order, exactly once', async (t) => {
    changes.length = 0;
    await put('p0', { i: 100 });
    await direct.delete().key(prefix + 'p1').exec();
    const last = await put('p20', { i: 20 });
    await inf.waitForRevision(Number(last.header.revision));
    t.same(
      changes.map((c) => [c.type, c.key]),
      [
        ['put', prefix + 'p0'],
        ['delete', prefix + 'p1'],
        ['put', prefix + 'p20'],
      ],
    );
    t.same(changes[0]?.prev?.value, { i: 0 }, 'an update carries the previous value');
    t.equal(inf.revision, Number(last.header.revision), 'revision is the last applied change');
    await converged(t, direct, inf, 'after live changes');
  });

  t.test('resyncs after its watch revision is compacted', async (t) => {
    const relists = inf.relists;
    // 1. Partition the informer from etcd.
    proxy.cut();
    // 2. Change things it cannot see, then compact them away.
    for (let i = 2; i < 10; i++) await direct.delete().key(prefix + `p${i}`).exec();
    for (let i = 30; i < 40; i++) await put(`p${i}`, { i });
    const latest = await put('p10', { i: 1010 });
    execFileSync('etcdctl', ['--endpoints', etcd.endpoint, 'compact', latest.header.revision, '--physical']);
    // 3. Heal: resuming from the old revision is refused, so it must relist.
    proxy.restore();
    await converged(t, direct, inf, 'after a compaction');
    t.ok(inf.relists > relists, `it relisted (${inf.relists - relists} time(s))`);
  });

  t.test('resumes after etcd restarts', async (t) => {
    await etcd.stop();
    await etcd.start();
    for (let i = 40; i < 45; i++) await put(`p${i}`, { i });
    await direct.delete().key(prefix + 'p30').exec();
    await converged(t, direct, inf, 'after an etcd restart');
    const keys = inf.list().map((i) => i.key);
    t.equal(new Set(keys).size, keys.length, 'no duplicates');
  });
});
