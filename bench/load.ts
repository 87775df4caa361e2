/**
 * A closed-loop HTTP load generator on undici: C workers, each with its own
 * keep-alive connection of one Pool, send a request, read the whole answer,
 * and send the next one, for a fixed time after a warm-up. Every latency in
 * the measured window is kept (a few hundred thousand doubles), so the
 * percentiles are exact ranks, not histogram buckets.
 */
import { Pool } from 'undici';

export interface LoadOptions {
  /** Origin, e.g. http://127.0.0.1:8080. */
  origin: string;
  path: string;
  concurrency: number;
  durationMs: number;
  /** Requests in this first stretch are sent but not counted (connections opened, JIT warm). */
  warmupMs: number;
  /** Sent with every request (e.g. Authorization). */
  headers?: Record<string, string>;
}

export interface LoadResult {
  /** Answers in the measured window. */
  requests: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  /** Answers that were not 2xx, and requests that failed outright, in the window. */
  non2xx: number;
  errors: number;
  /** Response headers of the last answer (e.g. to see x-berth-pod). */
  lastHeaders: Record<string, string | string[] | undefined>;
}

/** A growable array of doubles. */
export class Samples {
  private buf = new Float64Array(1 << 16);
  length = 0;

  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }

  /** Sorted copy of the samples. */
  sorted(): Float64Array {
    return this.buf.slice(0, this.length).sort();
  }
}

/** Nearest-rank percentile (p in 0..1) of sorted values. */
export function rank(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export async function closedLoop(opts: LoadOptions): Promise<LoadResult> {
  const pool = new Pool(opts.origin, { connections: opts.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const latencies = new Samples();
  let non2xx = 0;
  let errors = 0;
  let lastHeaders: LoadResult['lastHeaders'] = {};
  const start = performance.now();
  const from = start + opts.warmupMs;
  const until = from + opts.durationMs;
  const worker = async () => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= until) return;
      let ok = false;
      try {
        const res = await pool.request({ path: opts.path, method: 'GET', ...(opts.headers === undefined ? {} : { headers: opts.headers }) });
        await res.body.text();
        ok = res.statusCode >= 200 && res.statusCode < 300;
        lastHeaders = res.headers;
      } catch {
        if (t0 >= from) errors += 1;
        continue;
      }
      const t1 = performance.now();
      // Only requests sent and answered inside the window count: the rate is answers in the window over its length.
      if (t0 < from || t1 > until) continue;
      latencies.push(t1 - t0);
      if (!ok) non2xx += 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    await pool.close();
  }
  const sorted = latencies.sorted();
  return {
    requests: sorted.length,
    perSecond: sorted.length / (opts.durationMs / 1000),
    p50: rank(sorted, 0.5),
    p99: rank(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? NaN,
    non2xx,
    errors,
    lastHeaders,
  };
}
