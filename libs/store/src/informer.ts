import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { EMPTY, fileUnder, unfile, type IndexFn } from './index-map.js';
import { decodeJson, listPrefix, probePrefix, type Versioned } from './txn.js';

/** A change seen by an informer, in etcd revision order. */
export interface InformerChange<T> {
  type: 'put' | 'delete';
  key: string;
  /** The new value (put). */
  item?: Versioned<T>;
  /** The value the cache held before (update or delete). */
  prev?: Versioned<T>;
}

/** Events an informer emits. */
export interface InformerEvents<T> {
  /** One key changed. Handlers must not mutate the items. */
  change: [InformerChange<T>];
  /** A (re)list finished: the cache equals etcd at `revision`. */
  synced: [number];
}

/** Backoff for relists and re-watches while etcd is away. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 1000;
/** First pause between progress checks while the watch brings changes (doubling up to RETRY_MAX_MS). */
const PROGRESS_MIN_MS = 50;

/** Resolves when `promise` does or `signal` aborts, whichever comes first. */
function untilAborted(promise: Promise<unknown>, signal: AbortSignal | undefined): Promise<unknown> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve();
  return Promise.race([promise, new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))]);
}

/**
 * A watch cache of one key prefix (the informer of client-go): it lists the
 * prefix at a revision, then watches from revision + 1, so no event is missed
 * or applied twice. When the watch stream drops it re-watches from the last
 * revision it applied (etcd3's own resume point can skip events that were
 * still being replayed); when etcd cancels the watch (e.g. that revision was
 * compacted) it relists and emits the difference as changes.
 *
 * Items handed out are shared with the cache: treat them as read-only.
 */
export class Informer<T> extends EventEmitter<InformerEvents<T>> {
  private readonly items = new Map<string, Versioned<T>>();
  /** name -> (index value -> keys), kept in step with `items` (client-go's Indexers). */
  private readonly indexes = new Map<string, { fn: IndexFn<T>; map: Map<string, Set<string>> }>();
  private watcher: Watcher | undefined;
  private rev = 0;
  private synced = false;
  private stopped = false;
  private retryMs = RETRY_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private firstSync: Promise<void>;
  private resolveFirstSync!: () => void;
  private readonly revisionWaiters: Array<{ rev: number; resolve: () => void }> = [];
  /** Keys under the prefix whose value is not JSON: not cached, but etcd counts them (see `waitForProgress`). */
  private readonly undecodable = new Set<string>();
  /** A list is under way: the cache is about to be replaced by etcd at the list's revision. */
  private listing = false;
  /** How many times the informer had to relist after its first sync (compaction, cancel). */
  relists = 0;
  /** How many times `waitForProgress` asked etcd whether the prefix changed. */
  progressChecks = 0;

  constructor(
    private readonly client: Etcd3,
    /** The key prefix this cache mirrors, e.g. `/berth/nodes/`. */
    readonly prefix: string,
    private readonly log: Logger,
  ) {
    super();
    this.firstSync = new Promise((resolve) => (this.resolveFirstSync = resolve));
  }

  /** Tells listeners of a change; one that throws (a bug of its own) must not crash the process inside a watch callback. */
  private notify(change: InformerChange<T>): void {
    try {
      this.emit('change', change);
    } catch (err) {
      this.log.error({ err, key: change.key }, 'an informer change listener failed');
    }
  }

  /** True once the cache has listed etcd at least once and its watch is (re)established or pending. */
  get ready(): boolean {
    return this.synced;
  }

  /** The highest etcd revision whose changes under the prefix are applied to the cache. */
  get revision(): number {
    return this.rev;
  }

  /** Starts listing and watching; resolves after the first list. */
  start(): Promise<void> {
    void this.relist();
    return this.firstSync;
  }

  /** Resolves after the first list (without starting anything). */
  whenSynced(): Promise<void> {
    return this.firstSync;
  }

  /**
   * Resolves once the cache has applied every change up to `rev`
   * (read-your-writes for the API): true then, false after `timeoutMs` if the
   * watch is stuck (etcd went away right after the write), so no caller can
   * hang on a broken watch. Only for a revision written under this prefix:
   * see `waitForProgress` for any other.
   */
  async waitForRevision(rev: number, timeoutMs = 10_000): Promise<boolean> {
    const ok = await this.untilRevision(rev, timeoutMs);
    if (!ok) this.log.warn({ prefix: this.prefix, want: rev, have: this.rev }, 'cache did not catch up with a write in time');
    return ok;
  }

