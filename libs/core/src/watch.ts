import { Type, type Static } from 'typebox';
import { JOB_METHODS, JOB_STATUSES, type JobRecord } from './jobs.js';
import { BerthEvent, DateTime, EtcdStatus, LeaderView, NodeView, PodView, Ref, ReplicaView, StringEnum } from './schemas.js';
import { ServiceView } from './services.js';
import { REPLICA_ROLES } from './types.js';

/**
 * The live stream (`GET /v1/events?watch=1`): a snapshot, then coalesced
 * changes. The dashboard and `berth get -w` compile against these types.
 * Jobs travel as summaries: a job's record may hold a result body of up to
 * 1 MiB, and a view of recent jobs needs none of it.
 */

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;

/** How many jobs a snapshot carries (the newest), and how many changed jobs one batch of changes carries at most. */
export const WATCH_RECENT_JOBS = 50;

/** A job as the live stream shows it: what a list of recent jobs needs, without bodies or headers. */
export const JobSummary = Type.Object({
  id: Type.String(),
  service: Type.String(),
  method: StringEnum(JOB_METHODS),
  path: Type.String(),
  status: StringEnum(JOB_STATUSES),
  reason: Type.String(),
  message: Type.String(),
  attempts: Type.Integer({ description: 'attempts so far' }),
  statusCode: Type.Optional(Type.Integer({ description: "the pod's answer: the result's status, else the last attempt's" })),
  createdAt: DateTime(),
  updatedAt: DateTime(),
  finishedAt: Type.Optional(DateTime()),
});
export type JobSummary = Static<typeof JobSummary>;

/** The fields a summary copies from the record: it cannot drift from it. */
type Copied = 'id' | 'service' | 'status' | 'reason' | 'message' | 'createdAt' | 'updatedAt' | 'finishedAt';
type _JobSummaryMatchesRecord = Assert<Same<Pick<JobSummary, Copied>, Pick<JobRecord, Copied>>>;

/** A job's summary. */
export function jobSummary(job: JobRecord): JobSummary {
  const last = job.attempts[job.attempts.length - 1];
  const statusCode = job.result?.statusCode ?? last?.statusCode;
  return {
    id: job.id,
    service: job.service,
    method: job.request.method,
    path: job.request.path,
    status: job.status,
    reason: job.reason,
    message: job.message,
    attempts: job.attempts.length,
    ...(statusCode === undefined ? {} : { statusCode }),
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
  };
}

/** Newest first: later `createdAt` first, ties by id so every replica orders alike. */
export function newerJobFirst(a: { id: string; createdAt: string }, b: { id: string; createdAt: string }): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * The `n` newest of `items`, newest first, in one pass that keeps only `n`
 * (a replica may cache many thousands of jobs; sorting them all for a
 * snapshot would cost every subscriber that much).
 */
export function newestJobs<T>(items: Iterable<T>, n: number, jobOf: (item: T) => { id: string; createdAt: string }): T[] {
  const top: T[] = [];
  for (const item of items) {
    const job = jobOf(item);
    if (top.length === n && newerJobFirst(job, jobOf(top[n - 1]!)) >= 0) continue;
    let i = top.length;
    while (i > 0 && newerJobFirst(job, jobOf(top[i - 1]!)) < 0) i--;
    top.splice(i, 0, item);
    if (top.length > n) top.pop();
  }
  return top;
}

/** The first message of `GET /v1/events?watch=1` (and of every reconnect): everything a fresh view needs at once. */
export const WatchSnapshot = Type.Object({
  self: Type.Object({ id: Type.String(), role: StringEnum(REPLICA_ROLES) }, { description: 'the replica serving the stream' }),
  leader: Ref(LeaderView),
  replicas: Type.Array(Ref(ReplicaView)),
  nodes: Type.Array(Ref(NodeView)),
  pods: Type.Array(Ref(PodView)),
  services: Type.Array(Ref(ServiceView), { description: 'every service, with its endpoints as the serving replica routes to them' }),
  jobs: Type.Array(JobSummary, { description: `the ${WATCH_RECENT_JOBS} newest jobs, newest first` }),
  events: Type.Array(Ref(BerthEvent), { description: 'most recent audit events, newest last' }),
  revision: Type.Integer({ description: 'highest etcd revision applied to the caches' }),
  etcd: EtcdStatus,
});
export type WatchSnapshot = Static<typeof WatchSnapshot>;

/** Stream message `leader`: leadership or the set of replicas changed. */
export const LeaderChange = Type.Object({ leader: Ref(LeaderView), replicas: Type.Array(Ref(ReplicaView)) });
/** Stream message `node`: a node changed; `node` is null once it is gone. */
export const NodeChange = Type.Object({ id: Type.String(), node: Type.Union([Ref(NodeView), Type.Null()]) });
/** Stream message `pod`: a pod changed; `pod` is null once it is gone. */
export const PodChange = Type.Object({ id: Type.String(), pod: Type.Union([Ref(PodView), Type.Null()]) });
/** Stream message `service`: a service, its pods or their readiness changed; `service` is null once it is gone. */
export const ServiceChange = Type.Object({ name: Type.String(), service: Type.Union([Ref(ServiceView), Type.Null()]) });
/**
 * Stream message `job`: a job changed; `job` is null once it is gone (its
 * result expired). A batch carries the changes of at most the
 * `WATCH_RECENT_JOBS` newest changed jobs, so a client that keeps the newest
 * `WATCH_RECENT_JOBS` jobs of the snapshot and these messages stays exact.
 */
export const JobChange = Type.Object({ id: Type.String(), job: Type.Union([JobSummary, Type.Null()]) });

/** The data of each message of `GET /v1/events?watch=1`, by SSE event name. */
export interface WatchMessages {
  snapshot: WatchSnapshot;
  leader: Static<typeof LeaderChange>;
  node: Static<typeof NodeChange>;
  pod: Static<typeof PodChange>;
  service: Static<typeof ServiceChange>;
  job: Static<typeof JobChange>;
  event: BerthEvent;
  etcd: EtcdStatus;
}
/** One message of the stream: its SSE event name and its (JSON) data. */
export type WatchMessage = { [K in keyof WatchMessages]: { event: K; data: WatchMessages[K] } }[keyof WatchMessages];
