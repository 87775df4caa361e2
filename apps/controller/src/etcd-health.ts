import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { isBrokenCircuitError } from 'cockatiel';
import { leaderRecordKey } from '@berth/core';
import { createEtcdClient, ETCD_DOWN_AFTER_MS, unavailableKind, type EtcdCredentials } from '@berth/store';

const NOT_PROBED = 'not probed yet';

/** One endpoint's probe state. */
interface Endpoint {
  url: string;
  client: Etcd3;
  /** Why the last probe failed; undefined after a success. */
  error: string | undefined;
  /** The last failure was a deadline (the member answers connections but not reads): no quorum. */
  timedOut: boolean;
}

/**
 * Tells whether etcd answers linearizable reads (so it is up and has quorum),
 * probing every endpoint on its own connection once a second: etcd is
 * reachable while any member serves such a read. When none does, the message
 * says what each endpoint did, which tells a stopped member (connection
 * refused) from a live member without quorum (no answer in time). `/readyz`
 * reports every failed probe; once etcd has left the probes unanswered for
 * `downAfterMs` (3 s) it is `down`: the API answers 503 at once and the live
 * stream says so. A slow etcd is not a down etcd: each probe may take up to
 * `downAfterMs` to answer, well above any latency Berth tolerates.
 *
 * Probes overlap: a new round goes out every interval even while older ones
 * are unanswered, and each round's verdict counts only if no round sent
 * later has told otherwise. A read sent to a member while etcd elects a new
 * raft leader can stall until its deadline although the election ended long
 * before; the rounds sent after it answered, so its failure is old news, not
 * an outage (with one round at a time, that one stalled read turned the API
 * away for seconds after every etcd leader change).
 */
export class EtcdHealth extends EventEmitter<{ change: [down: boolean] }> {
  private timer: NodeJS.Timeout | undefined;
  private lastOkAt = 0;
  private lastError: string | undefined = NOT_PROBED;
  /** Send time of the first probe of the current run of failed probes. */
  private failingSince: number | undefined;
  private wasDown = false;
  /** Rounds sent and not yet ended; at most `maxOutstanding` (every round ends by its deadline). */
  private outstanding = 0;
  private readonly maxOutstanding: number;
  /** Send times of the latest round that succeeded and of the latest that failed. */
  private lastOkSentAt = 0;
  private lastFailSentAt = 0;
  private readonly endpoints: Endpoint[];

  constructor(
    endpoints: string[],
    private readonly log: Logger,
    private readonly intervalMs = 1000,
    /**
     * How long etcd may leave the probes unanswered before it counts as down
     * for the API; also each probe's deadline, so one probe unanswered that
     * long is enough. Longer than etcd's leader election (1-2 s: linearizable
     * reads stall until a new raft leader is elected) and than the round trip
     * Berth tolerates, so neither turns the API away.
     */
    private readonly downAfterMs = ETCD_DOWN_AFTER_MS,
    credentials?: EtcdCredentials,
  ) {
    super();
    this.maxOutstanding = Math.ceil(downAfterMs / intervalMs) + 1;
    // Own connections: a probe's deadline must not be spent queueing behind the controller's traffic.
    this.endpoints = endpoints.map((url) => ({
      url,
      client: createEtcdClient([url], { callTimeoutMs: downAfterMs, ownConnection: true, ...(credentials ? { credentials } : {}) }),
      error: NOT_PROBED,
      timedOut: false,
    }));
  }

  /** True when the last probe succeeded and none has been outstanding past its deadline since. */
  get reachable(): boolean {
    return this.lastError === undefined && Date.now() - this.lastOkAt < this.intervalMs + this.downAfterMs;
  }

  /** True once no probe sent in the last `downAfterMs` was answered (false before the first probe ends). */
  get down(): boolean {
    return this.failingSince !== undefined && Date.now() - this.failingSince >= this.downAfterMs;
  }

  /** The endpoints probed. */
  get endpointUrls(): string[] {
    return this.endpoints.map((e) => e.url);
  }

  /** A message for operators saying why etcd is considered unreachable. */
  get problem(): string {
    return this.lastError ?? `etcd has not answered for ${Date.now() - this.lastOkAt} ms (endpoints ${this.endpoints.map((e) => e.url).join(', ')})`;
  }

  /** Probes now and then every `intervalMs`. */
  start(): void {
    void this.probe();
    this.timer = setInterval(() => void this.probe(), this.intervalMs);
  }

  /** Stops probing and closes the probe connections. */
  stop(): void {
    clearInterval(this.timer);
    for (const e of this.endpoints) e.client.close();
  }

  private async probeOne(e: Endpoint): Promise<boolean> {
    try {
      await e.client.get(leaderRecordKey).options({ deadline: Date.now() + this.downAfterMs }).exec();
      e.error = undefined;
      e.timedOut = false;
      return true;
    } catch (err) {
      // While the circuit breaker is open its error says only that; keep the real cause.
      if (isBrokenCircuitError(err) && e.error !== undefined && e.error !== NOT_PROBED) return false;
      const kind = unavailableKind(err);
      e.timedOut = kind === 'timeout';
      e.error = kind === 'timeout' ? `no answer within ${this.downAfterMs} ms` : kind === 'refused' ? 'connection refused' : err instanceof Error ? err.message : String(err);
      return false;
    }
  }

  private async probe(): Promise<void> {
    if (this.outstanding >= this.maxOutstanding) return;
    this.outstanding++;
    const sentAt = Date.now();
    try {
      // Answered at the first member that serves the read (a hung member would hold the verdict for its deadline).
      const ok = await new Promise<boolean>((resolve) => {
        let left = this.endpoints.length;
        for (const e of this.endpoints) void this.probeOne(e).then((one) => (one ? resolve(true) : --left === 0 && resolve(false)));
      });
      if (ok) {
        // etcd served a read after sentAt, unless a round sent later has failed since: that is the newer news.
        if (sentAt > this.lastFailSentAt) {
          if (this.lastError !== undefined && this.lastOkAt !== 0) this.log.info('etcd reachable again');
          this.lastError = undefined;
          this.failingSince = undefined;
        }
        this.lastOkSentAt = Math.max(this.lastOkSentAt, sentAt);
        this.lastOkAt = Date.now();
      } else if (sentAt >= this.lastOkSentAt) {
        // (A round sent before the latest success says nothing about etcd now: it stalled through what has passed.)
        this.lastFailSentAt = Math.max(this.lastFailSentAt, sentAt);
        const first = this.lastError === undefined;
        this.lastError = this.describe();
        this.failingSince = Math.min(this.failingSince ?? sentAt, sentAt);
        if (first) this.log.warn({ problem: this.lastError }, 'etcd unreachable');
      }
      const down = this.down;
      if (down !== this.wasDown) {
        this.wasDown = down;
        this.emit('change', down);
      }
    } finally {
      this.outstanding--;
    }
  }

  /** Every endpoint failed: what each did, headed by what that means. */
  private describe(): string {
    const timedOut = this.endpoints.filter((e) => e.timedOut).length;
    const n = this.endpoints.length;
    const head =
      timedOut === 0
        ? 'etcd cannot be reached'
        : n > 1 && timedOut < n
          ? `etcd has no quorum: ${n - timedOut} of ${n} members cannot be reached and the rest cannot serve requests`
          : 'etcd did not answer in time: a majority of its members may be down (no quorum), unreachable or overloaded';
    return `${head}; Berth resumes when it answers again (${this.endpoints.map((e) => `${e.url}: ${e.error}`).join('; ')})`;
  }
}
