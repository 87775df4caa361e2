import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { prefixes } from '@berth/core';
import { delay, TcpProxy } from '@berth/devcluster';
import { DEFAULT_LEADER_LEASE_TTL_SECONDS, toleratedKeepaliveRoundTripMs } from '@berth/store';
import { clientFor, clusterFor, etcdFor } from '../helpers/fixtures.js';

/** How long the delay is held (BERTH_KEEPALIVE_LATENCY_SECONDS shortens it while developing). */
const HOLD_S = Number(process.env.BERTH_KEEPALIVE_LATENCY_SECONDS ?? 30);
const DELAY_MS = 1000;

t.test('keepalive latency of 1 s (delay proxy) does not depose the leader at the default TTL', async (t) => {
  t.ok(toleratedKeepaliveRoundTripMs(DEFAULT_LEADER_LEASE_TTL_SECONDS) > DELAY_MS, 'the default TTL claims to tolerate the delay');
  const etcd = await etcdFor(t);
  const proxy = await TcpProxy.start(etcd.clientPort);
  t.teardown(() => proxy.close());
  const cluster = await clusterFor(t, { etcd, etcdEndpoint: proxy.endpoint, leaseTtl: DEFAULT_LEADER_LEASE_TTL_SECONDS });
  const direct = clientFor(t, etcd.endpoint);
  const leader = await cluster.waitForAgreedLeader();
  for (const c of cluster.controllers) await c.waitReady();
  const term = (await leader.leader()).term;
  const electionKeys = async () => (await direct.getAll().prefix(prefixes.election).sort('Create', 'Ascend').exec()).kvs;
  const leaderKey = (await electionKeys())[0]!.key.toString();

  // Everything etcd sends to the controllers (keepalive answers, watch events, reads) now arrives 1 s late.
  proxy.setDelay({ minMs: DELAY_MS, maxMs: DELAY_MS });
  const viaProxy = clientFor(t, proxy.endpoint);
  await viaProxy.get('/berth/leader').exec(); // opens the connection
  const sentAt = Date.now();
  await viaProxy.get('/berth/leader').exec();
  const roundTrip = Date.now() - sentAt;
  t.ok(roundTrip >= DELAY_MS, `a read through the proxy takes ${roundTrip} ms`);

  const until = Date.now() + HOLD_S * 1000;
  let samples = 0;
  const violations: string[] = [];
  const notReady: string[] = [];
  while (Date.now() < until) {
    // etcd's own word: the leader's election key is still the oldest, with the same create revision (term).
    const oldest = (await electionKeys())[0];
    if (oldest?.key.toString() !== leaderKey || Number(oldest.create_revision) !== term) {
      violations.push(`the oldest election key is ${oldest?.key.toString()} at ${oldest?.create_revision}, was ${leaderKey} at ${term}`);
    }
    const roles = await Promise.all(cluster.controllers.map(async (c) => [c.id, (await c.cluster()).self.role] as const));
    const leaders = roles.filter(([, role]) => role === 'leader').map(([id]) => id);
    if (leaders.length !== 1 || leaders[0] !== leader.id) violations.push(`replicas acting as leader: ${leaders.join(', ') || 'none'} (was ${leader.id})`);
    for (const c of cluster.controllers) {
      const ready = await fetch(`${c.url}/readyz`, { signal: AbortSignal.timeout(5000) });
      if (ready.status !== 200) notReady.push(`${c.id}: ${ready.status} ${await ready.text()}`);
    }
    samples += 1;
    await delay(500);
  }
  t.ok(samples > HOLD_S, `${samples} samples over ${HOLD_S} s`);
  t.same(violations, [], `one leader (${leader.id}) throughout, its election key unchanged (term ${term})`);
  t.same(notReady, [], '/readyz answered 200 on every replica throughout: a slow etcd is not a down etcd');

  proxy.setDelay(undefined);
  t.equal(await leader.metric('berth_leader_terms_total'), 1, 'the leader took office once');
  for (const c of cluster.controllers.filter((c) => c !== leader)) t.equal(await c.metric('berth_leader_terms_total'), 0, `${c.id} never took office`);
  for (const c of cluster.controllers) {
    const log = fs.readFileSync(path.join(cluster.dir, `${c.id}.log`), 'utf8');
    t.notMatch(log, /"msg":"no longer leader"/, `${c.id} logged no step-down`);
    t.notMatch(log, /informer watch disconnected|lease keepalive failed|campaign failed/, `${c.id} kept its watch and keepalive streams`);
    t.equal(await c.metric('berth_fenced_write_rejections_total'), 0, `${c.id}: no fenced write was rejected`);
  }
});
