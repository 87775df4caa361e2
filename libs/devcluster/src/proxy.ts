import net from 'node:net';
import { freePort } from './ports.js';

/** One-way latency a proxy adds: each chunk waits a uniform draw from [minMs, maxMs], never overtaking the one before. */
export interface ProxyDelay {
  minMs: number;
  maxMs: number;
}

/** Runs actions in the order pushed, each no earlier than its own delay after its push. */
class DelayQueue {
  private readonly items: Array<{ due: number; run: () => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  /** Due time of the last item pushed: later items never run before it. */
  private lastDue = 0;

  get empty(): boolean {
    return this.items.length === 0;
  }

  push(waitMs: number, run: () => void): void {
    this.lastDue = Math.max(this.lastDue, Date.now() + waitMs);
    this.items.push({ due: this.lastDue, run });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.items.length === 0) return;
    this.timer = setTimeout(() => this.pump(), Math.max(0, this.items[0]!.due - Date.now()));
  }

  private pump(): void {
    this.timer = undefined;
    while (this.items.length > 0 && this.items[0]!.due <= Date.now()) this.items.shift()!.run();
    this.schedule();
  }
}

/**
 * A loopback TCP proxy that can cut every connection on demand (a network
 * partition between one client and etcd, without touching etcd itself) or
 * delay what etcd sends (a busy or distant etcd), keeping byte order.
 */
export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  private cutOff = false;
  /** Latency added to what the target sends back; none by default. */
  private delay: ProxyDelay | undefined;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly listenHost: string,
  ) {}

  /** A proxy to targetHost:targetPort listening on a free port of `listenHost` (a local address). */
  static async start(targetPort: number, targetHost = '127.0.0.1', listenHost = '127.0.0.1'): Promise<TcpProxy> {
    const port = await freePort(listenHost);
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => {
      if (proxy === undefined || proxy.cutOff) {
        client.destroy();
        return;
      }
      const upstream = net.connect(targetPort, targetHost);
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on('close', () => proxy?.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      // Target -> client: in order, each chunk after its own delay (but never before the previous one),
      // pausing the target while the client is not reading (backpressure, as pipe would). One FIFO and one
      // timer: a timer per chunk would not keep order (Node orders timers by their loop-time expiry, and
      // a later chunk's shorter wait can expire first), and swapped chunks corrupt or reorder the stream.
      const queue = new DelayQueue();
      const forward = (chunk: Buffer) => {
        if (client.destroyed || client.write(chunk)) return;
        upstream.pause();
        client.once('drain', () => upstream.resume());
      };
      upstream.on('data', (chunk: Buffer) => {
        const d = proxy?.delay;
        if (d === undefined && queue.empty) return forward(chunk);
        queue.push(d === undefined ? 0 : d.minMs + Math.random() * (d.maxMs - d.minMs), () => forward(chunk));
      });
      // The target's end and close reach the client after what is still delayed.
      upstream.on('end', () => queue.push(0, () => client.end()));
      upstream.on('close', () => queue.push(0, () => client.destroy()));
      client.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, listenHost, resolve);
    });
    proxy = new TcpProxy(server, port, listenHost);
    return proxy;
  }

  /** URL a client uses instead of the target's. */
  get endpoint(): string {
    return `http://${this.listenHost}:${this.port}`;
  }

  /** Drops every connection and refuses new ones until `restore`. */
  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.cutOff = false;
  }

  /** Delays everything the target sends from now on (undefined: no delay). */
  setDelay(delay: ProxyDelay | undefined): void {
    this.delay = delay;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
