import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { isBrokenCircuitError } from 'cockatiel';
import { leaderRecordKey } from '@berth/core';
import { explainUnavailable } from '@berth/store';

/**
 * Tells whether etcd answers linearizable reads (so it is up and has quorum).
 * A probe every second with a short deadline; `/readyz` reports it.
 */
export class EtcdHealth {
  private timer: NodeJS.Timeout | undefined;
  private lastOkAt = 0;
  private lastError: string | undefined = 'not probed yet';
  private probing = false;

  constructor(
    private readonly client: Etcd3,
    private readonly endpoints: string[],
    private readonly log: Logger,
    private readonly intervalMs = 1000,
  ) {}

  /** True when the last probe succeeded recently. */
  get reachable(): boolean {
    return this.lastError === undefined && Date.now() - this.lastOkAt < this.intervalMs * 3;
  }

  /** A message for operators saying why etcd is considered unreachable. */
  get problem(): string {
    return `${this.lastError ?? `etcd has not answered for ${Date.now() - this.lastOkAt} ms`} (endpoints ${this.endpoints.join(',')})`;
  }

  start(): void {
    void this.probe();
    this.timer = setInterval(() => void this.probe(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await this.client.get(leaderRecordKey).options({ deadline: Date.now() + this.intervalMs }).exec();
      if (this.lastError !== undefined && this.lastOkAt !== 0) this.log.info('etcd reachable again');
      this.lastOkAt = Date.now();
      this.lastError = undefined;
    } catch (err) {
      // While etcd3's circuit breaker is open its error says only that; keep the real cause.
      if (isBrokenCircuitError(err) && this.lastError !== undefined) return;
      const message = explainUnavailable(err);
      if (this.lastError === undefined) this.log.warn({ err: message }, 'etcd unreachable');
      this.lastError = message;
    } finally {
      this.probing = false;
    }
  }
}
