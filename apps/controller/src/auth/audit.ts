import { Range, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { auditKey, newId, prefixes, type AuditRecord } from '@berth/core';
import { decodeJson, putJson, toBerthError, TtlLease, TxnBatcher } from '@berth/store';

/** What a caller says about one request; id, time and replica are filled in. */
export type AuditInput = Omit<AuditRecord, 'id' | 'time' | 'replica'>;

/** Records read from etcd per request while listing. */
const AUDIT_PAGE = 1000;

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
   * the newest `limit`), of one actor when `actor` is given. Read in pages,
   * so a filter over days of records never asks etcd for all of them at once.
   */
  async list(opts: { since?: Date; actor?: string; limit: number }): Promise<AuditRecord[]> {
    const newestFirst = opts.since === undefined;
    const all = Range.prefix(prefixes.audit);
    let range = newestFirst ? all : new Range(auditKey(opts.since!, ''), all.end);
    const items: AuditRecord[] = [];
    try {
      while (items.length < opts.limit) {
        const res = await this.client.getAll().inRange(range).sort('Key', newestFirst ? 'Descend' : 'Ascend').limit(AUDIT_PAGE).exec();
        for (const kv of res.kvs) {
          const record = decodeJson<AuditRecord>(kv)?.value;
          if (record !== undefined && (opts.actor === undefined || record.actor === opts.actor) && items.length < opts.limit) items.push(record);
        }
        const last = res.kvs[res.kvs.length - 1];
        if (last === undefined || res.kvs.length < AUDIT_PAGE) break;
        // The next page starts past the last key read (before it, newest first).
        range = newestFirst ? new Range(all.start, last.key) : new Range(Buffer.concat([last.key, Buffer.from([0])]), all.end);
      }
    } catch (err) {
      throw toBerthError(err);
    }
    return newestFirst ? items.reverse() : items;
  }
}
