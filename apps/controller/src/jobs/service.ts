import type { Etcd3 } from 'etcd3';
import {
  BerthError,
  errors,
  jobKeyKey,
  keyOf,
  newId,
  TERMINAL_JOB_STATUSES,
  type CreateJobRequest,
  type JobRecord,
  type JobStatus,
} from '@berth/core';
import { toBerthError, type Versioned } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';
import { MAX_ACCEPTED_JOB_BYTES, NotMine, type JobDispatcher } from './dispatcher.js';

/** Defaults of a job request. */
export const JOB_DEFAULTS = { method: 'POST', path: '/', timeoutMs: 60_000, attemptTimeoutMs: 10_000, maxAttempts: 3 } as const;
/** The longest a `GET /v1/jobs/:id?wait=` holds the request. */
export const MAX_WAIT_SECONDS = 60;

/**
 * The API's side of jobs, on any replica: accepts a job (durable before the
 * answer), answers reads from the watch cache, long-polls for a result, and
 * cancels. Running jobs is the dispatcher's.
 */
export class JobService {
  /** Long polls waiting for a job to finish, by job id. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly dispatcher: JobDispatcher,
  ) {
    state.jobs.on('change', ({ key, item }) => {
      if (item !== undefined && !TERMINAL_JOB_STATUSES.has(item.value.status)) return;
      const id = key.slice(key.lastIndexOf('/') + 1);
      const set = this.waiters.get(id);
      if (set === undefined) return;
      this.waiters.delete(id);
      for (const wake of set) wake();
    });
  }

  /** Accepts a job: 202 with the new record once etcd holds it, or 200 with the job an idempotency key already names. */
  async submit(req: CreateJobRequest): Promise<{ created: boolean; job: JobRecord }> {
    this.state.service(req.service);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
    let body: string | undefined;
    if (typeof req.body === 'string') body = req.body;
    else if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }
    const timeoutMs = req.timeoutMs ?? JOB_DEFAULTS.timeoutMs;
    const now = new Date().toISOString();
    const job: JobRecord = {
      id: newId(),
      service: req.service,
      request: { method: req.method ?? JOB_DEFAULTS.method, path: req.path ?? JOB_DEFAULTS.path, headers, ...(body === undefined ? {} : { body, bodyEncoding: 'utf8' as const }) },
      timeoutMs,
      attemptTimeoutMs: Math.min(req.attemptTimeoutMs ?? JOB_DEFAULTS.attemptTimeoutMs, timeoutMs),
      maxAttempts: req.maxAttempts ?? JOB_DEFAULTS.maxAttempts,
      ...(req.idempotencyKey === undefined ? {} : { idempotencyKey: req.idempotencyKey }),
      status: 'Queued',
      reason: 'Accepted',
      message: 'waiting for a pod of the service',
      attempts: [],
      createdAt: now,
      updatedAt: now,
    };
    // A JSON body is stored as a string, escaped once more: a body under the request limit can still make a record etcd refuses.
    const size = Buffer.byteLength(JSON.stringify(job));
    if (size > MAX_ACCEPTED_JOB_BYTES) {
      throw new BerthError('PAYLOAD_TOO_LARGE', `the job would take ${size} bytes in etcd, more than the ${MAX_ACCEPTED_JOB_BYTES} a job may take when accepted: send a smaller body (a string body is stored as is)`);
    }
    const keyClaim = req.idempotencyKey === undefined ? undefined : jobKeyKey(req.service, req.idempotencyKey);
    const res = await this.dispatcher.accept(job, keyClaim);
    if ('job' in res) {
      // Read-your-writes on this replica: a GET right after the 202 finds the job (a large one arrives later by watch).
      await this.state.jobs.waitForRevision(res.job.modRevision);
      return { created: true, job: res.job.value };
    }
    return { created: false, job: await this.byKey(keyClaim!) };
  }

  /** The job an idempotency key names, read from etcd (the key was just found taken). */
  private async byKey(keyClaim: string): Promise<JobRecord> {
    try {
      const id = JSON.parse((await this.client.get(keyClaim).string()) ?? 'null') as string | null;
      const job = id === null ? null : await this.client.get(keyOf('jobs', id)).string();
      if (job === null || job === undefined) throw errors.conflict('the idempotency key names a job that has expired; use a new key', { field: 'body/idempotencyKey' });
      return JSON.parse(job) as JobRecord;
    } catch (err) {
      throw toBerthError(err);
    }
  }

  get(id: string): Versioned<JobRecord> {
    const found = id.includes('/') ? undefined : this.state.jobs.get(keyOf('jobs', id));
    if (found === undefined) throw errors.notFound('job', id);
    return found;
  }

  /** The job once it has finished, or as it is after `waitSeconds`. */
  async wait(id: string, waitSeconds: number, signal: AbortSignal): Promise<JobRecord> {
    const cur = this.get(id).value;
    if (waitSeconds <= 0 || TERMINAL_JOB_STATUSES.has(cur.status)) return cur;
    await new Promise<void>((resolve) => {
      let set = this.waiters.get(id);
      if (set === undefined) this.waiters.set(id, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(waitSeconds, MAX_WAIT_SECONDS) * 1000);
      set.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
    const now = this.state.jobs.get(keyOf('jobs', id));
    return now?.value ?? cur;
  }

  list(filter: { service?: string; status?: JobStatus; limit: number }): JobRecord[] {
    const source = filter.service === undefined ? [...this.state.jobs.values()] : this.state.jobsOf(filter.service);
    return source
      .map((j) => j.value)
      .filter((j) => filter.status === undefined || j.status === filter.status)
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0))
      .slice(0, filter.limit);
  }

  /** Cancels a job that has not finished; INVALID_TRANSITION once it has. */
  async cancel(id: string): Promise<JobRecord> {
    for (let i = 0; i < 10; i++) {
      const cur = this.get(id);
      if (TERMINAL_JOB_STATUSES.has(cur.value.status)) throw new BerthError('INVALID_TRANSITION', `job ${id} is ${cur.value.status} already`);
      try {
        const written = await this.dispatcher.cancel(cur);
        await this.state.jobs.waitForRevision(written.modRevision);
        return written.value;
      } catch (err) {
        if (!(err instanceof NotMine)) throw err;
        // It changed meanwhile (an attempt ended): decide again on what etcd holds.
        const fresh = await this.client.get(keyOf('jobs', id)).exec();
        const rev = Number(fresh.kvs[0]?.mod_revision ?? 0);
        if (rev === 0) throw errors.notFound('job', id);
        await this.state.jobs.waitForRevision(rev);
      }
    }
    throw errors.conflict(`job ${id} is changing too fast to cancel; try again`);
  }
}
