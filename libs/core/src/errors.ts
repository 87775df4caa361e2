import { quoteEcho } from './limits.js';

/**
 * One error catalogue for the whole project: a stable code, an HTTP status and
 * a message. The REST API turns a BerthError into
 * `{ "error": code, "message": message, "details"?: details }`.
 */

/** Stable error codes with the HTTP status each maps to. */
export const ERROR_STATUS = {
  /** Input failed validation; `details` names the fields. */
  VALIDATION_FAILED: 400,
  /** Authentication is on and the request carries no valid token (or session cookie). */
  UNAUTHENTICATED: 401,
  /** The token is valid but its role may not do this; the message names the role needed. */
  FORBIDDEN: 403,
  /** No entity with that id or name. */
  NOT_FOUND: 404,
  /** A compare-and-swap lost against a concurrent writer, or a name is taken. */
  CONFLICT: 409,
  /** The request is valid but the entity's state does not allow it. */
  INVALID_TRANSITION: 409,
  /** The request body is larger than the server accepts. */
  PAYLOAD_TOO_LARGE: 413,
  /** Past the rate limit of the token (or, without one, of the client address); `Retry-After` says when to come back. */
  RATE_LIMITED: 429,
  /** A leader-only write was rejected by etcd: this replica no longer leads. */
  LEADERSHIP_LOST: 503,
  /** etcd did not answer (down, no quorum, or too slow). */
  ETCD_UNAVAILABLE: 503,
  /** This replica's caches are not synced with etcd yet. */
  NOT_READY: 503,
  /** A node agent the controller proxies to did not answer. */
  AGENT_UNREACHABLE: 502,
  /** A service has no pod that can take a request now (none, none ready, all ejected); the message says which. */
  NO_ENDPOINTS: 503,
  /** Every pod a routed request was tried on failed to answer (connection refused, reset, timeout). */
  UPSTREAM_UNREACHABLE: 502,
  /** A node's container runtime (its Docker engine) does not answer. */
  RUNTIME_UNAVAILABLE: 503,
  /** Something waited for a condition that did not arrive in time. */
  TIMEOUT: 504,
  /** A bug: an invariant did not hold. */
  INTERNAL: 500,
} as const;

/** A stable error code. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** Thrown for every expected failure; carries the code and HTTP status the API answers with. */
export class BerthError extends Error {
  override readonly name = 'BerthError';
  /** HTTP status the API answers with. */
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.statusCode = ERROR_STATUS[code];
  }
}

/** Shorthand constructors for the common cases, so messages read the same everywhere. */
export const errors = {
  validation: (message: string, details?: unknown) => new BerthError('VALIDATION_FAILED', message, details),
  notFound: (kind: string, id: string) => new BerthError('NOT_FOUND', `${kind} ${quoteEcho(id)} not found`),
  conflict: (message: string, details?: unknown) => new BerthError('CONFLICT', message, details),
  leadershipLost: (message: string, cause?: unknown) => new BerthError('LEADERSHIP_LOST', message, undefined, { cause }),
  etcdUnavailable: (message: string, cause?: unknown) => new BerthError('ETCD_UNAVAILABLE', message, undefined, { cause }),
  notReady: (message: string) => new BerthError('NOT_READY', message),
  timeout: (message: string) => new BerthError('TIMEOUT', message),
};

/** True when `err` is a BerthError with one of the given codes. */
export function isBerthError(err: unknown, ...codes: ErrorCode[]): err is BerthError {
  return err instanceof BerthError && (codes.length === 0 || codes.includes(err.code));
}
