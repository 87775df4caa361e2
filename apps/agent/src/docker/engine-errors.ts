import { RuntimeUnavailableError } from '../runtime.js';

/** Socket-level failures: the engine is not there (stopped, socket gone), not a problem of the request. */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENOTCONN', 'EACCES']);

/** What dockerode's errors carry: the HTTP status of an API error, or the socket's error code. */
interface DockerError extends Error {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | null;
}

/** Where the engine is, as the docker CLI would find it. */
export function engineAddress(): string {
  return process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
}

/** The HTTP status of an engine API error (404 no such container, 409 conflict, ...), or undefined. */
export function statusOf(err: unknown): number | undefined {
  return (err as DockerError | undefined)?.statusCode;
}

/** The engine's own message of an API error (dockerode wraps it as "(HTTP code 404) no such container - <engine message>"). */
export function engineMessage(err: unknown): string {
  const e = err as DockerError;
  const msg = e?.json?.message;
  if (typeof msg === 'string' && msg.length > 0) return msg;
  return e instanceof Error ? e.message : String(err);
}

/** True when `err` says the engine is away (transient), rather than that it refused the request (permanent). */
export function isUnavailable(err: unknown): boolean {
  const e = err as DockerError | undefined;
  if (e === undefined || e === null) return false;
  if (e instanceof RuntimeUnavailableError) return true;
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  return e instanceof Error && e.statusCode === undefined && /socket hang up|connect E|read ECONNRESET|write EPIPE/.test(e.message);
}

/**
 * How long one engine call may take before the agent gives up on it, like
 * the kubelet's `--runtime-request-timeout` (2 min there). An engine call
 * that never answers (a wedged engine, a connection lost without a reset)
 * must not hold a pod's sync forever: the call is aborted and the sync is
 * retried with back-off like any engine outage.
 */
export const ENGINE_CALL_TIMEOUT_MS = 60_000;

/**
 * Runs an engine call, turning "the engine is not there" into
 * RuntimeUnavailableError (which the reconciler retries and never fails a pod
 * for); the engine's refusals pass through for the caller to judge. `fn`
 * hands `signal` to dockerode (`abortSignal`): it aborts the request after
 * `timeoutMs`, which then counts as the engine being unavailable.
 */
export async function callEngine<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, timeoutMs = ENGINE_CALL_TIMEOUT_MS): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    return await fn(signal);
  } catch (err) {
    if (signal.aborted) {
      throw new RuntimeUnavailableError(`the Docker engine at ${engineAddress()} gave no answer (${what}) within ${timeoutMs / 1000} s`, { cause: err });
    }
    if (isUnavailable(err)) {
      throw new RuntimeUnavailableError(`the Docker engine at ${engineAddress()} is unavailable (${what}): ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}

/** A `.catch` that swallows engine answers with these statuses (304 already done, 404 gone, 409 in the way) and rethrows the rest. */
export function ignoreStatus(...codes: number[]): (err: unknown) => void {
  return (err: unknown): void => {
    if (!codes.includes(statusOf(err) ?? -1)) throw err;
  };
}
