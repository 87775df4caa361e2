/**
 * The jobs half of bench/services.ts: etcd's own write ceilings on this
 * machine, and J jobs submitted across the replicas with their ends seen
 * through an etcd watch.
 */
import type { Etcd3 } from 'etcd3';
import { Pool } from 'undici';
import { prefixes, TERMINAL_JOB_STATUSES, type JobRecord } from '@berth/core';
import { commit, type Op } from '@berth/store';
import { rank } from './load.js';

/** etcd's current revision. */
export async function revision(client: Etcd3): Promise<number> {
  return Number((await client.get('/bench/revision-probe').exec()).header.revision);
}

/**
 * Puts per second etcd takes in transactions of `opsPerTxn` puts of
 * `valueBytes` each, with `inFlight` transactions outstanding, for `ms`.
 */
export async function etcdCeiling(client: Etcd3, opts: { opsPerTxn: number; valueBytes: number; inFlight: number; ms: number }): Promise<{ putsPerSecond: number; txnsPerSecond: number }> {
  const value = 'x'.repeat(opts.valueBytes);
  let txns = 0;
  let n = 0;
  const until = performance.now() + opts.ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.inFlight }, async () => {
      while (performance.now() < until) {
        const ops: Op[] = [];
        for (let i = 0; i < opts.opsPerTxn; i++) ops.push({ type: 'put', key: `/bench/ceiling/${n++ % 20_000}`, value });
        await commit(client, [], ops);
        txns += 1;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  await client.delete().prefix('/bench/').exec();
  return { putsPerSecond: (txns * opts.opsPerTxn) / s, txnsPerSecond: txns / s };
}

/**
 * Writes `count` copies of a finished job (new ids) straight to etcd, as a
 * cluster that has run jobs for a while keeps them until their result TTL
 * (an hour by default) runs out: every replica caches them.
 */
export async function keepFinished(client: Etcd3, finished: JobRecord, count: number): Promise<void> {
  const value = (i: number) => JSON.stringify({ ...finished, id: `kept${String(i).padStart(8, '0')}` });
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < count) {
        const ops: Op[] = [];
        for (let n = 0; n < 128 && next < count; n++, next++) ops.push({ type: 'put', key: `${prefixes.jobs}kept${String(next).padStart(8, '0')}`, value: value(next) });
        await commit(client, [], ops);
      }
    }),
  );
}

export interface JobsRunOptions {
  client: Etcd3;
  /** Base URLs of the replicas; submitters are spread over them evenly. */
  replicas: string[];
  service: string;
  jobs: number;
  /** Submissions in flight at once, over all replicas. */
  concurrency: number;
  /** Give up waiting for the last results after this long. */
  timeoutMs: number;
}

export interface JobsRunResult {
  accepted: number;
  refused: number;
  /** Terminal jobs by status. */
  statuses: Record<string, number>;
  /** Terminal jobs with more than one attempt. */
  retried: number;
  wallMs: number;
  /** Until the last 202. */
  submitMs: number;
  jobsPerSecond: number;
  ack: { p50: number; p99: number };
  result: { p50: number; p99: number; max: number };
  /** etcd revisions (committed transactions) that touched a job key, and key writes (puts and deletes) under the job prefixes. */
  jobRevisions: number;
  keyWrites: number;
  /** Job records written Running (an attempt that took longer than the dispatcher's lazy-write delay). */
  runningWrites: number;
  /** etcd's revision before and after, all writers included. */
  revisions: { before: number; after: number };
  /** Whether every accepted job was seen terminal before the timeout. */
  complete: boolean;
}

/**
 * Submits `jobs` jobs (POST /v1/jobs, `concurrency` in flight, spread over
 * the replicas) and watches `/berth/job*` in etcd for their terminal
 * records. The watch is one stream the bench already pays for, costs the
 * controllers nothing, and also counts every revision and key write of the
 * jobs; long polls would add an HTTP request per job to the replicas being
 * measured.
 */
export async function runJobs(opts: JobsRunOptions): Promise<JobsRunResult> {
  const sentAt = new Map<string, number>();
  const ackMs: number[] = [];
  const terminalAt = new Map<string, number>();
  const statuses: Record<string, number> = {};
  const revisionsSeen = new Set<string>();
  let keyWrites = 0;
  let runningWrites = 0;
  let retried = 0;
  let lastTerminal = 0;

  const watcher = await opts.client.watch().prefix(`${prefixes.jobs.slice(0, -2)}`).create();
  watcher.on('data', (res) => {
    const now = performance.now();
    for (const ev of res.events) {
      keyWrites += 1;
      revisionsSeen.add(ev.kv.mod_revision);
      const key = ev.kv.key.toString();
      if (ev.type !== 'Put' || !key.startsWith(prefixes.jobs)) continue;
      const job = JSON.parse(ev.kv.value.toString()) as JobRecord;
      if (job.status === 'Running') runningWrites += 1;
      if (!TERMINAL_JOB_STATUSES.has(job.status) || terminalAt.has(job.id)) continue;
      terminalAt.set(job.id, now);
      lastTerminal = now;
      statuses[job.status] = (statuses[job.status] ?? 0) + 1;
      if (job.attempts.length > 1) retried += 1;
    }
  });

  const pools = opts.replicas.map((url) => new Pool(url, { connections: Math.ceil(opts.concurrency / opts.replicas.length), pipelining: 1, keepAliveTimeout: 60_000 }));
  const body = JSON.stringify({ service: opts.service, path: '/' });
  const before = await revision(opts.client);
  let next = 0;
  let refused = 0;
  let lastAck = 0;
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: opts.concurrency }, async (_, w) => {
        const pool = pools[w % pools.length]!;
        while (next < opts.jobs) {
          next += 1;
          const sent = performance.now();
          const res = await pool.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json' }, body });
          const text = await res.body.text();
          if (res.statusCode !== 202) {
            refused += 1;
            if (refused <= 3) console.error(`POST /v1/jobs: ${res.statusCode} ${text.slice(0, 300)}`);
            continue;
          }
          lastAck = performance.now();
          ackMs.push(lastAck - sent);
          sentAt.set((JSON.parse(text) as { id: string }).id, sent);
        }
      }),
    );
    const deadline = performance.now() + opts.timeoutMs;
    while (performance.now() < deadline && [...sentAt.keys()].some((id) => !terminalAt.has(id))) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  // A job's last write may still be on its way to the watch when it reads as terminal elsewhere: let the stream drain.
  await new Promise((r) => setTimeout(r, 500));
  const after = await revision(opts.client);
  await watcher.cancel();

  const latencies = [...sentAt].filter(([id]) => terminalAt.has(id)).map(([id, s]) => terminalAt.get(id)! - s).sort((a, b) => a - b);
  const acks = ackMs.sort((a, b) => a - b);
  const wallMs = lastTerminal - t0;
  return {
    accepted: sentAt.size,
    refused,
    statuses,
    retried,
    wallMs,
    submitMs: lastAck - t0,
    jobsPerSecond: (latencies.length / wallMs) * 1000,
    ack: { p50: rank(acks, 0.5), p99: rank(acks, 0.99) },
    result: { p50: rank(latencies, 0.5), p99: rank(latencies, 0.99), max: latencies[latencies.length - 1] ?? NaN },
    jobRevisions: revisionsSeen.size,
    keyWrites,
    runningWrites,
    revisions: { before, after },
    complete: latencies.length === sentAt.size,
  };
}
