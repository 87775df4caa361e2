import { Range, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { auditKey, newId, prefixes, type AuditRecord } from '@berth/core';
import { decodeJson, putJson, toBerthError, TtlLease, TxnBatcher } from '@berth/store';

/** What a caller says about one request; id, time and replica are filled in. */
export type AuditInput = Omit<AuditRecord, 'id' | 'time' | 'replica'>;

/** Longest target id or name kept in a record (the rest of a long value is cut). */
const MAX_TARGET = 128;

/**
 * The audit trail: one record per API mutation, allowed or refused, at
 * `/berth/audit/<time>-<id>` on a shared TTL lease, and the same record as a
 * log line. Records go through a group-commit batcher, so a burst of
 * writes (or of refused ones) costs a few transactions, not one each. A
 * record etcd could not take is still in the log.
 */
export class AuditTrail {
  private readonly lease: TtlLease;
  private readonly batcher: TxnBatcher;
  /** Records written, and records etcd refused (each also logged). */
  readonly stats = { written: 0, failed: 0 };

  constructor(
    private readonly client: Etcd3,
    private readonly replica: string,
    ttlSeconds: number,
    private readonly log: Logger,
  ) {
    this.lease = new TtlLease(client, ttlSeconds, log, 'audit records');
    this.batcher = new TxnBatcher(client, { maxInFlight: 2 });
  }

  /** Records one request; never throws (a request's answer does not wait for its audit record). */
  record(input: AuditInput): void {
    const now = new Date();
    const record: AuditRecord = {
      id: newId(),
      time: now.toISOString(),
      replica: this.replica,
      ...input,
      target: input.target === null ? null : input.target.slice(0, MAX_TARGET),
    };
    this.log.info({ audit: record }, 'audit');
    void this.write(now, record);
  }

  private async write(at: Date, record: AuditRecord): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const lease = await this.lease.id();
        await this.batcher.submit({ compares: [], ops: [putJson(auditKey(at, record.id), record, lease)] });
        this.stats.written++;
        return;
      } catch (err) {
        if (attempt === 0 && this.lease.forgetOn(err)) continue;
        this.stats.failed++;
        this.log.warn({ err, auditId: record.id }, 'could not store an audit record in etcd (it is in this log)');
        return;
      }
    }
  }

  /**
   * Records from etcd, oldest first: those at or after `since` (default:
   * the newest `limit`), of one actor when `actor` is given.
   */
  async list(opts: { since?: Date; actor?: string; limit: number }): Promise<AuditRecord[]> {
    try {
      const all = Range.prefix(prefixes.audit);
      let kvs;
      if (opts.since === undefined) {
        // Newest first to take the last `limit`, then back to oldest first.
        const res = await this.client.getAll().inRange(all).sort('Key', 'Descend').limit(opts.actor === undefined ? opts.limit : 0).exec();
        kvs = res.kvs.reverse();
      } else {
        const res = await this.client.getAll().inRange(new Range(auditKey(opts.since, ''), all.end)).sort('Key', 'Ascend').limit(opts.actor === undefined ? opts.limit : 0).exec();
        kvs = res.kvs;
      }
      let items = kvs.map((kv) => decodeJson<AuditRecord>(kv)?.value).filter((r): r is AuditRecord => r !== undefined);
      if (opts.actor !== undefined) {
        items = items.filter((r) => r.actor === opts.actor);
        items = opts.since === undefined ? items.slice(-opts.limit) : items.slice(0, opts.limit);
      }
      return items;
    } catch (err) {
      throw toBerthError(err);
    }
  }
}
