import { createRequire } from 'node:module';

/*
 * Containment of a race in etcd3's watch manager (etcd3 1.1.2, unmaintained).
 *
 * All watches of a client share one gRPC stream. When that stream fails
 * (a deadline, a reset, a keepalive timeout), the manager cancels it, marks
 * every watcher unattached and later opens a new stream, re-attaching the
 * watchers, which etcd numbers again from 0. The old stream's `data`
 * listener is never removed, and gRPC still delivers responses it had
 * buffered. Such a response then either names a watch id no watcher has
 * (etcd3 throws `ClientRuntimeError: Failed to find watcher for
 * IWatchResponse` inside the gRPC callback, and the process dies) or, worse,
 * an id the new stream reused for another watcher, which then receives
 * another prefix's events. A slow etcd makes stream failures, and so this
 * race, frequent.
 *
 * The fix, applied once to the manager's prototype when a client is created:
 * 1. every stream the manager opens is fenced: once the manager cancels it,
 *    nothing it still delivers reaches the manager;
 * 2. a response on the live stream for a watch id no watcher holds is
 *    answered with a cancel request for that id (etcd stops sending it)
 *    instead of a throw;
 * 3. a `created` response nobody waits for resets the stream (every watcher
 *    re-attaches, and Berth's informers resume from the revision they
 *    applied) instead of a throw;
 * 4. with etcd auth, a watch that etcd refuses to create because the
 *    stream's token is no longer valid (etcd restarted, or the simple token
 *    expired unused) makes the client fetch a new token and open a new
 *    stream. etcd3 renews the token only for unary calls; a stream keeps the
 *    token it was opened with, so every later watch on it would be refused
 *    and etcd3 would drop each watcher with an error.
 * Each of these is reported to the incident listeners, so it is logged.
 */

/** What the watch guard saw and did instead of letting etcd3 throw. */
export interface WatchIncident {
  kind: 'stale-stream-event' | 'unknown-watch-id' | 'unexpected-create' | 'auth-token-renewed';
  detail: string;
}

interface RawStream {
  on(event: string, fn: (...args: unknown[]) => void): RawStream;
  write(msg: unknown): boolean;
  cancel(): void;
}

interface WatchResponse {
  watch_id: string;
  created?: boolean;
  canceled?: boolean;
  cancel_reason?: string;
}

interface ManagerInternals {
  /** etcd3's WatchClient; its `client` is the connection pool, which caches the auth token. */
  client: { watch(...args: unknown[]): Promise<RawStream>; client?: { authenticator?: { invalidateMetadata(): void } } };
  state: number;
  stream?: RawStream;
  watchers: Array<{ id: string | null }>;
  establishStream(): void;
  handleResponse(res: WatchResponse): void;
  handleCreatedResponse(res: WatchResponse): void;
  handleError(err: Error): void;
}

/** etcd's answer to a request whose token it does not know (any more). */
const INVALID_TOKEN = /invalid auth token/;

/** etcd3's `State.Connected`. */
const CONNECTED = 2;

const listeners = new Set<(incident: WatchIncident) => void>();
let installed = false;

/** Calls `fn` for every incident the guard contained; returns a function that stops it. */
export function onWatchIncident(fn: (incident: WatchIncident) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function report(incident: WatchIncident): void {
  for (const fn of listeners) {
    try {
      fn(incident);
    } catch {
      // A listener's failure must not become the crash this guard prevents.
    }
  }
}

/** The stream a fenced stream wraps, for tests that replay what a cancelled stream still delivers. */
export const RAW_STREAM = Symbol('berth.rawWatchStream');

/**
 * A stream whose responses stop reaching `manager` once it is cancelled.
 * Its end (`error`, `end`) still does while it is the manager's connected
 * stream: etcd3 cancels the stream when its last watcher leaves and relies on
 * that end to go idle. Once the manager has moved on (idle, or a newer
 * stream), the old stream's end is dropped too, so it cannot tear down the
 * new one.
 */
function fence(stream: RawStream, manager: ManagerInternals): RawStream {
  let live = true;
  const fenced: RawStream & { [RAW_STREAM]: RawStream } = {
    [RAW_STREAM]: stream,
    on(event, fn) {
      stream.on(event, (...args: unknown[]) => {
        if (event !== 'data') {
          if (manager.stream === fenced && manager.state === CONNECTED) return fn(...args);
          return;
        }
        if (live) return fn(...args);
        report({ kind: 'stale-stream-event', detail: `a response for watch ${String((args[0] as WatchResponse | undefined)?.watch_id)} arrived on a cancelled stream; dropped` });
      });
      return fenced;
    },
    write(msg) {
      return live ? stream.write(msg) : false;
    },
    cancel() {
      live = false;
      stream.cancel();
    },
  };
  return fenced;
}

/** Patches etcd3's WatchManager once per process (idempotent). */
export function installWatchGuard(): void {
  if (installed) return;
  installed = true;
  const require = createRequire(import.meta.url);
  const { WatchManager } = require('etcd3/lib/watch.js') as { WatchManager: { prototype: ManagerInternals } };
  const proto = WatchManager.prototype;
  const fencedClients = new WeakSet<object>();

  const establishStream = proto.establishStream;
  proto.establishStream = function (this: ManagerInternals) {
    const client = this.client;
    if (!fencedClients.has(client)) {
      // Each namespace of a client has its own watch client and its own manager.
      fencedClients.add(client);
      const watch = client.watch.bind(client);
      client.watch = (...args: unknown[]) => watch(...args).then((stream) => fence(stream, this));
    }
    establishStream.call(this);
  };

  const handleResponse = proto.handleResponse;
  proto.handleResponse = function (this: ManagerInternals, res: WatchResponse) {
    if (this.watchers.some((w) => w.id === res.watch_id)) return handleResponse.call(this, res);
    report({ kind: 'unknown-watch-id', detail: `a response for watch ${res.watch_id}, which no watcher holds; cancelling that watch` });
    if (this.state === CONNECTED && this.stream !== undefined && !res.canceled) this.stream.write({ cancel_request: { watch_id: res.watch_id } });
  };

  const handleCreatedResponse = proto.handleCreatedResponse;
  proto.handleCreatedResponse = function (this: ManagerInternals, res: WatchResponse) {
    if (res.canceled && INVALID_TOKEN.test(res.cancel_reason ?? '')) {
      report({ kind: 'auth-token-renewed', detail: `etcd refused a watch: ${res.cancel_reason}; fetching a new token and opening a new stream` });
      this.client.client?.authenticator?.invalidateMetadata();
      this.handleError(new Error(res.cancel_reason));
      return;
    }
    try {
      handleCreatedResponse.call(this, res);
    } catch (err) {
      report({ kind: 'unexpected-create', detail: `${(err as Error).message} (watch ${res.watch_id}); resetting the watch stream` });
      this.handleError(err as Error);
    }
  };
}
