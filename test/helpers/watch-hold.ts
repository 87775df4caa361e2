import type { Etcd3, IWatchResponse, WatchBuilder, Watcher } from 'etcd3';

/**
 * A lagging watch on demand: `client` is a real etcd3 client in every
 * respect, except that while `hold()` is on, what etcd sends to watches of
 * `prefix` is kept back (in order) until `release()`. Reads, writes and
 * other prefixes' watches go through at once. This is the skew a re-watch
 * produces (one prefix replaying from an old revision while another is
 * current), made deterministic: etcd really sent the events, the cache has
 * not applied them yet.
 */
export class WatchHold {
  readonly client: Etcd3;
  private held = false;
  private readonly queue: Array<() => void> = [];
  /** Watch responses kept back so far (for tests that check the hold took effect). */
  heldResponses = 0;

  constructor(
    real: Etcd3,
    private readonly prefix: string,
  ) {
    this.client = new Proxy(real, {
      get: (target, prop) => {
        if (prop === 'watch') return () => this.wrap(target.watch());
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** From now on, responses to watches of the prefix wait for `release`. */
  hold(): void {
    this.held = true;
  }

  /** Delivers what was kept back, in order, and stops holding. */
  release(): void {
    this.held = false;
    for (const deliver of this.queue.splice(0)) deliver();
  }

  private wrap(builder: WatchBuilder): WatchBuilder {
    const watcher = builder.watcher.bind(builder);
    builder.watcher = (): Watcher => {
      const w = watcher();
      if (w.request.key?.toString('utf8') !== this.prefix) return w;
      const on = w.on.bind(w) as (event: string, fn: (...args: unknown[]) => void) => Watcher;
      (w as unknown as { on: typeof on }).on = (event, fn) => {
        if (event !== 'data') return on(event, fn);
        return on('data', (res) => {
          const deliver = () => fn(res as IWatchResponse);
          if (!this.held) return deliver();
          this.heldResponses += 1;
          this.queue.push(deliver);
        });
      };
      return w;
    };
    return builder;
  }
}
