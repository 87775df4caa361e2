import {
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  GRPCCancelledError,
  EtcdWatchStreamEnded,
  type IOptions,
} from 'etcd3';
import { type IBackoff, circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import { BerthError, errors } from '@berth/core';
import { installWatchGuard } from './watch-guard.js';
import { installAuthRetryGuard } from './auth-retry-guard.js';
import { countsAsHostFailure, installConnectionGuard, latencyTolerant } from './connection-guard.js';
import { CALL_TIMEOUT_MS } from './timing.js';

/** Tuning of the etcd client; the defaults suit a local HA cluster and the tests. */
export interface EtcdClientOptions {
  /** Per-call deadline for unary calls (ms; default CALL_TIMEOUT_MS). Without one a call to an etcd without quorum hangs. */
  callTimeoutMs?: number;
  /**
   * Open this client's own TCP connection instead of sharing gRPC's
   * process-wide one to the same address: for health probes, whose
   * deadlines must tell about etcd, not about the controller's own traffic.
   */
  ownConnection?: boolean;
  /** Who this component is to etcd (user/password, TLS): its own credentials, so etcd's roles bound what it may write. */
  credentials?: EtcdCredentials;
}

/**
 * A component's etcd identity. With `user`, the client authenticates
 * (etcd's Authenticate) and sends the token with every call; etcd3 fetches
 * a new token when etcd answers "invalid auth token" (a simple token expires
 * after `--auth-token-ttl` of disuse on a member). With `ca`, connections use
 * TLS; with `cert`/`key` too, the client presents that certificate.
 */
export interface EtcdCredentials {
  user?: string;
  /** Never logged: read from a file (`--etcd-password-file`), never from a flag's value. */
  password?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
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
 * An etcd3 client tuned for fast recovery and for a slow etcd. etcd3's
 * default host circuit breaker stays open for 5 s after three failures,
 * which would delay recovery after an etcd restart by that much, and its
 * watch backoff grows to 5 s; both are shortened here. Unary calls get a
 * deadline so an etcd without quorum produces an error instead of a hang.
 * A missed deadline or a cancelled stream concerns that call alone: it does
 * not reset the connection (every other stream on it), and on a single host
 * it neither opens the breaker nor is retried (connection-guard.ts).
 */
export function createEtcdClient(endpoints: string[] | string, opts: EtcdClientOptions = {}): Etcd3 {
  // etcd3's watch manager can throw from a gRPC callback after a stream failure: contained once per process.
  installWatchGuard();
  installConnectionGuard();
  // etcd3 renews a stale auth token from inside the circuit breaker, which deadlocks a half-open breaker.
  installAuthRetryGuard();
  const hosts = typeof endpoints === 'string' ? parseEndpoints(endpoints) : endpoints;
  const callTimeoutMs = opts.callTimeoutMs ?? CALL_TIMEOUT_MS;
  const isHostFailure = (err: Error) => countsAsHostFailure(err, hosts.length);
  const options: IOptions = {
    hosts,
    // Lists of thousands of pods exceed gRPC's default 4 MiB message limit.
    grpcOptions: {
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      // Detect half-open connections (black-holed network, a host that vanished) in seconds, not TCP's minutes.
      // etcd's default --grpc-keepalive-min-time is 5 s; pinging less often than that is allowed. The ping's
      // 5 s timeout is well above the tolerated round trip, so latency never looks like a dead connection.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      ...(opts.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      host: () => latencyTolerant(circuitBreaker(handleWhen(isHostFailure), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(3) })),
      global: retry(handleWhen(isHostFailure), { maxAttempts: hosts.length }),
      // etcd3's typings predate cockatiel 3's backoff factories; its own default is this same class.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) as unknown as IBackoff<unknown>,
    },
    ...credentialOptions(opts.credentials),
  };
  return new Etcd3(options);
}

function credentialOptions(c: EtcdCredentials | undefined): Partial<IOptions> {
  if (c === undefined) return {};
  const out: Partial<IOptions> = {};
  if (c.user !== undefined) out.auth = { username: c.user, password: c.password ?? '' };
  // etcd3 switches every host to TLS when `credentials` is set (whatever the URL's scheme says).
  if (c.ca !== undefined) out.credentials = { rootCertificate: c.ca, ...(c.cert ? { certChain: c.cert } : {}), ...(c.key ? { privateKey: c.key } : {}) };
  return out;
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
  // etcd refuses a transaction over its request size limit (1.5 MiB by default): the write was too big, not etcd broken.
  if (/request is too large/.test(detail)) {
    return new BerthError('PAYLOAD_TOO_LARGE', 'the record this request makes is larger than etcd accepts in one request (1.5 MiB by default)', undefined, { cause: err });
  }
  return new BerthError('INTERNAL', `etcd request failed: ${detail}`, undefined, { cause: err });
}
