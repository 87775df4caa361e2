import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  BerthError,
  errors,
  idOf,
  keyOf,
  TERMINAL_JOB_STATUSES,
  type JobAttempt,
  type JobRecord,
  type JobStatus,
} from '@berth/core';
import { absent, leaseInvalid, LeaseKeeper, modifiedAt, putJson, TtlLease, TxnBatcher, type Compare, type Op, type Versioned } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';
import type { Router } from '../routing/router.js';
import type { Discovery } from '../services/discovery.js';
import { callPod, type AttemptResult } from './attempt.js';

/** An attempt that has not ended by then is written down as Running (shorter ones go straight to their end: two writes a job). */
const RUNNING_WRITE_AFTER_MS = 200;
/** How often every non-finished job is checked for a claim (claims also vanish as watch events; this is the safety net). */
const ORPHAN_SCAN_MS = 2000;
/** Scans are at least this far apart. */
const SCAN_GAP_MS = 250;
/** A stopping replica waits this long for its jobs' attempts before letting others take them over. */
const DRAIN_MS = 3000;
/** Bytes a job record may take in etcd (its default request limit is 1.5 MiB; the rest is the transaction's). */
export const MAX_JOB_RECORD_BYTES = 1400 * 1024;
/** Bytes a job may take when it is accepted: what its attempts (at most 20, a few hundred bytes each) add must still fit. */
export const MAX_ACCEPTED_JOB_BYTES = MAX_JOB_RECORD_BYTES - 32 * 1024;

/** Tuning of a replica's job dispatcher. */
export interface JobDispatcherOptions {
  /** This replica's id: the value of its claims and the `replica` of its attempts. */
  replica: string;
  /** TTL of the lease its claims are on: how soon others take over its jobs when it dies. */
  claimTtlSeconds: number;
  /** How long a finished job's record (and its result) is kept. */
  resultTtlSeconds: number;
}

type Job = Versioned<JobRecord>;

/** Thrown inside a job's loop when its record is no longer this replica's to write (canceled, taken over). */
export class NotMine extends Error {}

export const claimKey = (id: string): string => keyOf('jobClaims', id);

/**
 * Runs this replica's jobs. A job is this replica's while its claim key
 * (`/berth/jobclaims/<id>`, value: the replica id) exists on this replica's
 * lease: the claim is written with the job when it is accepted, or when an
 * orphan is adopted. Every write of a job is a compare-and-swap on the
 * record as this replica last wrote it, so a cancel or a take-over wins and
 * this replica stops. When a replica dies its lease expires, its claims
 * vanish, and any replica adopts the jobs: an attempt that was running is
 * recorded as Lost and the job runs again (at-least-once). All writes go
 * through one group-commit batcher.
 */
