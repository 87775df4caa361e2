import { setTimeout as delay } from 'node:timers/promises';
import { ApiError, ConnectionError, type BerthClient } from './client.js';

/** One Server-Sent Events message. */
export interface SseMessage {
  /** The `event:` name, `message` when the server gave none. */
  event: string;
  /** The `data:` lines joined with newlines. */
  data: string;
  /** The last `id:` seen on the stream (it carries over to later messages, as in the spec). */
  id?: string;
}

/**
 * An incremental parser of `text/event-stream` text (the WHATWG format):
 * lines end with LF, CR or CRLF; `event:`, `data:` and `id:` fields build a
 * message that a blank line dispatches; lines starting with `:` are comments
 * (heartbeats); unknown fields (`retry:`) are ignored. Pure.
 */
export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];
  private lastId: string | undefined;

  /** Feeds decoded text; returns the messages it completed. */
  push(text: string): SseMessage[] {
    this.buf += text;
    const out: SseMessage[] = [];
    const eol = /\r\n|\r|\n/g;
    let start = 0;
    for (let m = eol.exec(this.buf); m !== null; m = eol.exec(this.buf)) {
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      this.line(this.buf.slice(start, m.index), out);
      start = m.index + m[0].length;
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === '') {
      if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n'), ...(this.lastId === undefined ? {} : { id: this.lastId }) });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
  }
}

export interface FollowOptions {
  /** Called for every message, in order; a throw ends the watch with that error. */
  onMessage(msg: SseMessage): void;
  /** A one-line warning (stderr). */
  warn(line: string): void;
  /** Warn once the server has been unreachable this long (ms). */
  warnAfterMs?: number;
  /** With no bytes at all (the server sends a heartbeat every 15 s) for this long, the connection counts as dead. */
  idleMs?: number;
}

/**
 * Follows `GET /v1/events?watch=1` for ever. A dropped stream is reopened
 * after a short backoff (250 ms doubling to 2 s); the server then sends a
 * fresh `snapshot`, which the caller diffs against what it printed. Nothing
 * is printed on a reconnect, except one warning when the server stayed
 * unreachable for `warnAfterMs`. The first connection failing, or an API
 * error (401, 404...), throws as any other command would.
 */
export async function followEvents(api: BerthClient, opts: FollowOptions): Promise<never> {
  const warnAfterMs = opts.warnAfterMs ?? 3000;
  const idleMs = opts.idleMs ?? 45_000;
  let connectedOnce = false;
  let downSince: number | undefined;
  let warned = false;
  let backoff = 250;
  for (;;) {
    const abort = new AbortController();
    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => abort.abort(), idleMs);
    };
    let why = 'the stream ended';
    try {
      touch();
      const body = await api.watch(abort.signal);
      connectedOnce = true;
      const parser = new SseParser();
      const decoder = new TextDecoder();
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        touch();
        for (const msg of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (msg.event === 'snapshot') {
            downSince = undefined;
            warned = false;
            backoff = 250;
          }
          try {
            opts.onMessage(msg);
          } catch (err) {
            throw new HandlerError(err);
          }
        }
      }
    } catch (err) {
      if (err instanceof HandlerError) throw err.error;
      if (err instanceof ApiError) throw err;
      if (!connectedOnce && err instanceof ConnectionError) throw err;
      if (!(err instanceof ConnectionError) && !isStreamError(err)) throw err;
      why = err instanceof ConnectionError ? err.message.replace(/^unable to connect to the server at \S+: /, '') : abort.signal.aborted ? `no data for ${idleMs / 1000} s` : (err as Error).message;
    } finally {
      clearTimeout(idle);
      abort.abort();
    }
    const now = Date.now();
    downSince ??= now;
    if (!warned && now - downSince >= warnAfterMs) {
      warned = true;
      opts.warn(`warning: lost the watch on ${api.server} ${Math.round((now - downSince) / 1000)} s ago (${why}); still retrying`);
    }
    await delay(backoff);
    backoff = Math.min(backoff * 2, 2000);
  }
}

/** Carries an error of the caller's handler past the reconnect logic. */
class HandlerError {
  constructor(readonly error: unknown) {}
}

/** Errors a body stream throws when the connection breaks or is aborted (undici: TypeError terminated, AbortError, socket errors). */
function isStreamError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'AbortError' || err.name === 'TypeError' || 'code' in err || err.message === 'terminated';
}
