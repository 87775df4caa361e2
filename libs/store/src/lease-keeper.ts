import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { LeaseClient, type Etcd3, type IDuplexStream, type ILeaseKeepAliveRequest, type ILeaseKeepAliveResponse } from 'etcd3';
import type { Logger } from 'pino';
import { toBerthError } from './client.js';
import { resetConnections } from './connection-guard.js';

/** Events of a LeaseKeeper. */
export interface LeaseKeeperEvents {
  /** etcd says the lease expired (or it could not be renewed for a whole TTL): its keys are gone. */
  lost: [string];
}

/**
 * The keeper's clock: monotonic, so a wall-clock step can neither hide a
 * silence from etcd (an agent that should fence) nor invent one.
 */
const clock = (): number => performance.now();

interface Kept {
  ttlMs: number;
  /** Send time (`clock`) of the last keepalive (or the grant) etcd acknowledged. */
  renewedAt: number;
  inflight: number[];
}

/**
 * Keeps many leases alive over ONE keepalive stream, at a chosen period. An
 * agent simulating 5,000 nodes holds 5,000 leases; etcd3's Lease opens a
 * stream per lease and fixes the period at TTL/3, which neither scales nor
 * lets the heartbeat period be configured.
 */
export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  private readonly leases = new Map<string, Kept>();
  private readonly rpc: LeaseClient;
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  private connecting = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** When the current stream last delivered anything; a silent stream is presumed dead. */
  private lastDataAt = 0;
  /** Keepalive messages sent, for benchmarks. */
  sent = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    super();
    // etcd3 exposes the raw lease RPCs only through its connection pool.
    this.rpc = new LeaseClient((client as unknown as { pool: ConstructorParameters<typeof LeaseClient>[0] }).pool);
  }

  /** Grants a lease of `ttlSeconds` and keeps it alive from now on. */
  async grant(ttlSeconds: number): Promise<string> {
    const sentAt = clock();
    let id: string;
    try {
      id = (await this.rpc.leaseGrant({ TTL: ttlSeconds })).ID;
    } catch (err) {
      throw toBerthError(err);
    }
    this.leases.set(id, { ttlMs: ttlSeconds * 1000, renewedAt: sentAt, inflight: [] });
    this.ensureRunning();
    return id;
  }

  /** Stops renewing and revokes the lease, deleting its keys now. */
  async revoke(id: string): Promise<void> {
    this.leases.delete(id);
    try {
      await this.rpc.leaseRevoke({ ID: id });
    } catch (err) {
      const e = toBerthError(err);
      if (!/requested lease not found/.test(e.message)) throw e;
    }
  }

  /** Stops renewing without revoking: the keys vanish when the TTL runs out. */
  forget(id: string): void {
    this.leases.delete(id);
  }

  /** True while the lease is kept and was renewed within its TTL. */
  alive(id: string): boolean {
    const l = this.leases.get(id);
    return l !== undefined && clock() - l.renewedAt < l.ttlMs;
  }

  /**
   * How long ago (ms) the last keepalive of the lease that etcd acknowledged
   * was sent (its grant, before the first): etcd keeps the lease at least
   * TTL past that send. Undefined once the lease is no longer kept (lost,
   * forgotten or revoked).
   */
  sinceAcked(id: string): number | undefined {
    const l = this.leases.get(id);
    return l === undefined ? undefined : clock() - l.renewedAt;
  }

  /** Stops everything (leases are left to expire unless revoked first). */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.stream?.end();
    this.stream = undefined;
  }

  private ensureRunning(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.tick();
  }

  private tick(): void {
    const now = clock();
    for (const [id, l] of this.leases) {
      if (now - l.renewedAt >= l.ttlMs) {
        this.leases.delete(id);
        this.log.warn({ lease: id }, 'lease not renewed within its TTL: treating it as lost');
        this.emit('lost', id);
      }
    }
    if (this.stream !== undefined && this.leases.size > 0) {
      // A half-open connection never errors: writes just buffer. A keepalive unanswered for as long as a slow etcd
      // may take (TTL - interval, the round trip the lease tolerates: measured from its send time) while nothing at
      // all arrived for as long means the connection is presumed dead: replace it, not just this stream. Answers
      // still arriving, however late, are a slow etcd, and replacing its connection would only lose more time.
      let minTtl = Infinity;
      let oldestUnanswered = now;
      for (const l of this.leases.values()) {
        minTtl = Math.min(minTtl, l.ttlMs);
        oldestUnanswered = Math.min(oldestUnanswered, l.inflight[0] ?? now);
      }
      const silentFor = Math.max(minTtl - this.intervalMs, this.intervalMs * 2);
      if (now - oldestUnanswered > silentFor && now - this.lastDataAt > silentFor) {
        this.log.warn({ unansweredMs: now - oldestUnanswered, silentMs: now - this.lastDataAt }, 'lease keepalives went unanswered; reconnecting');
        this.stream.cancel();
        this.stream = undefined;
        resetConnections(this.client);
      }
    }
    if (this.stream === undefined) {
      void this.connect();
      return;
    }
    for (const [id, l] of this.leases) {
      l.inflight.push(now);
      if (l.inflight.length > 50) l.inflight.shift();
      this.stream.write({ ID: id });
      this.sent += 1;
    }
  }

  private async connect(): Promise<void> {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    try {
      const stream = await this.rpc.leaseKeepAlive();
      if (this.closed) return void stream.end();
      this.stream = stream;
      this.lastDataAt = clock();
      for (const l of this.leases.values()) l.inflight = [];
      stream.on('data', (res: ILeaseKeepAliveResponse) => {
        // A late answer on a replaced stream would be matched with a send time of the new one, which is newer.
        if (this.stream !== stream) return;
        this.lastDataAt = clock();
        this.onResponse(res);
      });
      const drop = (err?: Error) => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        this.log.warn({ err: err?.message }, 'lease keepalive stream dropped; reconnecting');
      };
      stream.on('error', drop);
      stream.on('end', () => drop());
      this.tick();
    } catch (err) {
      this.log.warn({ err }, 'cannot open a lease keepalive stream');
    } finally {
      this.connecting = false;
    }
  }

  private onResponse(res: ILeaseKeepAliveResponse): void {
    const l = this.leases.get(res.ID);
    if (l === undefined) return;
    const sentAt = l.inflight.shift();
    if (res.TTL === '0') {
      this.leases.delete(res.ID);
      this.emit('lost', res.ID);
      return;
    }
    if (sentAt !== undefined) l.renewedAt = Math.max(l.renewedAt, sentAt);
  }
}
