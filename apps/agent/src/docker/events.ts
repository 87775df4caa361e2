import { EventEmitter, on } from 'node:events';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { LABEL_NODE, LABEL_POD } from './containers.js';

/** What the runtime learns from the engine about a pod's container. */
export interface PodContainerEvent {
  /** `start`: a run began; `die`: it ended; `destroy`: the container was removed. */
  action: 'start' | 'die' | 'destroy';
  podId: string;
  containerId: string;
  /** For `die`: the main process's exit code (128 + signal when a signal ended it). */
  exitCode?: number;
}

/** The events of one pod's container, buffered from the moment it was asked for. */
export interface PodEventStream {
  /** The next event, or undefined once the signal it was opened with aborts. */
  next(): Promise<PodContainerEvent | undefined>;
  /** Stops buffering. */
  close(): void;
}

const ACTIONS = new Set<string>(['start', 'die', 'destroy']);

/**
 * The engine's event stream for this node's pod containers (labels
 * `berth.node` and `berth.pod`): one connection, opened on first use and
 * shared by the exit listeners and every log follower. When the engine goes
 * away it reconnects with back-off and asks for the events since the last one
 * it saw, so an exit while disconnected still arrives (perhaps twice: an
 * event repeated only makes a listener look again).
 */
export class EngineEvents {
  private readonly emitter = new EventEmitter();
  private stream?: Readable;
  /** Seconds: where a (re)connection resumes the engine's record. */
  private since?: number;
  private closed = false;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(
    private readonly docker: Docker,
    /** The node whose containers to watch (only known once it registered). */
    private readonly nodeId: () => string,
    private readonly log?: Logger,
  ) {
    // One listener per follower of a pod's logs: there may be many.
    this.emitter.setMaxListeners(0);
  }

  /** Calls `listener` for every event from now on; returns the function that stops it. */
  subscribe(listener: (ev: PodContainerEvent) => void): () => void {
    this.emitter.on('event', listener);
    this.watch();
    return () => this.emitter.off('event', listener);
  }

  /**
   * The events of pod `podId`'s container from this call on, buffered until
   * read, so one that comes between two looks at the container is not missed.
   */
  ofPod(podId: string, signal: AbortSignal): PodEventStream {
    if (signal.aborted) return { next: async () => undefined, close: () => undefined };
    const events = on(this.emitter, podEvent(podId), { signal }) as AsyncIterableIterator<[PodContainerEvent]>;
    this.watch();
    return {
      next: async () => {
        try {
          const r = await events.next();
          return r.done === true ? undefined : r.value[0];
        } catch (err) {
          if (signal.aborted) return undefined;
          throw err;
        }
      },
      close: () => void events.return?.(),
    };
  }

  /** Stops watching: no event reaches a listener after this. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.stream?.destroy();
  }

  private watch(): void {
    if (this.stream === undefined && this.reconnectTimer === undefined) void this.connect(0);
  }

  private async connect(attempt: number): Promise<void> {
    if (this.closed) return;
    delete this.reconnectTimer;
    const retry = () => {
      if (this.closed || this.reconnectTimer !== undefined) return;
      delete this.stream;
      const delay = Math.min(200 * 2 ** attempt, 5000);
      this.reconnectTimer = setTimeout(() => void this.connect(Math.min(attempt + 1, 5)), delay);
      this.reconnectTimer.unref();
    };
    // From the first connection on, ask from a known second: events between the first
    // subscriber's call and the connection's opening are replayed, not lost.
    this.since ??= Math.floor(Date.now() / 1000);
    let stream: Readable;
    try {
      stream = (await this.docker.getEvents({
        since: this.since,
        filters: { type: ['container'], event: [...ACTIONS], label: [`${LABEL_NODE}=${this.nodeId()}`, LABEL_POD] },
      })) as unknown as Readable;
    } catch (err) {
      this.log?.debug({ err, retryInMs: Math.min(200 * 2 ** attempt, 5000) }, 'cannot watch Docker events; retrying');
      return retry();
    }
    if (this.closed) {
      stream.destroy();
      return;
    }
    this.stream = stream;
    attempt = 0;
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.length > 0) this.onLine(line);
      }
    });
    stream.on('error', (err) => this.log?.debug({ err }, 'Docker event stream broke; reconnecting'));
    stream.on('close', () => {
      if (this.stream === stream) retry();
    });
    stream.on('end', () => {
      if (this.stream === stream) retry();
    });
  }

  private onLine(line: string): void {
    let ev: { status?: string; Action?: string; time?: number; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      return;
    }
    if (typeof ev.time === 'number') this.since = ev.time;
    const action = ev.Action ?? ev.status ?? '';
    const podId = ev.Actor?.Attributes?.[LABEL_POD];
    const containerId = ev.Actor?.ID ?? ev.id;
    if (!ACTIONS.has(action) || podId === undefined || containerId === undefined) return;
    const exit = ev.Actor?.Attributes?.exitCode;
    const event: PodContainerEvent = {
      action: action as PodContainerEvent['action'],
      podId,
      containerId,
      ...(action === 'die' ? { exitCode: Number(exit ?? 0) } : {}),
    };
    this.emitter.emit('event', event);
    this.emitter.emit(podEvent(podId), event);
  }
}

function podEvent(podId: string): string {
  return `pod:${podId}`;
}
