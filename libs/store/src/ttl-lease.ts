import { EtcdLeaseInvalidError, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { toBerthError } from './client.js';

/**
 * A lease shared by many keys that should expire on their own (audit events,
 * finished jobs), so etcd stays small without a cleanup loop. One lease is
 * reused for a sixth of the TTL, so a key lives between 5/6 TTL and TTL; it
 * is never kept alive.
 */
export class TtlLease {
  private lease: { id: string; until: number } | undefined;
  private granting: Promise<string> | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
    /** What the keys are, for the log. */
    private readonly what: string,
  ) {}

  /** The lease to put the next key on. */
  async id(): Promise<string> {
    if (this.lease && Date.now() < this.lease.until) return this.lease.id;
    this.granting ??= (async () => {
      try {
        const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: false });
        lease.on('lost', () => undefined);
        const id = await lease.grant();
        this.lease = { id, until: Date.now() + (this.ttlSeconds * 1000) / 6 };
        this.log.debug({ lease: id, what: this.what }, 'granted TTL lease');
        return id;
      } catch (err) {
        throw toBerthError(err);
      } finally {
        this.granting = undefined;
      }
    })();
    return this.granting;
  }

  /**
   * Forgets the cached lease when `err` says etcd no longer has it (revoked,
   * or expired while etcd was away), so the next key goes on a new one
   * instead of failing, with every transaction it is part of, until the
   * cache would have renewed it. True when it did.
   */
  forgetOn(err: unknown): boolean {
    if (!leaseInvalid(err)) return false;
    this.log.warn({ lease: this.lease?.id, what: this.what }, 'a TTL lease is gone from etcd; granting a new one');
    this.lease = undefined;
    return true;
  }
}

/** True when `err` (or what it wraps) is etcd's "requested lease not found". */
export function leaseInvalid(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof EtcdLeaseInvalidError || /requested lease not found/.test(e.message)) return true;
  }
  return false;
}
