import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { prefixes } from '@berth/core';

/** A change of one of a node's own keys (its record or its heartbeat). */
export type OwnKeyHandler = (type: 'put' | 'delete', kv: IKeyValue) => void;

/**
 * Delivers changes of each node's own keys (`/berth/nodes/<id>`,
 * `/berth/heartbeats/<id>`) to that node. One agent node watches its two keys;
 * an agent simulating thousands of nodes watches the two prefixes once
 * instead of opening two watchers per node. After a reconnect, `onResync`
 * runs so nodes re-read their keys (a watch resume can skip events).
 */
export class OwnKeyWatcher {
  private readonly handlers = new Map<string, OwnKeyHandler>();
  private readonly watchers: Watcher[] = [];

  constructor(
    private readonly client: Etcd3,
    private readonly mode: 'keys' | 'prefixes',
    private readonly log: Logger,
    private readonly onResync: () => void,
  ) {
    if (mode === 'prefixes') {
      for (const prefix of [prefixes.nodes, prefixes.heartbeats]) this.attach(client.watch().prefix(prefix).watcher());
    }
  }

  /** Routes changes of `key` to `handler`. */
  subscribe(key: string, handler: OwnKeyHandler): void {
    this.handlers.set(key, handler);
    if (this.mode === 'keys') this.attach(this.client.watch().key(key).watcher());
  }

  private attach(watcher: Watcher): void {
    this.watchers.push(watcher);
    let disconnected = false;
    watcher.on('put', (kv) => this.handlers.get(kv.key.toString())?.('put', kv));
    watcher.on('delete', (kv) => this.handlers.get(kv.key.toString())?.('delete', kv));
    watcher.on('disconnected', () => {
      disconnected = true;
    });
    watcher.on('connected', () => {
      if (!disconnected) return;
      disconnected = false;
      this.onResync();
    });
    watcher.on('error', (err: Error) => {
      // etcd3 has discarded a cancelled watcher: open a new one on the same range, then re-read.
      this.log.warn({ err }, 'own-key watch cancelled; re-watching and re-reading keys');
      const i = this.watchers.indexOf(watcher);
      if (i >= 0) this.watchers.splice(i, 1);
      const req = (watcher as unknown as { request: { key: Buffer; range_end?: Buffer } }).request;
      const builder = this.client.watch();
      this.attach(req.range_end && req.range_end.length > 0 ? builder.inRange({ start: req.key, end: req.range_end }).watcher() : builder.key(req.key).watcher());
      this.onResync();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.cancel().catch(() => undefined)));
  }
}