  /**
   * Resolves true once the cache reflects etcd at `rev` or later, whatever
   * was written at `rev` (a write under another prefix never shows up in this
   * watch, so `waitForRevision` could wait forever). While behind, it asks
   * etcd at `rev` for the prefix's key count and newest mod revision: if no
   * key changed after the applied revision and the count is the cache's, the
   * cache is etcd at `rev` and counts as at `rev` (events up to `rev` still
   * in the watch are then skipped, as replays are); otherwise the watch is
   * bringing the changes, and it checks again once the watch moved. False
   * when `signal` aborts or the informer stops first. (Not etcd's progress
   * request: before 3.4.25 and 3.5.8 etcd answers it at once with the store's
   * revision, even while the stream's watchers are still catching up.)
   */
  async waitForProgress(rev: number, signal?: AbortSignal): Promise<boolean> {
    if (!this.synced) await untilAborted(this.firstSync, signal);
    for (let pause = PROGRESS_MIN_MS; !this.stopped && signal?.aborted !== true; pause = Math.min(pause * 2, RETRY_MAX_MS)) {
      if (this.rev >= rev) return true;
      const base = this.rev;
      const keys = this.items.size + this.undecodable.size;
      const probe = this.listing
        ? undefined
        : await probePrefix(this.client, this.prefix, rev).catch((err: unknown) => void this.log.debug({ err, prefix: this.prefix }, 'progress check failed; retrying'));
      if (probe !== undefined) this.progressChecks += 1;
      if (this.rev >= rev) return true;
      // Valid only if nothing was applied (and no list began) while etcd answered.
      if (probe !== undefined && !this.listing && this.rev === base && probe.count === keys && probe.newestModRevision <= base) {
        this.log.debug({ prefix: this.prefix, from: base, to: rev }, 'nothing changed under the prefix up to the revision');
        this.advance(rev);
        return true;
      }
      await this.untilRevision(probe !== undefined && probe.newestModRevision > base ? Math.min(probe.newestModRevision, rev) : base + 1, pause, signal);
    }
    return false;
  }

  /** The cached item at `key`. */
  get(key: string): Versioned<T> | undefined {
    return this.items.get(key);
  }

