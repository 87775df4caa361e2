import { createRequire } from 'node:module';
import { castGrpcError, EtcdInvalidAuthTokenError } from 'etcd3';
import { isBrokenCircuitError, type IPolicy } from 'cockatiel';

/*
 * A deadlock in etcd3's renewal of an expired auth token (etcd3 1.1.2,
 * unmaintained).
 *
 * A unary call runs inside its host's fault policy (Berth's circuit
 * breaker). When etcd answers "invalid auth token" (etcd restarted, or the
 * simple token expired unused), etcd3 drops the cached token and calls
 * `exec` again from inside that policy's execution. Right after etcd comes
 * back the breaker is half-open, and the call it lets through is its trial:
 * the breaker makes every other call wait for the trial to end. The retry is
 * one of those calls, so the trial waits for its own retry, which waits for
 * the trial: neither ever settles, and with them every later call and every
 * stream (watches, lease keepalives) on that host waits for ever, with no
 * error. Seen after etcd restarts with auth on: a controller whose watches
 * silently stopped kept showing an old leader, and replicas never agreed.
 *
 * The fix: the same `exec`, except that a call refused for its token leaves
 * the policies first (an error the breaker does not count, so a trial that
 * meets it closes the breaker), and the client then fetches a new token and
 * calls again from the top, at most a few times.
 */

/** Calls refused for a stale token in a row before the refusal is the caller's error. */
const MAX_TOKEN_RENEWALS = 3;

interface Pool {
  mockImpl?: { exec(service: string, method: string, payload: unknown): Promise<unknown> } | null;
  globalPolicy: IPolicy;
  callOptionsFactory: unknown;
  authenticator: { invalidateMetadata(): void };
  shuffledHosts(): Iterator<unknown>;
  withConnection(service: string, fn: (conn: { client: Record<string, Function>; metadata: unknown }) => Promise<unknown>, hosts: Iterator<unknown>): Promise<unknown>;
  exec(service: string, method: string, payload: unknown, options?: unknown): Promise<unknown>;
}

type ResolveCallOptions = (options: unknown, defaults: unknown, context: { service: string; method: string; params: unknown; isStream: boolean }) => unknown;

let installed = false;

/** Replaces etcd3's ConnectionPool.exec once per process (idempotent). */
export function installAuthRetryGuard(): void {
  if (installed) return;
  installed = true;
  const require = createRequire(import.meta.url);
  const { ConnectionPool } = require('etcd3/lib/connection-pool.js') as { ConnectionPool: { prototype: Pool } };
  const { resolveCallOptions } = require('etcd3/lib/util.js') as { resolveCallOptions: ResolveCallOptions };

  ConnectionPool.prototype.exec = async function (this: Pool, service, method, payload, options) {
    if (this.mockImpl) return this.mockImpl.exec(service, method, payload);
    for (let renewals = 0; ; renewals++) {
      const hosts = this.shuffledHosts();
      let lastError: unknown;
      let staleToken = false;
      try {
        return await this.globalPolicy.execute(() =>
          this.withConnection(
            service,
            async ({ client, metadata }) => {
              const resolved = resolveCallOptions(options, this.callOptionsFactory, { service, method, params: payload, isStream: false });
              try {
                return await new Promise((resolve, reject) => {
                  client[method]!(payload, metadata, resolved ?? {}, (err: Error | null, res: unknown) => (err ? reject(castGrpcError(err)) : resolve(res)));
                });
              } catch (err) {
                if (err instanceof EtcdInvalidAuthTokenError) staleToken = true;
                else lastError = err;
                throw err;
              }
            },
            hosts,
          ),
        );
      } catch (err) {
        if (staleToken && renewals < MAX_TOKEN_RENEWALS) {
          this.authenticator.invalidateMetadata();
          continue;
        }
        // As etcd3: a breaker that opened after an earlier error reports that error, not its own.
        if (isBrokenCircuitError(err) && lastError !== undefined && !isBrokenCircuitError(lastError)) throw lastError;
        throw err;
      }
    }
  };
}
