import t from 'tap';
import path from 'node:path';
import { isBrokenCircuitError } from 'cockatiel';
import { createEtcdClient } from '@berth/store';
import { enableEtcdAuth, EtcdServer, waitFor } from '@berth/devcluster';
import { tempDir } from '../helpers/fixtures.js';

// A client whose token etcd no longer knows, meeting a half-open circuit breaker: etcd3 renewed the
// token from inside the breaker's trial call, whose retry then waited for the trial, and the trial
// for its retry. Every call and stream of that client hung for good, silently (auth-retry-guard.ts).

/** `p`, or a rejection after `ms`: a hung call must fail the check, not the whole test. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);
}

t.test('after etcd restarts, a stale token meeting a half-open breaker is renewed, not deadlocked', async (t) => {
  const dir = tempDir(t, 'berth-etcd-token-');
  const etcd = await EtcdServer.start({ dataDir: path.join(dir, 'etcd'), logDir: dir });
  t.teardown(() => etcd.destroy());
  const auth = await enableEtcdAuth(etcd.endpoint, path.join(dir, 'etcd-auth'));
  const client = createEtcdClient(etcd.endpoint, { credentials: auth.controller, callTimeoutMs: 2000 });
  t.teardown(() => client.close());
  await client.put('/berth/x').value('1').exec();
  t.equal(await client.get('/berth/x').string(), '1', 'the client logged in (its token is cached)');

  await etcd.stop();
  // Calls fail until the breaker opens: the next call after its 500 ms is the half-open trial.
  await waitFor(
    async () => {
      const err = await within(client.get('/berth/x').string(), 5000).then(
        () => undefined,
        (e: unknown) => e,
      );
      return isBrokenCircuitError(err) ? true : undefined;
    },
    { what: 'the circuit breaker to open while etcd is down', timeoutMs: 20_000, intervalMs: 50 },
  );
  await etcd.start(); // every token etcd issued is gone

  const value = await waitFor(() => within(client.get('/berth/x').string(), 3000).catch((err: Error) => (isBrokenCircuitError(err) ? undefined : Promise.reject(err))), {
    what: 'a read after etcd restarted',
    timeoutMs: 15_000,
    intervalMs: 50,
  });
  t.equal(value, '1', 'the trial call renews the token and answers');
  await within(client.put('/berth/x').value('2').exec(), 3000);
  t.equal(await within(client.get('/berth/x').string(), 3000), '2', 'and later calls through the same host too');
});
