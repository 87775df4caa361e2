import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FastifyInstance } from 'fastify';

/** The controller's Prometheus metrics, served at `/metrics`. */
export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'berth_http_request_duration_seconds',
    help: 'REST API request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  constructor(sources: {
    isLeader: () => boolean;
    term: () => number;
    fencedRejections: () => number;
    terms: () => number;
    cacheRevision: () => number;
    /** How long the last term waited for its caches before its loops started (ms). */
    leaderCatchUpMs?: () => number;
    /** Pods this replica's router ejected (passive outlier detection), so far. */
    podEjections?: () => number;
    /** This replica's jobs: running now, adopted from dead replicas, and the group commit's transactions and parts. */
    jobs?: () => { active: number; adopted: number; transactions: number; parts: number };
  }) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'berth_leader',
      help: '1 while this replica leads, else 0',
      registers: [this.registry],
      collect() {
        this.set(sources.isLeader() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'berth_leader_term',
      help: "term (election key create revision) of this replica's leadership, 0 when following",
      registers: [this.registry],
      collect() {
        this.set(sources.term());
      },
    });
    new Counter({
      name: 'berth_fenced_write_rejections_total',
      help: 'leader-only writes etcd rejected because the fence no longer held',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(sources.fencedRejections());
      },
    });
    new Counter({
      name: 'berth_leader_terms_total',
      help: 'times this replica took office',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(sources.terms());
      },
    });
    new Gauge({
      name: 'berth_leader_catch_up_seconds',
      help: "how long this replica's last term waited for every watch cache to reach its first write before the leader loops started",
      registers: [this.registry],
      collect() {
        this.set((sources.leaderCatchUpMs?.() ?? 0) / 1000);
      },
    });
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter('berth_proxy_pod_ejections_total', "pods this replica's router skipped for a while after a failed request", () => sources.podEjections?.() ?? 0);
    counter('berth_jobs_adopted_total', 'jobs this replica took over after the replica holding them died', () => sources.jobs?.().adopted ?? 0);
    counter('berth_job_write_transactions_total', "etcd transactions of this replica's job writes (group commit)", () => sources.jobs?.().transactions ?? 0);
    counter('berth_job_writes_total', "job writes of this replica, several per transaction", () => sources.jobs?.().parts ?? 0);
    new Gauge({
      name: 'berth_jobs_active',
      help: 'jobs this replica is dispatching now',
      registers: [this.registry],
      collect() {
        this.set(sources.jobs?.().active ?? 0);
      },
    });
    new Gauge({
      name: 'berth_cache_revision',
      help: "highest etcd revision applied to this replica's watch caches",
      registers: [this.registry],
      collect() {
        this.set(sources.cacheRevision());
      },
    });
  }

  /** Times every request by its route pattern (not its URL, to keep label cardinality bounded). */
  instrument(app: FastifyInstance): void {
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unknown';
      this.httpDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  }
}
