import t from 'tap';
import { waitFor } from '@berth/devcluster';
import { clusterFor, TextStream } from '../helpers/fixtures.js';

t.test('etcd stops and comes back: 503 with a message, then recovery without restarts', async (t) => {
  const cluster = await clusterFor(t);
  const before = await cluster.waitForAgreedLeader();
  for (const c of cluster.controllers) await c.waitReady();

  // The live stream (dashboard, `berth get -w`) stays open through the outage and says when etcd is away.
  const stream = new TextStream(await fetch(`${cluster.controllers[0]!.url}/v1/events?watch=1`));
  t.teardown(() => stream.close());
  t.ok(await stream.until((s) => /event: snapshot\ndata: .*"etcd":\{"reachable":true,"message":null\}/.test(s)), 'the snapshot says etcd is reachable');

  // 1. etcd goes away.
  await cluster.etcd.stop();
  for (const c of cluster.controllers) {
    const res = await waitFor(
      async () => {
        const r = await fetch(`${c.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        return r.status === 503 ? r : undefined;
      },
      { what: `${c.id} /readyz to answer 503` },
    );
    const body = (await res.json()) as { error: string; message: string };
    t.equal(body.error, 'ETCD_UNAVAILABLE', `${c.id} says etcd is unavailable`);
    t.match(body.message, /^etcd (cannot be reached|did not answer in time).*\(http:\/\/127\.0\.0\.1:\d+: /, `${c.id} says why and names the endpoint: ${body.message}`);
    const health = await fetch(`${c.url}/healthz`, { signal: AbortSignal.timeout(2000) });
    t.equal(health.status, 200, `${c.id} /healthz stays up`);
    // Reads say etcd is away instead of serving a frozen cache as current (once every probe failed for 3 s).
    const read = await waitFor(
      async () => {
        const r = await fetch(`${c.url}/v1/leader`, { signal: AbortSignal.timeout(2000) });
        return r.status === 503 ? r : undefined;
      },
      { what: `${c.id} GET /v1/leader to answer 503` },
    );
    t.equal(((await read.json()) as { error: string }).error, 'ETCD_UNAVAILABLE', `${c.id} GET /v1/leader answers 503 while etcd is away`);
    const diag = await fetch(`${c.url}/v1/cluster`, { signal: AbortSignal.timeout(2000) });
    t.equal(diag.status, 200, `${c.id} GET /v1/cluster still answers (diagnostics)`);
    t.equal(((await diag.json()) as { etcd: { reachable: boolean } }).etcd.reachable, false, 'and reports etcd unreachable');
  }
  // A write while etcd is away: a clear 503, and nothing half-written afterwards.
  const write = await fetch(`${cluster.controllers[0]!.url}/v1/nodes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'during-outage', cpu: 1 }),
    signal: AbortSignal.timeout(10_000),
  });
  t.equal(write.status, 503, 'a write during the outage answers 503');
  const writeBody = (await write.json()) as { error: string; message: string };
  t.equal(writeBody.error, 'ETCD_UNAVAILABLE');
  t.match(writeBody.message, /^etcd (cannot be reached|did not answer in time)/, `the message says what is wrong: ${writeBody.message}`);

  // No replica may go on believing it leads once its lease cannot be renewed.
  await waitFor(
    async () => {
      const roles = await Promise.all(cluster.controllers.map(async (c) => (await c.cluster()).self.role));
      return roles.every((r) => r === 'follower');
    },
    { what: 'every replica to stop leading while etcd is away', timeoutMs: 5000 },
  );

  t.ok(await stream.until((s) => /event: etcd\ndata: \{"reachable":false,"message":"etcd cannot be reached/.test(s)), 'the stream says etcd is away');

  // 2. etcd comes back on the same data: everything recovers by itself.
  await cluster.etcd.start();
  t.ok(await stream.until((s) => /event: etcd\ndata: \{"reachable":true,"message":null\}/.test(s)), 'and then that it is back');
  for (const c of cluster.controllers) await c.waitReady(20_000);
  const after = await cluster.waitForAgreedLeader({ timeoutMs: 20_000 });
  t.ok(after, `a leader (${after.id}) after recovery (was ${before.id})`);
  const view = await waitFor(
    async () => {
      const v = await after.cluster();
      return new Set(v.replicas.map((r) => r.id)).size === 3 && v.replicas.length === 3 ? v : undefined;
    },
    { what: 'each replica to campaign again with exactly one key' },
  );
  t.equal(view.replicas[0]?.id, after.id, 'the leader holds the oldest key');
  const roles = await Promise.all(cluster.controllers.map(async (c) => (await c.cluster()).self.role));
  t.equal(roles.filter((r) => r === 'leader').length, 1, 'exactly one leader after recovery');
  const lookup = await fetch(`${after.url}/v1/nodes/during-outage`);
  t.equal(lookup.status, 404, 'the refused write left nothing behind');
});
