import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { eventKey, newId, type BerthEvent } from '@berth/core';
import { TtlLease } from './ttl-lease.js';
import { commit, commitFenced, putJson, type Fence, type Op } from './txn.js';

/** What a caller says about an event; id, time and source are filled in. */
export type EventInput = Omit<BerthEvent, 'id' | 'time' | 'source' | 'term'>;

/**
 * Records audit events at `/berth/events/<time>-<id>` on a shared TTL lease,
 * so etcd stays small without a cleanup loop. A lease is reused for a sixth
 * of the TTL, so an event lives between 5/6 TTL and TTL.
 */
export class EventRecorder {
  private readonly lease: TtlLease;

  constructor(
    private readonly client: Etcd3,
    /** Who records: a replica or node id. */
    private readonly source: string,
    log: Logger,
    ttlSeconds = 3600,
  ) {
    this.lease = new TtlLease(client, ttlSeconds, log, 'events');
  }

  /** Builds an event and the put that stores it, to commit inside a larger transaction. */
  async prepare(input: EventInput, term?: number): Promise<{ event: BerthEvent; op: Op }> {
    const now = new Date();
    const event: BerthEvent = { id: newId(), time: now.toISOString(), source: this.source, ...input, ...(term === undefined ? {} : { term }) };
    const lease = await this.lease.id();
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
   * Forgets the cached lease when `err` says etcd no longer has it, so the
   * next event goes on a new one. True when it did. Callers that commit
   * prepared events in their own transactions call it with their failure.
   */
  forgetLeaseOn(err: unknown): boolean {
    return this.lease.forgetOn(err);
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
}