  /** Every cached item, in key order. */
  list(): Versioned<T>[] {
    return [...this.items.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Every cached item in no particular order (no sort: for hot loops over large caches). */
  values(): IterableIterator<Versioned<T>> {
    return this.items.values();
  }

  /**
   * Adds an index: `fn` maps an item to the values it is filed under (e.g. a
   * pod to its node id), so `byIndex` answers without a scan and no caller
   * keeps a map of its own. Existing items are indexed at once.
   */
  addIndex(name: string, fn: IndexFn<T>): void {
    const map = new Map<string, Set<string>>();
    this.indexes.set(name, { fn, map });
    for (const item of this.items.values()) fileUnder(map, fn(item.value), item.key);
  }

  /** The cached items filed under `value` by the index `name`. */
  byIndex(name: string, value: string): Versioned<T>[] {
    const keys = this.indexKeys(name, value);
    const out: Versioned<T>[] = [];
    for (const key of keys) {
      const item = this.items.get(key);
      if (item !== undefined) out.push(item);
    }
    return out;
  }

  /** The keys filed under `value` by the index `name` (a live view: do not mutate). */
  indexKeys(name: string, value: string): ReadonlySet<string> {
    const index = this.indexes.get(name);
    if (index === undefined) throw new Error(`informer ${this.prefix} has no index ${JSON.stringify(name)}`);
    return index.map.get(value) ?? EMPTY;
  }

  /** Number of cached items. */
  get size(): number {
    return this.items.size;
  }

  /** Stops watching; the cache keeps its last content. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.dropWatcher();
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    this.listing = true;
    await this.dropWatcher();
    let snapshot;
    try {
      snapshot = await listPrefix(this.client, this.prefix);
    } catch (err) {
      this.log.warn({ err, prefix: this.prefix }, 'informer list failed, retrying');
      this.retry(() => this.relist());
      return;
    } finally {
      this.listing = false;
    }
    if (this.stopped) return;
    const seen = new Set<string>();
    this.undecodable.clear();
    for (const kv of snapshot.kvs) {
      const item = this.decode(kv);
      if (item === undefined) {
        this.undecodable.add(kv.key.toString('utf8'));
        continue;
      }
      seen.add(item.key);
      const prev = this.items.get(item.key);
      if (prev?.modRevision === item.modRevision) continue;
      this.setItem(item, prev);
      this.notify({ type: 'put', key: item.key, item, ...(prev ? { prev } : {}) });
    }
    for (const [key, prev] of this.items) {
      if (seen.has(key)) continue;
      this.deleteItem(key, prev);
      this.notify({ type: 'delete', key, prev });
    }
    if (this.synced) this.relists += 1;
    this.synced = true;
    this.retryMs = RETRY_MIN_MS;
    this.advance(snapshot.revision);
    this.log.debug({ prefix: this.prefix, revision: snapshot.revision, count: this.items.size }, 'informer listed');
    this.emit('synced', snapshot.revision);
    this.resolveFirstSync();
    this.watchFrom(snapshot.revision + 1);
  }

  private watchFrom(startRevision: number): void {
    if (this.stopped) return;
    const watcher = this.client.watch().prefix(this.prefix).startRevision(String(startRevision)).watcher();
    this.watcher = watcher;
    watcher.on('data', (res: IWatchResponse) => {
      if (this.watcher !== watcher) return;
      this.apply(res);
    });
    watcher.on('connected', () => {
      this.retryMs = RETRY_MIN_MS;
    });
    watcher.on('disconnected', (err: Error) => {
      if (this.watcher !== watcher) return;
      // Resume from what we applied, not from etcd3's own resume point.
      this.log.warn({ prefix: this.prefix, revision: this.rev, err }, 'informer watch disconnected, re-watching');
      void this.dropWatcher();
      this.retry(() => this.watchFrom(this.rev + 1));
    });
    watcher.on('error', (err: Error) => {
      if (this.watcher !== watcher) return;
      // etcd cancelled the watch, typically because the revision was compacted: relist.
      this.log.warn({ prefix: this.prefix, revision: this.rev, err }, 'informer watch cancelled, relisting');
      void this.dropWatcher();
      this.retry(() => this.relist(), 0);
    });
  }

  private apply(res: IWatchResponse): void {
    const before = this.rev;
    let highest = before;
    for (const ev of res.events) {
      const modRevision = Number(ev.kv.mod_revision);
      // A replay can only repeat what we already applied; never apply it twice.
      if (modRevision <= before) continue;
      highest = Math.max(highest, modRevision);
      const key = ev.kv.key.toString('utf8');
      const prev = this.items.get(key);
      const item = ev.type === 'Delete' ? undefined : this.decode(ev.kv);
      if (item === undefined) {
        // Deleted, or a value that is not JSON: not cached either way (as after a list).
        if (ev.type === 'Delete') this.undecodable.delete(key);
        else this.undecodable.add(key);
        if (prev === undefined) continue;
        this.deleteItem(key, prev);
        this.notify({ type: 'delete', key, prev });
        continue;
      }
      this.undecodable.delete(key);
      this.setItem(item, prev);
      this.notify({ type: 'put', key, item, ...(prev ? { prev } : {}) });
    }
    this.advance(highest);
  }

  private setItem(item: Versioned<T>, prev: Versioned<T> | undefined): void {
    this.items.set(item.key, item);
    for (const { fn, map } of this.indexes.values()) {
      if (prev !== undefined) unfile(map, fn(prev.value), prev.key);
      fileUnder(map, fn(item.value), item.key);
    }
  }

  private deleteItem(key: string, prev: Versioned<T>): void {
    this.items.delete(key);
    for (const { fn, map } of this.indexes.values()) unfile(map, fn(prev.value), key);
  }

  private advance(rev: number): void {
    if (rev <= this.rev) return;
    this.rev = rev;
    for (let i = this.revisionWaiters.length - 1; i >= 0; i--) {
      const w = this.revisionWaiters[i]!;
      if (w.rev <= rev) {
        this.revisionWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** True once the cache has applied `rev`; false after `timeoutMs` or when `signal` aborts. */
  private untilRevision(rev: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.rev >= rev) return Promise.resolve(true);
    if (signal?.aborted === true) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.revisionWaiters.indexOf(waiter);
        if (i >= 0) this.revisionWaiters.splice(i, 1);
        resolve(ok);
      };
      const waiter = { rev, resolve: () => done(true) };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.revisionWaiters.push(waiter);
    });
  }

  private decode(kv: IKeyValue): Versioned<T> | undefined {
    const item = decodeJson<T>(kv);
    if (item === undefined) this.log.warn({ key: kv.key.toString() }, 'ignoring a value that is not JSON');
    return item;
  }

  private retry(fn: () => void, delayMs = this.retryMs): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(fn, delayMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private async dropWatcher(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    if (watcher === undefined) return;
    watcher.removeAllListeners();
    watcher.on('error', () => undefined);
    await watcher.cancel().catch(() => undefined);
  }
}