export class JobDispatcher {
  readonly batcher: TxnBatcher;
  private readonly keeper: LeaseKeeper;
  private readonly results: TtlLease;
  private lease: Promise<string> | undefined;
  /** Jobs this replica dispatches now, with the claim lease each is held on. */
  private readonly running = new Map<string, { ctl: AbortController; lease: string; done: Promise<void> }>();
  private scanTimer: NodeJS.Timeout | undefined;
  private scanPending = false;
  private lastScanAt = 0;
  private stopped = false;
  /** Jobs adopted from other replicas, for tests and metrics. */
  adopted = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly router: Router,
    private readonly discovery: Discovery,
    private readonly opts: JobDispatcherOptions,
    private readonly log: Logger,
  ) {
    this.batcher = new TxnBatcher(client, { maxInFlight: 4 });
    this.keeper = new LeaseKeeper(client, 500, log);
    this.results = new TtlLease(client, opts.resultTtlSeconds, log, 'finished jobs');
    this.keeper.on('lost', (id) => void this.leaseLost(id));
    // A job someone else finished or took: stop working on it.
    state.jobs.on('change', ({ key, item }) => {
      const id = idOf('jobs', key) ?? '';
      if (item === undefined || TERMINAL_JOB_STATUSES.has(item.value.status)) this.running.get(id)?.ctl.abort();
    });
    state.jobClaims.on('change', ({ key, item }) => {
      const id = idOf('jobClaims', key) ?? '';
      if (item !== undefined && item.value !== opts.replica) this.running.get(id)?.ctl.abort();
      if (item === undefined) this.scanSoon();
    });
  }

  /** Starts adopting orphaned jobs. */
  start(): void {
    this.scanTimer = setInterval(() => this.scanSoon(), ORPHAN_SCAN_MS);
    this.scanTimer.unref();
    void this.state.whenSynced().then(() => this.scanSoon());
  }

  /** Lets running attempts end (a few seconds at most), then gives up the claims so other replicas take over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.scanTimer);
    let timer: NodeJS.Timeout | undefined;
    const drained = Promise.all([...this.running.values()].map((r) => r.done));
    await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, DRAIN_MS)))]);
    clearTimeout(timer);
    for (const { ctl } of this.running.values()) ctl.abort();
    const lease = await this.lease?.catch(() => undefined);
    if (lease !== undefined) await this.keeper.revoke(lease).catch((err: unknown) => this.log.warn({ err }, 'could not revoke the job claim lease'));
    this.keeper.close();
  }

  /** Jobs this replica is working on. */
  get active(): number {
    return this.running.size;
  }

  /**
   * Makes a new job durable with this replica's claim (and its idempotency
   * key, if any, guarded so a second job with the key is never created) and
   * starts it. Resolves once etcd has it; `existing` is the job id the key
   * already names when the submission is a repeat.
   */
  async accept(job: JobRecord, keyClaim?: string): Promise<{ job: Job } | { existing: true }> {
    if (this.stopped) throw errors.notReady(`replica ${this.opts.replica} is shutting down; submit the job to another replica`);
    const key = keyOf('jobs', job.id);
    for (let tries = 0; ; tries++) {
      const lease = await this.claimLease();
      const compares: Compare[] = [absent(key)];
      const ops: Op[] = [putJson(key, job), putJson(claimKey(job.id), this.opts.replica, lease)];
      if (keyClaim !== undefined) {
        compares.push(absent(keyClaim));
        ops.push(putJson(keyClaim, job.id, await this.results.id()));
      }
      try {
        const res = await this.batcher.submit({ compares, ops });
        let revision: number | undefined = res.succeeded ? res.revision : undefined;
        // A guard that failed may have failed against this very write, applied by an attempt that reported an error.
        if (revision === undefined) revision = await this.appliedAt(key, ops[0]!);
        if (revision === undefined) {
          if (keyClaim !== undefined) return { existing: true };
          throw new BerthError('CONFLICT', `job id ${job.id} is taken`);
        }
        const cur: Job = { key, value: job, createRevision: revision, modRevision: revision, version: 1, lease: '0' };
        this.spawn(cur, lease);
        return { job: cur };
      } catch (err) {
        if (tries === 0 && this.forgetLeases(err, { claim: true, results: keyClaim !== undefined })) continue;
        throw err;
      }
    }
  }

  /**
   * Cancels a job from any replica: writes it Canceled (compare-and-swap on
   * the record as cached, so it never overwrites a result) and drops its
   * claim; the owner sees the change and stops its attempt.
   */
  async cancel(cur: Job): Promise<Job> {
    const now = new Date().toISOString();
    const attempts = cur.value.attempts.map((a) => (a.outcome === 'Running' ? { ...a, outcome: 'Canceled' as const, finishedAt: now } : a));
    return this.write(cur, { ...cur.value, status: 'Canceled', reason: 'Canceled', message: 'canceled by a user', attempts, finishedAt: now }, true);
  }

  private spawn(cur: Job, lease: string): void {
    const ctl = new AbortController();
    const done = this.drive(cur, ctl)
      .catch((err: unknown) => {
        if (err instanceof NotMine || ctl.signal.aborted) return;
        // The job stays claimed by this replica and unfinished: the next scan (every couple of seconds) runs it again.
        this.log.warn({ err, job: cur.value.id }, 'job dispatch failed; the next scan resumes it');
      })
      .finally(() => {
        if (this.running.get(cur.value.id) === entry) this.running.delete(cur.value.id);
      });
    const entry = { ctl, lease, done };
    this.running.set(cur.value.id, entry);
  }

  /** One job from now until it is finished, canceled, or not this replica's any more. */
  private async drive(start: Job, ctl: AbortController): Promise<void> {
    const signal = ctl.signal;
    let cur = start;
    const job = start.value;
    const deadline = Date.parse(job.createdAt) + job.timeoutMs;
    const tried = new Set(job.attempts.map((a) => a.podId).filter((p): p is string => p !== null));
    for (;;) {
      if (signal.aborted) throw new NotMine();
      const now = Date.now();
      const counted = cur.value.attempts.filter((a) => a.outcome !== 'Lost' && a.outcome !== 'Running').length;
      if (now >= deadline) {
        await this.finish(cur, 'TimedOut', 'TimedOut', `no result within timeoutMs ${job.timeoutMs}`);
        return;
      }
      if (counted >= job.maxAttempts) {
        const last = cur.value.attempts[cur.value.attempts.length - 1];
        await this.finish(cur, 'Failed', 'AttemptsExhausted', `all ${job.maxAttempts} attempt(s) failed; last: ${last?.error ?? `HTTP ${last?.statusCode ?? '?'}`}`);
        return;
      }
      let endpoint = this.router.pick(job.service, tried);
      // Every ready pod already failed this job once: try them again rather than wait.
      if (endpoint instanceof BerthError && (endpoint.details as { reason?: string } | undefined)?.reason === 'all tried') endpoint = this.router.pick(job.service);
      if (endpoint instanceof BerthError) {
        if (cur.value.status !== 'Queued' || cur.value.message !== endpoint.message) {
          cur = await this.write(cur, { ...cur.value, status: 'Queued', reason: 'NoEndpoints', message: endpoint.message }, false);
        }
        // Pods ejected for failing come back on their own, without a change of the endpoints: wait for the first.
        const retryAt = (endpoint.details as { retryAt?: number } | undefined)?.retryAt ?? Infinity;
        await this.endpointsChange(job.service, Math.min(deadline, retryAt) - now, signal);
        continue;
      }
      const n = cur.value.attempts.length + 1;
      const attempt: JobAttempt = { attempt: n, replica: this.opts.replica, podId: endpoint.podId, nodeId: endpoint.nodeId, startedAt: new Date(now).toISOString(), finishedAt: null, outcome: 'Running' };
      let runningWrite: Promise<void> | undefined;
      const before = cur;
      const lazy = setTimeout(() => {
        runningWrite = this.write(before, { ...before.value, status: 'Running', reason: 'Dispatched', message: `attempt ${n} on pod ${endpoint.podName}`, attempts: [...before.value.attempts, attempt] }, false).then((c) => {
          cur = c;
        });
        // Handled at once (the attempt stops); awaited, and so thrown, once the attempt has ended.
        runningWrite.catch(() => ctl.abort());
      }, RUNNING_WRITE_AFTER_MS);
      let result: AttemptResult | undefined;
      try {
        result = await callPod(this.router, endpoint, cur.value, n, Math.min(job.attemptTimeoutMs, deadline - now), signal);
      } finally {
        clearTimeout(lazy);
        if (runningWrite !== undefined) await runningWrite;
      }
      if (result === undefined) throw new NotMine();
      tried.add(endpoint.podId);
      const done: JobAttempt = { ...attempt, finishedAt: new Date().toISOString(), outcome: result.outcome, ...(result.statusCode === undefined ? {} : { statusCode: result.statusCode }), ...(result.error === undefined ? {} : { error: result.error }) };
      const attempts = [...cur.value.attempts.filter((a) => a.attempt !== n), done];
      const withAttempt: JobRecord = { ...cur.value, attempts, ...(result.result === undefined ? {} : { result: result.result }) };
      const size = Buffer.byteLength(JSON.stringify(withAttempt));
      if (size > MAX_JOB_RECORD_BYTES) {
        const { result: _dropped, ...without } = withAttempt;
        return void (await this.finish({ ...cur, value: without }, 'Failed', 'ResultTooLarge', `the job with its result would be ${size} bytes in etcd, more than the ${MAX_JOB_RECORD_BYTES} a record may take (etcd's request limit); the answer was HTTP ${result.statusCode}`));
      }
      if (result.outcome === 'Succeeded') return void (await this.finish({ ...cur, value: withAttempt }, 'Succeeded', 'Completed', `HTTP ${result.statusCode} from pod ${endpoint.podName}`));
      if (result.outcome === 'Failed') return void (await this.finish({ ...cur, value: withAttempt }, 'Failed', result.error === undefined ? 'RequestRejected' : 'ResultTooLarge', result.error ?? `HTTP ${result.statusCode} from pod ${endpoint.podName}: the request was refused, not retried`));
      // Retryable: recorded now, so an adopter after a crash knows what was tried.
      cur = await this.write(cur, { ...withAttempt, status: 'Queued', reason: 'Retrying', message: `attempt ${n} on pod ${endpoint.podName}: ${result.error ?? `HTTP ${result.statusCode}`}` }, false);
    }
  }

  /** Writes the job's end: on the result TTL lease, with its claim dropped. */
  private async finish(cur: Job, status: JobStatus, reason: string, message: string): Promise<void> {
    await this.write(cur, { ...cur.value, status, reason, message, finishedAt: new Date().toISOString() }, true);
  }

  /**
   * Compare-and-swap of a job record through the batcher. Terminal records go
   * on the result lease and drop the claim. Throws NotMine when the record
   * changed under this replica (canceled, adopted).
   */
  private async write(cur: Job, next: JobRecord, terminal: boolean): Promise<Job> {
    next = { ...next, updatedAt: new Date().toISOString() };
    for (let tries = 0; ; tries++) {
      const ops: Op[] = [putJson(cur.key, next, terminal ? await this.results.id() : undefined)];
      if (terminal) ops.push({ type: 'delete', key: claimKey(next.id) });
      try {
        const res = await this.batcher.submit({ compares: [modifiedAt(cur.key, cur.modRevision)], ops });
        const revision = res.succeeded ? res.revision : await this.appliedAt(cur.key, ops[0]!);
        if (revision === undefined) throw new NotMine(`job ${next.id} changed under replica ${this.opts.replica}`);
        return { ...cur, value: next, modRevision: revision, version: cur.version + 1 };
      } catch (err) {
        if (tries === 0 && this.forgetLeases(err, { results: terminal })) continue;
        throw err;
      }
    }
  }

  /**
   * The revision at which `key` holds exactly what `op` puts, if it does: a
   * write whose guard failed against itself (an attempt that reported an
   * error had been applied; a batch split after it) is this replica's.
   */
  private async appliedAt(key: string, op: Op): Promise<number | undefined> {
    if (op.type !== 'put') return undefined;
    const kv = (await this.client.get(key).exec()).kvs[0];
    return kv !== undefined && kv.value.toString('utf8') === op.value ? Number(kv.mod_revision) : undefined;
  }

  /** Resolves when the service's endpoints change, after `ms`, or when aborted. */
  private endpointsChange(service: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.discovery.off('changed', onChange);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const onChange = (s: string) => {
        if (s === service) done();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.discovery.on('changed', onChange);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private claimLease(): Promise<string> {
    this.lease ??= this.keeper.grant(this.opts.claimTtlSeconds).catch((err: unknown) => {
      this.lease = undefined;
      throw err;
    });
    return this.lease;
  }

  /** A claim lease expired: every claim on it is gone and other replicas may adopt those jobs; stop them here. */
  private async leaseLost(id: string): Promise<void> {
    const current = await this.lease?.catch(() => undefined);
    if (current === id) this.lease = undefined;
    let stopped = 0;
    for (const { ctl, lease } of this.running.values()) {
      if (lease !== id) continue;
      ctl.abort();
      stopped += 1;
    }
    this.log.warn({ lease: id, jobs: stopped }, 'job claim lease lost: its jobs go to whichever replica adopts them');
    this.scanSoon();
  }

  /** True when `err` was a lease etcd no longer has: the leases named are forgotten, so a retry uses new ones. */
  private forgetLeases(err: unknown, which: { claim?: boolean; results?: boolean }): boolean {
    if (!leaseInvalid(err)) return false;
    if (which.results) this.results.forgetOn(err);
    if (which.claim) this.lease = undefined;
    return true;
  }

  /** Asks for a scan; scans run one at a time, at most every SCAN_GAP_MS (every finished job's claim deletion asks for one). */
  private scanSoon(): void {
    if (this.stopped || this.scanPending) return;
    this.scanPending = true;
    const wait = Math.max(0, this.lastScanAt + SCAN_GAP_MS - Date.now());
    setTimeout(() => {
      this.lastScanAt = Date.now();
      void this.adoptOrphans()
        .catch((err: unknown) => this.log.warn({ err }, 'adopting orphaned jobs failed; retrying on the next scan'))
        .finally(() => {
          this.scanPending = false;
        });
    }, wait).unref();
  }

  /**
   * Claims every unfinished job that has no claim (its replica died) and runs
   * it again; resumes this replica's own claimed jobs that nothing here runs
   * (a dispatch that failed on an etcd error).
   */
  private async adoptOrphans(): Promise<void> {
    if (!this.state.jobs.ready || !this.state.jobClaims.ready) return;
    const unfinished = this.state.unfinishedJobs().filter((j) => !this.running.has(j.value.id));
    const unclaimed = () => unfinished.filter((j) => !this.running.has(j.value.id) && this.state.jobClaims.get(claimKey(j.value.id)) === undefined);
    for (const j of unfinished) {
      const claim = this.state.jobClaims.get(claimKey(j.value.id));
      if (this.stopped || claim?.value !== this.opts.replica || !this.keeper.alive(claim.lease) || this.running.has(j.value.id)) continue;
      this.spawn(j, claim.lease);
    }
    let orphans = unclaimed();
    if (orphans.length === 0 || this.stopped) return;
    // The claims cache may lag the jobs cache: bring it to the newest candidate's revision before calling any job an orphan.
    const newest = Math.max(...orphans.map((j) => j.modRevision));
    if (this.state.jobClaims.revision < newest) {
      if (!(await this.state.jobClaims.waitForProgress(newest))) return;
      orphans = unclaimed();
    }
    if (orphans.length === 0) return;
    const lease = await this.claimLease();
    await Promise.all(orphans.map((j) => this.adopt(j, lease)));
  }

  private async adopt(j: Job, lease: string): Promise<void> {
    const now = new Date().toISOString();
    const attempts = j.value.attempts.map((a) => (a.outcome === 'Running' ? { ...a, outcome: 'Lost' as const, finishedAt: now, error: `replica ${a.replica} stopped holding the job before the attempt ended` } : a));
    const next: JobRecord = { ...j.value, status: 'Queued', reason: 'Adopted', message: `taken over by replica ${this.opts.replica}`, attempts, updatedAt: now };
    const res = await this.batcher.submit({
      compares: [absent(claimKey(j.value.id)), modifiedAt(j.key, j.modRevision)],
      ops: [putJson(j.key, next), putJson(claimKey(j.value.id), this.opts.replica, lease)],
    });
    if (!res.succeeded || this.stopped) return; // another replica was faster, or the job moved on
    this.adopted += 1;
    this.log.info({ job: j.value.id, service: j.value.service }, 'adopted an orphaned job');
    this.spawn({ ...j, value: next, modRevision: res.revision, version: j.version + 1 }, lease);
  }
}
