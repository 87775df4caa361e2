import t from 'tap';
import type { BerthEvent } from '@berth/core';
import { prefixes } from '@berth/core';
import { waitFor } from '@berth/devcluster';
import { clientFor, clusterFor } from '../helpers/fixtures.js';

const TTL = 2;

/** Every event a leader wrote through its fence, in etcd revision order. */
async function fencedEvents(client: ReturnType<typeof clientFor>) {
  const res = await client.getAll().prefix(prefixes.events).exec();
  return res.kvs
    .map((kv) => ({ rev: Number(kv.mod_revision), ev: JSON.parse(kv.value.toString()) as BerthEvent }))
    .filter((e) => e.ev.term !== undefined)
    .sort((a, b) => a.rev - b.rev);
}

t.test('three replicas, one leader, fenced failover', async (t) => {
  const cluster = await clusterFor(t, { leaseTtl: TTL });
  const client = clientFor(t, cluster.etcd.endpoint);

  // 1. Exactly one leader, and every replica reports it.
  const first = await cluster.waitForAgreedLeader();
  const roles = await Promise.all(cluster.controllers.map(async (c) => (await c.cluster()).self.role));
  t.equal(roles.filter((r) => r === 'leader').length, 1, 'exactly one replica believes it leads');
  const view = await first.cluster();
  t.equal(view.replicas.length, 3, 'all three replicas campaign');
  t.equal(view.replicas[0]?.id, first.id, 'the oldest election key leads');
  t.equal(view.leader.term, view.replicas[0]?.createRevision, 'term is the create revision of the election key');
  for (const c of cluster.controllers) await c.waitReady();

  t.test('SIGKILL of the leader: a new leader within TTL + 1 s', async (t) => {
    const old = await cluster.waitForAgreedLeader();
    const oldTerm = (await old.leader()).term ?? 0;
    const killedAt = Date.now();
    old.process.signal('SIGKILL');
    await old.process.waitExit();
    const next = await cluster.waitForAgreedLeader({ excluding: old.id, timeoutMs: (TTL + 10) * 1000 });
    const agreedAfter = Date.now() - killedAt;
    t.not(next.id, old.id);
    const record = await next.leader();
    t.ok((record.term ?? 0) > oldTerm, 'the term grows');
    // When the new leader took office, by its own record: how long this test then took to see every replica agree
    // is the test's polling on a loaded machine, not the failover.
    const tookOfficeAfter = Date.parse(record.since ?? '') - killedAt;
    t.ok(tookOfficeAfter <= (TTL + 1) * 1000, `new leader ${next.id} took office ${tookOfficeAfter} ms after the SIGKILL (at most TTL + 1 s); all replicas agreed after ${agreedAfter} ms`);
    await old.start();
    await old.waitReady();
    const back = await old.cluster();
    t.equal(back.self.role, 'follower', 'the restarted replica rejoins as a follower');
    t.equal(back.leader.leaderId, next.id);
  });

  t.test('SIGTERM of the leader: it resigns and a new leader is elected within 1 s', async (t) => {
    const old = await cluster.waitForAgreedLeader();
    const stoppedAt = Date.now();
    old.process.signal('SIGTERM');
    const others = cluster.controllers.filter((c) => c !== old);
    const next = await cluster.waitForAgreedLeader({ excluding: old.id, among: others, timeoutMs: 1000 });
    t.comment(`new leader ${next.id} after ${Date.now() - stoppedAt} ms`);
    t.equal(await old.process.waitExit(), 0, 'the resigned replica exits cleanly');
    const resigned = (await fencedEvents(client)).find((e) => e.ev.reason === 'LeaderResigned' && e.ev.source === old.id);
    t.ok(resigned, 'the resignation was recorded through the fence while it still led');
    await old.start();
    await old.waitReady();
  });

  t.test('SIGSTOP of the leader for 2 x TTL, then SIGCONT: its fenced write is rejected and it steps down', async (t) => {
    const old = await cluster.waitForAgreedLeader();
    const oldTerm = (await old.leader()).term ?? 0;
    const rejectionsBefore = (await old.metric('berth_fenced_write_rejections_total')) ?? 0;
    const others = cluster.controllers.filter((c) => c !== old);

    old.process.signal('SIGSTOP');
    const pausedAt = Date.now();
    const next = await cluster.waitForAgreedLeader({ excluding: old.id, among: others, timeoutMs: (TTL + 2) * 1000 });
    const newTerm = (await next.leader()).term ?? 0;
    // Hold the pause for at least 2 x TTL in all, as the issue asks.
    await waitFor(() => Date.now() - pausedAt >= 2 * TTL * 1000, { what: '2 x TTL of pause', timeoutMs: 3 * TTL * 1000 });

    old.process.signal('SIGCONT');
    const resumedAt = Date.now();
    const role = await waitFor(
      async () => {
        const self = (await old.cluster()).self;
        return self.role === 'follower' ? self : undefined;
      },
      { what: 'the resumed replica to report itself a follower', timeoutMs: 1000 },
    );
    t.equal(role.term, null);
    t.comment(`resumed replica reported follower after ${Date.now() - resumedAt} ms`);

    const rejections = await waitFor(
      async () => {
        const n = (await old.metric('berth_fenced_write_rejections_total')) ?? 0;
        return n > rejectionsBefore ? n : undefined;
      },
      { what: 'the resumed replica to attempt a fenced write and have it rejected' },
    );
    t.ok(rejections > rejectionsBefore, 'etcd rejected the deposed leader\'s fenced write');

    // 2. No two leaders ever wrote: fenced writes are ordered by term, none of the old term after the new term's first.
    const events = await fencedEvents(client);
    const firstOfNew = events.find((e) => e.ev.term === newTerm);
    t.ok(firstOfNew, 'the new leader wrote through its fence');
    const lateOld = events.filter((e) => e.ev.term === oldTerm && firstOfNew && e.rev > firstOfNew.rev);
    t.same(lateOld, [], 'no write of the old term after the new term began');
    const terms = events.map((e) => e.ev.term ?? 0);
    t.same(terms, [...terms].sort((a, b) => a - b), 'fenced writes are in term order');

    // 3. All three agree again, on the new leader.
    const agreed = await cluster.waitForAgreedLeader();
    t.equal(agreed.id, next.id);
  });
});
