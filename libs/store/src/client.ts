import {
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  GRPCCancelledError,
  isRecoverableError,
  EtcdWatchStreamEnded,
  type IOptions,
} from 'etcd3';
import { type IBackoff, circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import { BerthError, errors } from '@berth/core';
import { installWatchGuard } from './watch-guard.js';

/** Tuning of the etcd client; the defaults suit a local HA cluster and the tests. */
export interface EtcdClientOptions {
  /** Per-call deadline for unary calls (ms). Without one a call to an etcd without quorum hangs. */
  callTimeoutMs?: number;
}

/** Parses `--etcd URL[,URL...]` into the host list etcd3 wants. */
export function parseEndpoints(spec: string): string[] {
  const hosts = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (hosts.length === 0) throw errors.validation('etcd endpoints: at least one URL is required (e.g. http://127.0.0.1:2379)');
  return hosts;
}

/**
 * An etcd3 client tuned for fast failover: etcd3's default host circuit
 * breaker stays open for 5 s after three failures, which would delay
 * recovery after an etcd restart by that much, and its watch backoff grows
 * to 5 s; both are shortened here. Unary calls get a deadline so an etcd
 * without quorum produces an error instead of a hang.
 */
export function createEtcdClient(endpoints: string[] | string, opts: EtcdClientOptions = {}): Etcd3 {
  // etcd3's watch manager can throw from a gRPC callback after a stream failure: contained once per process.
  installWatchGuard();
  const hosts = typeof endpoints === 'string' ? parseEndpoints(endpoints) : endpoints;
  const callTimeoutMs = opts.callTimeoutMs ?? 3000;
  const options: IOptions = {
    hosts,
    dialTimeout: 1000,
    // Lists of thousands of pods exceed gRPC's default 4 MiB message limit.
    grpcOptions: {
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      // Detect half-open connections (black-holed network, a host that vanished) in seconds, not TCP's minutes.
      // etcd's default --grpc-keepalive-min-time is 5 s; pinging less often than that is allowed.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length }),
      // etcd3's typings predate cockatiel 3's backoff factories; its own default is this same class.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) as unknown as IBackoff<unknown>,
    },
  };
  return new Etcd3(options);
}

/** True for errors that mean "etcd could not be reached or did not answer in time". */
export function isUnavailable(err: unknown): boolean {
  return (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCCancelledError ||
    err instanceof EtcdWatchStreamEnded ||
    isBrokenCircuitError(err) ||
    (err instanceof Error && /deadline|unavailable|ECONNREFUSED|No connection established/i.test(err.message))
  );
}

/** How an etcd request failed: no answer before its deadline, no connection, or something else. */
export function unavailableKind(err: unknown): 'timeout' | 'refused' | 'other' {
  const detail = err instanceof Error ? err.message : String(err);
  if (err instanceof GRPCDeadlineExceededError || /deadline/i.test(detail)) return 'timeout';
  if (isBrokenCircuitError(err) || err instanceof GRPCUnavailableError || /ECONNREFUSED|No connection established|unavailable/i.test(detail)) return 'refused';
  return 'other';
}

/**
 * Says in plain words why etcd did not serve a request, the client's own
 * message in brackets. A member that is down refuses connections, and the
 * client moves on to the next endpoint; when a majority is down the members
 * left accept connections but cannot commit or serve linearizable reads, so
 * requests run into their deadline: that is how lost quorum shows.
 */
export function explainUnavailable(err: unknown): string {
  const detail = err instanceof Error ? err.message : String(err);
  switch (unavailableKind(err)) {
    case 'timeout':
      return `etcd did not answer in time: a majority of its members may be down (no quorum), unreachable or overloaded; Berth resumes when it answers again [${detail}]`;
    case 'refused':
      return `etcd cannot be reached (connection refused or lost); Berth resumes when it answers again [${detail}]`;
    default:
      return `etcd is unavailable [${detail}]`;
  }
}

/** Maps an etcd client error to the API's error catalogue; BerthErrors pass through. */
export function toBerthError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  if (isUnavailable(err)) return errors.etcdUnavailable(explainUnavailable(err), err);
  const detail = err instanceof Error ? err.message : String(err);
  return new BerthError('INTERNAL', `etcd request failed: ${detail}`, undefined, { cause: err });
}
