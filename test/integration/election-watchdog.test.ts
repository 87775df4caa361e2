import t from 'tap';
import { Campaign } from 'etcd3/lib/election.js';
import { leaderRecordKey, prefixes } from '@berth/core';
import { EventRecorder, LeaderElector } from '@berth/store';
import { waitFor } from '@berth/devcluster';
import { clientFor, etcdFor, testLog } from '../helpers/fixtures.js';

// etcd3's campaign learns that it leads through one watch on the key before
// its own. When that watch loses the delete (a stream reset as etcd's raft
// leader dies, seen in the chaos run), the campaign waits for ever and no
// replica leads. Here the lost event is made certain: etcd3's wait never
// ends. The elector's watchdog must still see that its key is the oldest
// and take office, fenced like any term.

t.test('a campaign that etcd3 never tells it leads still takes office', async (t) => {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const proto = Campaign.prototype as unknown as { waitForElected: (rev: unknown) => Promise<void> };
  const real = proto.waitForElected;
  proto.waitForElected = () => new Promise<void>(() => undefined); // the delete event never arrives
  t.teardown(() => {
    proto.waitForElected = real;
  });

  const TTL = 2;
  const replica = { id: 'r1', address: 'http://r1', pid: process.pid, startedAt: new Date().toISOString() };
  const elector = new LeaderElector({ client, replica, ttlSeconds: TTL, log: testLog, events: new EventRecorder(client, 'r1', testLog) });
  let electedAt = 0;
  elector.on('elected', () => (electedAt = Date.now()));
  const startedAt = Date.now();
  elector.start();
  t.teardown(() => elector.stop());

  await waitFor(() => elector.isLeader, { what: 'the elector to take office without etcd3 saying so', timeoutMs: (4 * TTL + 2) * 1000 });
  t.ok(electedAt - startedAt >= 2 * TTL * 1000 - 500, `it waited for two checks of the election before acting (${electedAt - startedAt} ms)`);
  const fence = elector.fence!;
  const keys = await client.getAll().prefix(prefixes.election).keys();
  t.same(keys, [fence.electionKey], 'its key is the only (oldest) election key');
  const record = JSON.parse((await client.get(leaderRecordKey).string())!) as { leaderId: string; term: number };
  t.same({ leaderId: record.leaderId, term: record.term }, { leaderId: 'r1', term: fence.term }, 'the leader record was written through the fence');
  t.equal(elector.terms, 1, 'one term, taken once');
});
