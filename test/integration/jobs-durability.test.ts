import t from 'tap';
import type { JobRecord } from '@berth/core';
import { waitFor, type ControllerProcess } from '@berth/devcluster';
import { HC, serviceCluster } from '../helpers/services.js';

const JOBS = 500;
const CONCURRENCY = 16;

t.test('no acknowledged job is lost when the leader and then a follower are SIGKILLed', async (t) => {
  const s = await serviceCluster(t, { agents: 2 });
  const { cluster, api, command } = s;
  const leader = await cluster.waitForAgreedLeader();
  t.equal((await api(leader, 'POST', '/v1/services', { name: 'work', replicas: 2, template: { command, cpu: 0.1, memoryMiB: 32, ports: [8080], healthCheck: HC } })).status, 201);
  for (const c of cluster.controllers) await s.readyEndpoints(c, 'work', 2);

  const acked = new Set<string>();
  let refused = 0;
  let next = 0;
  const killed: string[] = [];
  const alive = () => cluster.controllers.filter((c) => c.process.running && !killed.includes(c.id));
  const submitter = async (w: number) => {
    for (;;) {
      const i = next++;
      if (i >= JOBS) return;
      // Each job goes to a live replica in turn; one that dies mid-request just does not acknowledge it.
      for (let tries = 0; ; tries++) {
        const targets = alive();
        const c = targets[(i + w + tries) % targets.length]!;
        try {
          const res = await c.request('POST', '/v1/jobs', { service: 'work', path: `/slow?ms=${50 + (i % 4) * 50}`, timeoutMs: 120_000, maxAttempts: 5 }, 10_000);
          if (res.status === 202) {
            acked.add(res.body.id as string);
            break;
          }
          refused += 1;
        } catch {
          refused += 1;
        }
      }
    }
  };
  const kills = (async () => {
    await waitFor(() => acked.size >= JOBS * 0.3, { what: '30 % of the jobs acknowledged', timeoutMs: 120_000 });
    const l = await cluster.waitForAgreedLeader();
    killed.push(l.id);
    l.process.killNow();
    t.comment(`SIGKILLed the leader ${l.id} after ${acked.size} acknowledged jobs`);
    await waitFor(() => acked.size >= JOBS * 0.6, { what: '60 % of the jobs acknowledged', timeoutMs: 120_000 });
    const f = alive()[0]!;
    killed.push(f.id);
    f.process.killNow();
    t.comment(`SIGKILLed the follower ${f.id} after ${acked.size} acknowledged jobs`);
  })();
  await Promise.all([...Array.from({ length: CONCURRENCY }, (_, w) => submitter(w)), kills]);
  t.equal(killed.length, 2);
  const survivor: ControllerProcess = alive()[0]!;
  t.comment(`${acked.size} acknowledged, ${refused} submissions refused or cut off by a kill`);

  const final = await waitFor(async () => {
    const all = (await api(survivor, 'GET', '/v1/jobs?service=work&limit=10000')).body.items as JobRecord[];
    const byId = new Map(all.map((j) => [j.id, j]));
    const open = [...acked].filter((id) => !['Succeeded', 'Failed', 'TimedOut', 'Canceled'].includes(byId.get(id)?.status ?? 'missing'));
    return open.length === 0 ? byId : undefined;
  }, { what: 'every acknowledged job to finish', timeoutMs: 120_000 });

  const missing = [...acked].filter((id) => !final.has(id));
  t.same(missing, [], 'every acknowledged job is in etcd');
  const notSucceeded = [...acked].map((id) => final.get(id)!).filter((j) => j.status !== 'Succeeded');
  t.same(notSucceeded.map((j) => `${j.id} ${j.status} ${j.message}`), [], 'every acknowledged job succeeded');
  let lost = 0;
  let adopted = 0;
  for (const id of acked) {
    const j = final.get(id)!;
    t.ok(j.attempts.length >= 1 && j.attempts[j.attempts.length - 1]!.outcome === 'Succeeded', `job ${id} has its attempts recorded`);
    if (j.attempts.some((a) => a.outcome === 'Lost')) lost += 1;
    if (j.attempts.some((a) => killed.includes(a.replica)) || j.reason === 'Adopted') adopted += 1;
  }
  t.ok(((await survivor.metric('berth_jobs_adopted_total')) ?? 0) > 0, 'the survivor adopted jobs of the killed replicas (berth_jobs_adopted_total)');
  t.comment(`${lost} job(s) had an attempt lost with its replica and ran again; ${adopted} touched a killed replica`);
});
