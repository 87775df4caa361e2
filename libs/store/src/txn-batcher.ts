import type { Etcd3 } from 'etcd3';
import { commit, type Compare, type Op, type TxnResult } from './txn.js';

/** One caller's transaction: applied only if its guards hold, independently of the others it is batched with. */
export interface BatchedTxn {
  compares: Compare[];
  ops: Op[];
}

/** Limits of one combined transaction. */
export interface TxnBatcherOptions {
  /** Operations per transaction (etcd's `--max-txn-ops` defaults to 128). */
  maxOps?: number;
  /** Bytes of values per transaction (etcd's `--max-request-bytes` defaults to 1.5 MiB). */
  maxBytes?: number;
  /** Combined transactions in flight at once. */
  maxInFlight?: number;
}

interface Pending {
  txn: BatchedTxn;
  keys: string[];
  bytes: number;
  resolve: (r: TxnResult) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: callers submit small transactions, and whatever arrived
 * while earlier ones were in flight is sent as one etcd transaction, so the
 * rate of writes is not one round trip each. Each caller's guards still
 * decide for its own writes: when a combined transaction fails a guard, its
 * parts are committed one by one (rare: guards of fresh keys and of records
 * only one writer touches), and each caller learns its own outcome. Parts
 * touching a key already in the batch wait for the next one (etcd refuses a
 * transaction that writes a key twice).
 */
export class TxnBatcher {
  private readonly queue: Pending[] = [];
  private inFlight = 0;
  private readonly maxOps: number;
  private readonly maxBytes: number;
  private readonly maxInFlight: number;
  /** Combined transactions committed, and parts in them, for benchmarks. */
  readonly stats = { transactions: 0, parts: 0, splits: 0 };

  constructor(
    private readonly client: Etcd3,
    opts: TxnBatcherOptions = {},
  ) {
    this.maxOps = opts.maxOps ?? 128;
    this.maxBytes = opts.maxBytes ?? 1024 * 1024;
    this.maxInFlight = opts.maxInFlight ?? 2;
  }

  /** Commits `txn` in the next combined transaction; resolves with whether its guards held. */
  submit(txn: BatchedTxn): Promise<TxnResult> {
    const keys = [...new Set(txn.ops.map((o) => o.key))];
    const bytes = txn.ops.reduce((n, o) => n + o.key.length + (o.type === 'put' ? o.value.length : 0), 0);
    return new Promise<TxnResult>((resolve, reject) => {
      this.queue.push({ txn, keys, bytes, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.take();
      this.inFlight += 1;
      void this.run(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  /** The next batch: queued parts in order, within the limits, no key twice (at least one part, however large). */
  private take(): Pending[] {
    const batch: Pending[] = [];
    const keys = new Set<string>();
    let ops = 0;
    let bytes = 0;
    for (let i = 0; i < this.queue.length; ) {
      const p = this.queue[i]!;
      const fits = batch.length === 0 || (ops + p.txn.ops.length + p.txn.compares.length <= this.maxOps && bytes + p.bytes <= this.maxBytes);
      if (!fits) break;
      if (p.keys.some((k) => keys.has(k))) {
        i += 1;
        continue;
      }
      this.queue.splice(i, 1);
      batch.push(p);
      for (const k of p.keys) keys.add(k);
      ops += p.txn.ops.length + p.txn.compares.length;
      bytes += p.bytes;
    }
    return batch;
  }

  private async run(batch: Pending[]): Promise<void> {
    this.stats.transactions += 1;
    this.stats.parts += batch.length;
    let res: TxnResult;
    try {
      res = await commit(
        this.client,
        batch.flatMap((p) => p.txn.compares),
        batch.flatMap((p) => p.txn.ops),
      );
    } catch (err) {
      if (batch.length === 1) return batch[0]!.reject(err);
      // One part may be what etcd refused (a lease gone, say): let each learn its own fate.
      return this.split(batch);
    }
    if (res.succeeded || batch.length === 1) {
      for (const p of batch) p.resolve(res);
      return;
    }
    await this.split(batch);
  }

  private async split(batch: Pending[]): Promise<void> {
    this.stats.splits += 1;
    await Promise.all(
      batch.map(async (p) => {
        try {
          p.resolve(await commit(this.client, p.txn.compares, p.txn.ops));
        } catch (err) {
          p.reject(err);
        }
      }),
    );
  }
}
