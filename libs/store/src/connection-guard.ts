import { createRequire } from 'node:module';
import { castGrpcError, GRPCCancelledError, GRPCDeadlineExceededError, isRecoverableError, RecoverableError, type Etcd3 } from 'etcd3';
import type { IDefaultPolicyContext, IPolicy } from 'cockatiel';

/*
 * Latency is not a connection fault (etcd3 1.1.2, unmaintained).
 *
 * etcd3 treats every "recoverable" gRPC error alike: a unary call that
 * missed its deadline, or a stream that the client itself cancelled (the
 * watch manager going idle, the watch guard fencing a stream, a lease keeper
 * replacing a stream), makes its connection pool close every gRPC client of
 * that host. The shared HTTP/2 connection then goes idle and every healthy
 * stream on it, all informer watches and the election lease's keepalives,
 * dies with "Connection dropped". A slow etcd thus became stream resets,
 * re-watches and lost leadership. Seen with a proxy delaying etcd by 0.5-1.5 s.
 *
 * The fix: a deadline or a cancellation is about one call. Such errors no
 * longer reset the connection; on a single-host client they are also kept
 * out of the circuit breaker and the retry (there is no other member to
 * try, and a breaker would only turn slowness into refusals). A client of
 * several members still counts a unary call's deadline towards a member's
 * breaker and retries it on another member, so an isolated member that
 * cannot answer is avoided; a stream's deadline or cancellation never marks
 * its member failed (`installConnectionGuard`), whatever the member count.
 * A dead connection is still found: gRPC's keepalive pings, and the errors
 * of a real disconnect (UNAVAILABLE), which reset as before.
 */

/** True for errors that say a call was slow or cancelled, not that its connection failed. */
function isLatencyError(err: unknown): boolean {
  return err instanceof GRPCDeadlineExceededError || err instanceof GRPCCancelledError;
}

/** etcd3 marks its transient errors with an own property; without it the pool neither resets nor retries. */
function unmarkRecoverable(err: unknown): void {
  if (err instanceof Error) delete (err as unknown as Record<symbol, unknown>)[RecoverableError];
}

/** A host policy that lets latency errors past the connection pool's reset. */
class LatencyIsNotAFault implements IPolicy<IDefaultPolicyContext> {
  declare readonly _altReturn: never;

  constructor(private readonly inner: IPolicy<IDefaultPolicyContext>) {}

  get onSuccess() {
    return this.inner.onSuccess;
  }

  get onFailure() {
    return this.inner.onFailure;
  }

  async execute<T>(fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    try {
      return await this.inner.execute(fn, signal);
    } catch (err) {
      if (isLatencyError(err)) unmarkRecoverable(err);
      throw err;
    }
  }
}

/** What a host's circuit breaker and the client's retry count as a failure. */
export function countsAsHostFailure(err: Error, hostCount: number): boolean {
  return isLatencyError(err) ? hostCount > 1 : isRecoverableError(err);
}

/** Wraps a host's fault policy (its circuit breaker) so latency errors never reset the connection. */
export function latencyTolerant(policy: IPolicy<IDefaultPolicyContext>): IPolicy<IDefaultPolicyContext> {
  return new LatencyIsNotAFault(policy);
}

interface Pool {
  markFailed(resource: unknown, error: Error): void;
  hosts: Array<{ resetAllServices(): void }>;
}

let installed = false;

/**
 * A stream's error reaches the pool's `markFailed`, which closes every
 * gRPC client of the host; patched once per process so that a cancelled
 * (or timed-out) stream no longer does.
 */
export function installConnectionGuard(): void {
  if (installed) return;
  installed = true;
  const require = createRequire(import.meta.url);
  const { ConnectionPool } = require('etcd3/lib/connection-pool.js') as { ConnectionPool: { prototype: Pool } };
  const markFailed = ConnectionPool.prototype.markFailed;
  ConnectionPool.prototype.markFailed = function (this: Pool, resource: unknown, error: Error) {
    if (isLatencyError(castGrpcError(error))) return;
    markFailed.call(this, resource, error);
  };
}

/**
 * Closes the client's gRPC connections so the next call opens new ones: for
 * a connection presumed dead (a stream that stopped answering), which gRPC's
 * keepalive would only notice after its ping timeout.
 */
export function resetConnections(client: Etcd3): void {
  for (const host of (client as unknown as { pool: Pool }).pool.hosts) host.resetAllServices();
}
