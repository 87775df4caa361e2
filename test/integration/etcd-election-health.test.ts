import t from 'tap';
import { EtcdCluster, waitFor, type EtcdMember } from '@berth/devcluster';
import { EtcdHealth } from '@berth/controller';
import { createEtcdClient, ETCD_DOWN_AFTER_MS } from '@berth/store';
import { tempDir, testLog } from '../helpers/fixtures.js';

/**
 * A raft leader election is not an outage. When etcd's leader dies, the other
 * members elect a new one within about two election timeouts (1-2 s here);
 * linearizable reads sent meanwhile may stall until their deadline. The
 * controllers' health probe (production settings: every 1 s, down after 3 s)
 * must not turn such a stalled probe into "etcd is down", which answers every
 * API request 503 (compose.test's "killing etcd's raft leader" got one). A
 * real 3-member etcd; its raft leader SIGKILLed twice, then frozen (SIGSTOP).
 */

const SAMPLE_MS = 20;

t.test("killing etcd's raft leader: the health probe never reports etcd down", async (t) => {
  const etcd = await EtcdCluster.start({ dir: tempDir(t, 'berth-etcd-election-') });
  t.teardown(() => etcd.destroy());
  const clients = new Map(etcd.members.map((m) => [m.name, createEtcdClient([`http://127.0.0.1:${m.clientPort}`])]));
  const all = createEtcdClient(etcd.endpoints);
  t.teardown(() => {
    for (const c of [...clients.values(), all]) c.close();
  });
  const health = new EtcdHealth(etcd.endpoints, testLog);
  health.start();
  t.teardown(() => health.stop());
  await waitFor(() => health.reachable, { what: 'the first probe to answer' });

  const memberIds = new Map<string, string>();
  for (const m of etcd.members) memberIds.set(m.name, (await clients.get(m.name)!.maintenance.status()).header.member_id);
  /** The member that leads raft now, asked of the members that run. */
  const raftLeader = () =>
    waitFor(
      async () => {
        for (const m of etcd.members.filter((x) => x.process.running)) {
          const s = await clients.get(m.name)!.maintenance.status().catch(() => undefined);
          if (s !== undefined && s.leader !== '0') return etcd.members.find((x) => memberIds.get(x.name) === s.leader);
        }
        return undefined;
      },
      { what: 'a raft leader' },
    );

  for (let round = 1; round <= 3; round++) {
    const leader: EtcdMember = (await raftLeader())!;
    let samples = 0;
    let downSamples = 0;
    let unreachableMs = 0;
    const sampler = setInterval(() => {
      samples++;
      if (health.down) downSamples++;
      if (!health.reachable) unreachableMs += SAMPLE_MS;
    }, SAMPLE_MS);
    t.teardown(() => clearInterval(sampler));
    const killedAt = Date.now();
    const frozen = round === 3;
    if (frozen) leader.process.signal('SIGSTOP');
    else await leader.process.stop('SIGKILL');
    // Writes go through again once the others elected a leader.
    await waitFor(async () => (await all.put(`/election-test/${round}`).value(String(round)).options({ deadline: Date.now() + 500 }).then(() => true, () => false)) || undefined, { what: 'a write after the election', timeoutMs: 20_000, intervalMs: 50 });
    const electedAfter = Date.now() - killedAt;
    // The window to watch: a probe sent up to the election's end fails, if it does, by its deadline; one more round after that.
    const watchUntil = Date.now() + ETCD_DOWN_AFTER_MS + 1000;
    await waitFor(async () => Date.now() >= watchUntil, { what: 'the probes sent during the election to end', timeoutMs: 30_000, intervalMs: 100 });
    clearInterval(sampler);
    t.equal(downSamples, 0, `round ${round}: ${leader.name} ${frozen ? 'frozen (SIGSTOP)' : 'killed'}, writes again after ${electedAfter} ms; etcd never down in ${samples} samples (not reachable for ~${unreachableMs} ms)`);
    if (frozen) {
      leader.process.signal('SIGCONT');
      await etcd.waitHealthy(leader);
    } else await etcd.restart(leader);
  }
});
