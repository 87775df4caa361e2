/** How a work queue runs its handler. */
export interface WorkQueueOptions<K> {
  /** Syncs one key. A throw sends the key back with per-key backoff (`retry` decides). */
  handler: (key: K) => Promise<void>;
  /** Keys handled at once; one key is never handled by two workers at the same time. Default 1. */
  concurrency?: number;
  /** First retry delay of a failing key; doubles per consecutive failure. Default 200 ms. */
  baseDelayMs?: number;
  /** Cap of a failing key's retry delay. Default 10 s. */
  maxDelayMs?: number;
  /**
   * Called when the handler throws, with the key's consecutive failure count.
   * Return a delay in ms to retry after (0 = at once), or `undefined` for the
   * default exponential backoff. The queue never drops a failing key on its own:
   * call `forget` (or return `false`) to give up on it.
   */
  onError?: (key: K, err: unknown, failures: number) => number | undefined | false;
}

/**
 * A keyed work queue in the manner of client-go's workqueue: it holds keys,
 * not objects (the handler reads the current state itself), so a burst of
 * changes to one key is handled once. A key being handled is never handed to
 * a second worker; one added again meanwhile is handled once more, after.
 * Failures come back with per-key exponential backoff, reset on success.
 */
export class WorkQueue<K> {
  private readonly queue: K[] = [];
  private readonly queued = new Set<K>();
  private readonly processing = new Set<K>();
  /** Keys added while being processed: handled again once the current run ends. */
  private readonly dirty = new Set<K>();
  private readonly delayed = new Map<K, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<K, number>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private shut = false;
  private paused = false;
  /** Handler runs so far, for tests and metrics. */
  runs = 0;

  constructor(private readonly opts: WorkQueueOptions<K>) {
    this.concurrency = Math.max(1, opts.concurrency ?? 1);
    this.baseDelayMs = opts.baseDelayMs ?? 200;
    this.maxDelayMs = opts.maxDelayMs ?? 10_000;
  }

  /** Queues `key` unless it is already waiting; a key being handled runs once more afterwards. */
  add(key: K): void {
    if (this.shut) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Queues `key` in `ms` (or sooner, if it is added meanwhile or an earlier delay is pending). */
  addAfter(key: K, ms: number): void {
    if (this.shut) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    timer.unref?.();
    this.delayed.set(key, { at, timer });
  }

  /** The delay of the n-th consecutive failure. */
  backoff(failures: number): number {
    return Math.min(this.baseDelayMs * 2 ** Math.max(0, failures - 1), this.maxDelayMs);
  }

  /** Consecutive failures of `key` so far. */
  failuresOf(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  /** Starts `key`'s back-off over: its next failure waits the first delay again (a pending delayed add stays). */
  resetFailures(key: K): void {
    this.failures.delete(key);
  }

  /** Stops tracking `key`: its failure count and any pending delayed add are dropped. */
  forget(key: K): void {
    this.failures.delete(key);
    const d = this.delayed.get(key);
    if (d !== undefined) clearTimeout(d.timer);
    this.delayed.delete(key);
  }

  /** Keys waiting or being handled. */
  get length(): number {
    return this.queue.length + this.processing.size;
  }

  /** True while `key` is being handled. */
  isProcessing(key: K): boolean {
    return this.processing.has(key);
  }

  /** Holds new work (keys still accumulate and de-duplicate) until `resume`. */
  pause(): void {
    this.paused = true;
  }

  /** Hands held work to the workers again. */
  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Resolves when no key is being handled. */
  idle(): Promise<void> {
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops every waiting and delayed key; keys being handled finish. Adds are ignored from now on. */
  shutdown(): void {
    this.shut = true;
    this.clear();
  }

  /** Drops every waiting and delayed key and every failure count, but keeps accepting adds. */
  clear(): void {
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.dirty.clear();
    this.failures.clear();
  }

  private pump(): void {
    while (!this.paused && !this.shut && this.processing.size < this.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.processing.add(key);
      void this.work(key);
    }
  }

  private async work(key: K): Promise<void> {
    try {
      this.runs += 1;
      await this.opts.handler(key);
      this.failures.delete(key);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = this.opts.onError?.(key, err, n);
      if (delay === false) this.forget(key);
      else if (!this.shut) {
        const ms = delay ?? this.backoff(n);
        if (ms <= 0) this.dirty.add(key);
        else this.addAfter(key, ms);
      }
    } finally {
      this.processing.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      if (this.processing.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
