import { EtcdLeaseInvalidError, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { eventKey, newId, type BerthEvent } from '@berth/core';
import { toBerthError } from './client.js';
import { commit, commitFenced, putJson, type Fence, type Op } from './txn.js';

/** What a caller says about an event; id, time and source are filled in. */
export type EventInput = Omit<BerthEvent, 'id' | 'time' | 'source' | 'term'>;

/**
 * Records audit events at `/berth/events/<time>-<id>` on a shared TTL lease,
 * so etcd stays small without a cleanup loop. A lease is reused for a sixth
 * of the TTL, so an event lives between 5/6 TTL and TTL.
 */
export class EventRecorder {
  private lease: { id: string; until: number } | undefined;
  private granting: Promise<string> | undefined;

  constructor(
    private readonly client: Etcd3,
    /** Who records: a replica or node id. */
    private readonly source: string,
    private readonly log: Logger,
    private readonly ttlSeconds = 3600,
  ) {}

  /** Builds an event and the put that stores it, to commit inside a larger transaction. */
  async prepare(input: EventInput, term?: number): Promise<{ event: BerthEvent; op: Op }> {
    const now = new Date();
    const event: BerthEvent = { id: newId(), time: now.toISOString(), source: this.source, ...input, ...(term === undefined ? {} : { term }) };
    const lease = await this.leaseId();
    return { event, op: putJson(eventKey(now, event.id), event, lease) };
  }

  /** Records an event unconditionally (user intent, agent reports). */
  async record(input: EventInput): Promise<BerthEvent> {
    return this.once(async () => {
      const { event, op } = await this.prepare(input);
      await commit(this.client, [], [op]);
      return event;
    });
  }

  /** Records an event only while `fence` holds (the leader's own actions); throws LEADERSHIP_LOST otherwise. */
  async recordFenced(fence: Fence, input: EventInput): Promise<BerthEvent> {
    return this.once(async () => {
      const { event, op } = await this.prepare(input, fence.term);
      await commitFenced(this.client, fence, [], [op]);
      return event;
    });
  }

  /**
   * Forgets the cached lease when `err` says etcd no longer has it (revoked,
   * or expired while etcd was away), so the next event is put on a new one
   * instead of failing, with every transaction it is part of, until the
   * cache would have renewed it. True when it did. Callers that commit
   * prepared events in their own transactions call it with their failure.
   */
  forgetLeaseOn(err: unknown): boolean {
    if (!leaseInvalid(err)) return false;
    this.log.warn({ lease: this.lease?.id }, 'the event lease is gone from etcd; granting a new one');
    this.lease = undefined;
    return true;
  }

  /** Runs `fn`; once more on a new lease when the cached one was gone. */
  private async once<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!this.forgetLeaseOn(err)) throw err;
      return fn();
    }
  }

  private async leaseId(): Promise<string> {
    if (this.lease && Date.now() < this.lease.until) return this.lease.id;
    this.granting ??= (async () => {
      try {
        const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: false });
        lease.on('lost', () => undefined);
        const id = await lease.grant();
        this.lease = { id, until: Date.now() + (this.ttlSeconds * 1000) / 6 };
        this.log.debug({ lease: id }, 'granted event lease');
        return id;
      } catch (err) {
        throw toBerthError(err);
      } finally {
        this.granting = undefined;
      }
    })();
    return this.granting;
  }
}

/** True when `err` (or what it wraps) is etcd's "requested lease not found". */
function leaseInvalid(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof EtcdLeaseInvalidError || /requested lease not found/.test(e.message)) return true;
  }
  return false;
}
