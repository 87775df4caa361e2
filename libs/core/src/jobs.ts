import { Type, type Static } from 'typebox';
import { DateTime, DnsLabel, Ref, StringEnum, StringMap } from './schemas.js';
import { LIMITS } from './limits.js';

/**
 * Jobs: a request to a service, made durable in etcd before it is
 * acknowledged, dispatched by one controller replica at a time (its claim on
 * its lease), retried on another pod when an attempt fails in a way a retry
 * can mend, and answered with the pod's response.
 */

export const JOB_STATUSES = ['Queued', 'Running', 'Succeeded', 'Failed', 'TimedOut', 'Canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** A job in one of these is finished: nothing changes it again, and its record expires after the result TTL. */
export const TERMINAL_JOB_STATUSES: ReadonlySet<JobStatus> = new Set(['Succeeded', 'Failed', 'TimedOut', 'Canceled']);

/**
 * How an attempt ended: `Running` while it runs; `Succeeded` (2xx/3xx);
 * `Failed` (4xx: the request was wrong, no retry); `Error` (5xx, connection
 * refused or reset: retried on another pod); `TimedOut` (no answer within the
 * attempt's time); `Lost` (its replica died mid-attempt: re-queued);
 * `Canceled`.
 */
export const ATTEMPT_OUTCOMES = ['Running', 'Succeeded', 'Failed', 'Error', 'TimedOut', 'Lost', 'Canceled'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

export const JOB_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type JobMethod = (typeof JOB_METHODS)[number];

/** Bytes of a response body a job keeps; a larger answer fails the job, naming the size. */
export const MAX_JOB_RESULT_BYTES = 1024 * 1024;

/** A body as stored: text when it is valid UTF-8, else base64. */
export interface StoredBody {
  body: string;
  bodyEncoding: 'utf8' | 'base64';
}

/** One try of a job on one pod. */
export interface JobAttempt {
  attempt: number;
  replica: string;
  podId: string | null;
  nodeId: string | null;
  startedAt: string;
  finishedAt: string | null;
  outcome: AttemptOutcome;
  statusCode?: number;
  error?: string;
}

/** `/berth/jobs/<id>`. Created by the replica that accepted it; afterwards written only by the replica holding its claim (compare-and-swap), or by a cancel. */
export interface JobRecord {
  id: string;
  service: string;
  request: { method: JobMethod; path: string; headers: Record<string, string> } & Partial<StoredBody>;
  timeoutMs: number;
  attemptTimeoutMs: number;
  maxAttempts: number;
  idempotencyKey?: string;
  status: JobStatus;
  /** Why the job is where it is (e.g. why it is still Queued). */
  reason: string;
  message: string;
  attempts: JobAttempt[];
  result?: { statusCode: number; headers: Record<string, string> } & StoredBody;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

// ---- schemas ----

const HeaderName = '^[!#$%&\'*+.^_`|~0-9A-Za-z-]{1,128}$';

/** `POST /v1/jobs`. */
export const CreateJobRequest = Type.Object(
  {
    service: DnsLabel({ minLength: 1, maxLength: 50, description: 'the service whose pods run it' }),
    method: Type.Optional(StringEnum(JOB_METHODS, { description: 'default POST' })),
    path: Type.Optional(Type.String({ pattern: '^/[^\\s]*$', maxLength: LIMITS.jobPathLength, description: 'path and query on the pod (default /)' })),
    headers: Type.Optional(
      StringMap(HeaderName, LIMITS.jobHeaderValueLength, LIMITS.jobHeaders, 'request headers; hop-by-hop ones are dropped', '^[^\\r\\n]*$'),
    ),
    body: Type.Optional(Type.Unknown({ description: 'a string is sent as is; any other JSON value is sent as JSON' })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'the job is TimedOut this long after it was accepted (default 60000)' })),
    attemptTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'one attempt waits this long for an answer before the next pod is tried (default min(10000, timeoutMs))' })),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: 'tries on different pods before the job Fails (default 3)' })),
    idempotencyKey: Type.Optional(
      Type.String({ minLength: 1, maxLength: LIMITS.idempotencyKeyLength, pattern: '^[\\x21-\\x7e]+$', description: 'printable ASCII; a resubmission with the same key (same service) answers the existing job' }),
    ),
  },
  { $id: 'CreateJobRequest', additionalProperties: false },
);
export type CreateJobRequest = Static<typeof CreateJobRequest>;

const Body = {
  body: Type.Optional(Type.String()),
  bodyEncoding: Type.Optional(StringEnum(['utf8', 'base64'] as const)),
};

/** A job as stored. */
export const JobView = Type.Object(
  {
    id: Type.String(),
    service: Type.String(),
    request: Type.Object({ method: StringEnum(JOB_METHODS), path: Type.String(), headers: Type.Record(Type.String(), Type.String()), ...Body }),
    timeoutMs: Type.Integer(),
    attemptTimeoutMs: Type.Integer(),
    maxAttempts: Type.Integer(),
    idempotencyKey: Type.Optional(Type.String()),
    status: StringEnum(JOB_STATUSES),
    reason: Type.String(),
    message: Type.String(),
    attempts: Type.Array(
      Type.Object({
        attempt: Type.Integer(),
        replica: Type.String({ description: 'controller replica that dispatched it' }),
        podId: Type.Union([Type.String(), Type.Null()]),
        nodeId: Type.Union([Type.String(), Type.Null()]),
        startedAt: DateTime(),
        finishedAt: Type.Union([DateTime(), Type.Null()]),
        outcome: StringEnum(ATTEMPT_OUTCOMES),
        statusCode: Type.Optional(Type.Integer()),
        error: Type.Optional(Type.String()),
      }),
    ),
    result: Type.Optional(
      Type.Object({ statusCode: Type.Integer(), headers: Type.Record(Type.String(), Type.String()), body: Type.String(), bodyEncoding: StringEnum(['utf8', 'base64'] as const) }),
    ),
    createdAt: DateTime(),
    updatedAt: DateTime(),
    finishedAt: Type.Optional(DateTime()),
  },
  { $id: 'Job' },
);
export type JobView = Static<typeof JobView>;

/** `GET /v1/jobs`. */
export const JobList = Type.Object({ items: Type.Array(Ref(JobView)) }, { $id: 'JobList' });
export type JobList = Static<typeof JobList>;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** The API serves job records as stored: the schema cannot drift from the record. */
type _JobViewMatchesRecord = Assert<Same<JobView, JobRecord>>;
