import { once } from 'node:events';
import t from 'tap';
import type { IKeyValue, Watcher } from 'etcd3';
import { onWatchIncident, RAW_STREAM, type WatchIncident } from '@berth/store';
import { waitFor } from '@berth/devcluster';
import { clientFor, etcdFor } from '../helpers/fixtures.js';

// etcd3's watch manager after a stream failure, replayed deterministically
// against a real etcd: what the cancelled stream still delivers, a response
// for a watch id nobody holds, and a `created` nobody waits for. Without the
// store's watch guard the first is handed to whichever watcher reuses the id
// (or throws), and the others throw inside the gRPC callback, which kills
// the process.

/** A watch response as etcd sends it, for `watchId`, carrying one put of `key`. */
function response(watchId: string, key: string, extra: Record<string, unknown> = {}) {
  const kv = { key: Buffer.from(key), value: Buffer.from('"injected"'), create_revision: '999', mod_revision: '999', version: '1', lease: '0' };
  return {
    watch_id: watchId,
    created: false,
    canceled: false,
    compact_revision: '0',
    cancel_reason: '',
    fragment: false,
    header: { cluster_id: '0', member_id: '0', revision: '999', raft_term: '0' },
    events: [{ type: 'Put', kv, prev_kv: null }],
    ...extra,
  };
}

interface Manager {
  stream: NodeJS.EventEmitter & { [RAW_STREAM]?: NodeJS.EventEmitter };
  handleError(err: Error): void;
}

t.test('the watch guard contains etcd3 watch stream faults', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const incidents: WatchIncident[] = [];
  t.teardown(onWatchIncident((i) => incidents.push(i)));
  const manager = (client as unknown as { watchManager: Manager }).watchManager;

  const a = await client.watch().prefix('/a/').create();
  const b = await client.watch().prefix('/b/').create();
  t.teardown(() => Promise.all([a.cancel(), b.cancel()]));
  const seen = (w: Watcher) => {
    const keys: string[] = [];
    w.on('put', (kv: IKeyValue) => keys.push(kv.key.toString()));
    return keys;
  };
  const seenA = seen(a);
  const seenB = seen(b);
  const idOf = (w: Watcher) => (w as unknown as { id: string | null }).id;
  /** The gRPC stream itself (under the guard's fence, when there is one). */
  const raw = () => manager.stream[RAW_STREAM] ?? manager.stream;

  t.test('what a cancelled stream still delivers reaches no watcher', async (t) => {
    const old = raw();
    // 1. The shared stream fails (a deadline, a reset): the manager cancels it and re-attaches both watchers on a new one.
    const back = Promise.all([once(a, 'connected'), once(b, 'connected')]);
    manager.handleError(new Error('simulated stream failure'));
    await back;
    // 2. gRPC then delivers a response the old stream had buffered, for an id the new stream gave to another watcher.
    t.doesNotThrow(() => old.emit('data', response(idOf(b)!, '/a/stale')));
    t.doesNotThrow(() => old.emit('data', response('4242', '/a/stale')), 'an id nobody holds does not throw either');
    t.same(seenA, [], 'not delivered');
    t.same(seenB, [], 'not delivered to the watcher that reuses the id either');
    t.ok(incidents.some((i) => i.kind === 'stale-stream-event'), 'reported');
    // 3. The new stream works.
    await client.put('/a/real').value('1');
    await client.put('/b/real').value('1');
    await waitFor(() => seenA.includes('/a/real') && seenB.includes('/b/real'), { what: 'both watchers see their puts' });
  });

  t.test('a response for a watch id nobody holds is cancelled, not thrown', async (t) => {
    const live = raw();
    t.doesNotThrow(() => live.emit('data', response('4243', '/a/nobody')));
    t.ok(incidents.some((i) => i.kind === 'unknown-watch-id' && i.detail.includes('4243')));
    t.notOk(seenA.includes('/a/nobody'));
    await client.put('/a/after-unknown').value('1');
    await waitFor(() => seenA.includes('/a/after-unknown'), { what: 'watcher a still served' });
  });

  t.test('a created response nobody waits for resets the stream instead of throwing', async (t) => {
    const live = raw();
    const back = Promise.all([once(a, 'connected'), once(b, 'connected')]);
    t.doesNotThrow(() => live.emit('data', { ...response('4244', '/a/x'), created: true, events: [] }));
    t.ok(incidents.some((i) => i.kind === 'unexpected-create'));
    await back;
    await client.put('/b/after-reset').value('1');
    await waitFor(() => seenB.includes('/b/after-reset'), { what: 'watcher b served after the reset' });
  });
});
