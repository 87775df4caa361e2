import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { UnknownPodError } from '../runtime.js';
import { callEngine, statusOf } from './engine-errors.js';
import type { EngineEvents } from './events.js';

/** The pod whose log is followed, and what the follower needs to watch its container. */
export interface FollowedPod {
  podId: string;
  docker: Docker;
  events: EngineEvents;
  /** The pod's container as the engine has it now; undefined once it is gone. */
  inspect(): Promise<Docker.ContainerInspectInfo | undefined>;
}

/** Which part of a container's log to ask the engine for. */
type LogRange = { tail?: number; since?: string };

/** A pod's logs so far (the last `tail` lines when given), demultiplexed. */
export async function readLogs(container: Docker.Container, podId: string, tail: number | undefined, timeoutMs?: number): Promise<string> {
  if (tail !== undefined && tail <= 0) return '';
  const buf = await callEngine('logs', (abortSignal) => container.logs({ stdout: true, stderr: true, follow: false, abortSignal, ...(tail === undefined ? {} : { tail }) }), timeoutMs).catch((err: unknown) => {
    if (statusOf(err) === 404) throw new UnknownPodError(podId);
    throw err;
  });
  return demux(buf);
}

/**
 * A pod's log as it is written, across the runs of its container, until
 * `signal` aborts or the container is removed. The engine ends a followed
 * log when the run ends; then the follower waits for the engine's next event
 * of the container (a `start`: follow the new run; a `destroy`: done)
 * instead of asking the engine over and over. A new run is followed from
 * just after the last line delivered (the engine stamps each line), so no
 * line is lost or sent twice across a restart.
 */
export async function* followLogs(pod: FollowedPod, opts: { tail?: number }, signal: AbortSignal): AsyncIterable<string> {
  const { docker, events, podId, inspect } = pod;
  // Listening before the first look at the container: an event that comes between a look and
  // the wait after it is kept for the wait, not lost.
  const podEvents = events.ofPod(podId, signal);
  try {
    let info = await inspect();
    if (info === undefined) throw new UnknownPodError(podId);
    let range: LogRange = opts.tail === undefined ? {} : { tail: opts.tail };
    let last: bigint | undefined;
    for (;;) {
      const run = info.State.StartedAt;
      last = (yield* followRun(docker.getContainer(info.Id), range, signal)) ?? last;
      if (signal.aborted) return;
      // The run ended. Wait for one that started since; it may be over already (a crash loop's
      // runs can last milliseconds), and its output is read all the same. While the engine still
      // shows the same run (its exit not recorded yet) the `die` event is on its way.
      for (;;) {
        info = await inspect();
        if (info === undefined) return;
        if (info.State.StartedAt !== run) break;
        if ((await podEvents.next()) === undefined) return;
      }
      const since = last === undefined ? unixTime(info.State.FinishedAt) : unixTime(last + 1n);
      range = since === undefined ? {} : { since };
    }
  } finally {
    podEvents.close();
  }
}

/**
 * Follows one run's output until the engine ends the stream (the run ended)
 * or `signal` aborts; returns the stamp of the last line, in nanoseconds.
 */
async function* followRun(container: Docker.Container, range: LogRange, signal: AbortSignal): AsyncGenerator<string, bigint | undefined> {
  let raw: Readable;
  try {
    raw = (await callEngine('logs', () => container.logs({ stdout: true, stderr: true, follow: true, timestamps: true, ...range }))) as unknown as Readable;
  } catch (err) {
    if (statusOf(err) === 404) return undefined; // removed meanwhile: the caller's next look says so
    throw err;
  }
  const onAbort = () => raw.destroy();
  signal.addEventListener('abort', onAbort);
  if (signal.aborted) raw.destroy();
  const decoder = new StringDecoder('utf8');
  let last: bigint | undefined;
  try {
    for await (const line of timestampedFrames(raw)) {
      last = line.stamp ?? last;
      const text = decoder.write(line.text);
      if (text.length > 0) yield text;
    }
    const rest = decoder.end();
    if (rest.length > 0) yield rest;
  } catch (err) {
    if (signal.aborted) return last;
    // A stream cut short (the engine went away) is not the end of the run: say so rather than wait.
    throw new Error(`the Docker engine broke off the log stream: ${(err as Error).message}`, { cause: err });
  } finally {
    signal.removeEventListener('abort', onAbort);
    raw.destroy();
  }
  return last;
}

/**
 * The frames of the engine's multiplexed log stream (an 8-byte header:
 * stream, 0, 0, 0, size BE32; then the payload), each one message that,
 * with `timestamps: true`, starts with its RFC 3339 stamp and a space.
 */
async function* timestampedFrames(raw: AsyncIterable<Buffer>): AsyncGenerator<{ stamp?: bigint; text: Buffer }> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of raw) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const payload = buf.subarray(8, 8 + size);
      buf = buf.subarray(8 + size);
      const space = payload.indexOf(0x20);
      const stamp = space > 0 ? nanosOf(payload.subarray(0, space).toString('latin1')) : undefined;
      yield stamp === undefined ? { text: payload } : { stamp, text: payload.subarray(space + 1) };
    }
  }
}

/** Docker's multiplexed log format: 8-byte headers (stream, 0, 0, 0, size BE32) per frame. */
export function demux(buf: Buffer): string {
  if (!Buffer.isBuffer(buf)) return String(buf ?? '');
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length) {
    const type = buf[i];
    if (type !== 0 && type !== 1 && type !== 2) return out + buf.subarray(i).toString('utf8'); // not multiplexed (TTY)
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return out;
}

/**
 * An engine time (RFC 3339 with up to nanoseconds, `2024-05-01T10:00:00.123456789Z`)
 * in nanoseconds since the epoch; undefined for anything else, and for Go's
 * zero time, which the engine reports for a container that never finished.
 */
export function nanosOf(rfc3339: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(rfc3339);
  if (m === null || m[1]!.startsWith('0001-')) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** A time as the `seconds.nanoseconds` the logs API takes for `since` (inclusive). */
function unixTime(at: string | bigint): string | undefined {
  const ns = typeof at === 'bigint' ? at : nanosOf(at);
  if (ns === undefined) return undefined;
  return `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
}
