import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import {
  PodCreateError,
  RuntimeUnavailableError,
  type RuntimeHealth,
  UnknownPodError,
  type ExitListener,
  type PodSpecForRuntime,
  type Runtime,
  type RuntimePodState,
} from './runtime.js';

/** One stats sample of a pod's container. */
export interface StatsSample {
  at: string;
  cpuPercent: number;
  memoryMiB: number;
}

export interface DockerRuntimeOptions {
  /** The node whose pods this runtime runs (label `berth.node`); a function when it is only known after registration. */
  nodeId: string | (() => string);
  /** Defaults to a client for DOCKER_HOST (like the docker CLI). */
  docker?: Docker;
  log?: Logger;
  /** Pull attempts before a pod fails (default 3). */
  pullAttempts?: number;
  /** First delay between pull attempts, doubling (default 500 ms). */
  pullBackoffMs?: number;
  /** Stats samples kept per pod (default 30). */
  historySize?: number;
}

const LABEL_POD = 'berth.pod';
const LABEL_NODE = 'berth.node';
const LABEL_SPEC = 'berth.spec';

/** Socket-level failures: the engine is not there (stopped, socket gone), not a problem of the request. */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENOTCONN', 'EACCES']);

interface DockerError extends Error {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | null;
  reason?: string;
}

function statusOf(err: unknown): number | undefined {
  return (err as DockerError | undefined)?.statusCode;
}

/** The engine's own message of an API error (dockerode wraps it as "(HTTP code 404) no such container - <engine message>"). */
function engineMessage(err: unknown): string {
  const e = err as DockerError;
  const msg = e?.json?.message;
  if (typeof msg === 'string' && msg.length > 0) return msg;
  return e instanceof Error ? e.message : String(err);
}

function isUnavailable(err: unknown): boolean {
  const e = err as DockerError | undefined;
  if (e === undefined || e === null) return false;
  if (e instanceof RuntimeUnavailableError) return true;
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  return e instanceof Error && e.statusCode === undefined && /socket hang up|connect E|read ECONNRESET|write EPIPE/.test(e.message);
}

/**
 * Pods as Docker containers (SPEC.md section 6), through dockerode against
 * the engine in DOCKER_HOST. One container per pod, named
 * `berth-pod-<name>-<id>` and labelled `berth.pod=<pod id>` and
 * `berth.node=<node id>`; host networking (the agent allocates `PORT`), the
 * pod's CPU and memory as limits, `Init: true` so SIGTERM reaches the pod's
 * process. Containers outlive the agent: `recover` adopts them after a
 * restart. Exits come from the engine's event stream (`die`). When the
 * engine is away every call throws RuntimeUnavailableError, which the
 * reconciler treats as transient.
 */
export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const;
  readonly docker: Docker;
  private readonly exitListeners: ExitListener[] = [];
  /** pod id -> container id, a cache of the label lookup. */
  private readonly containers = new Map<string, string>();
  private readonly history = new Map<string, StatsSample[]>();
  private readonly pullAttempts: number;
  private readonly pullBackoffMs: number;
  private readonly historySize: number;
  private events?: Readable;
  private eventsSince?: number;
  private closed = false;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(private readonly opts: DockerRuntimeOptions) {
    this.docker = opts.docker ?? new Docker();
    this.pullAttempts = opts.pullAttempts ?? 3;
    this.pullBackoffMs = opts.pullBackoffMs ?? 500;
    this.historySize = opts.historySize ?? 30;
  }

  get nodeId(): string {
    return typeof this.opts.nodeId === 'function' ? this.opts.nodeId() : this.opts.nodeId;
  }

  /** Pings the engine (2 s at most): the node's RuntimeReady condition. */
  async health(): Promise<RuntimeHealth> {
    const where = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
    try {
      await Promise.race([
        this.docker.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 2 s')), 2000).unref()),
      ]);
      return { ready: true, message: `Docker engine at ${where} answers` };
    } catch (err) {
      return { ready: false, message: `Docker engine at ${where} is unavailable: ${(err as Error).message}` };
    }
  }

  /** Runs a Docker call, turning "the engine is not there" into RuntimeUnavailableError. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isUnavailable(err)) {
        const where = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
        throw new RuntimeUnavailableError(`the Docker engine at ${where} is unavailable (${what}): ${(err as Error).message}`, { cause: err });
      }
      throw err;
    }
  }

  /** The container of a pod, or undefined. */
  private async containerId(podId: string): Promise<string | undefined> {
    const cached = this.containers.get(podId);
    if (cached !== undefined) return cached;
    const list = await this.call('list containers', () =>
      this.docker.listContainers({ all: true, filters: { label: [`${LABEL_POD}=${podId}`, `${LABEL_NODE}=${this.nodeId}`] } }),
    );
    const id = list[0]?.Id;
    if (id !== undefined) this.containers.set(podId, id);
    return id;
  }

  /** Inspects a pod's container; undefined when it has none (a stale cache entry is dropped). */
  private async inspectContainer(podId: string): Promise<Docker.ContainerInspectInfo | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const id = await this.containerId(podId);
      if (id === undefined) return undefined;
      try {
        return await this.call('inspect', () => this.docker.getContainer(id).inspect());
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
        this.containers.delete(podId);
      }
    }
    return undefined;
  }

  private async must(podId: string): Promise<Docker.Container> {
    const id = await this.containerId(podId);
    if (id === undefined) throw new UnknownPodError(podId);
    return this.docker.getContainer(id);
  }

  async create(spec: PodSpecForRuntime): Promise<void> {
    if (spec.image === undefined || spec.image.length === 0) throw new PodCreateError(`pod ${spec.name}: the docker runtime needs spec.image`);
    const hash = specHash(spec);
    const existing = await this.inspectContainer(spec.id);
    if (existing !== undefined) {
      const live = existing.State.Running || existing.State.Paused;
      if (live || existing.Config.Labels?.[LABEL_SPEC] === hash) return;
      // A stopped container with another spec (e.g. a new PORT): replace it.
      await this.remove(spec.id);
    }
    await this.ensureImage(spec.image);
    const env = Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
    env.push(`BERTH_POD_ID=${spec.id}`, `BERTH_POD_NAME=${spec.name}`);
    const name = `berth-pod-${spec.name}-${spec.id}`.replace(/[^a-zA-Z0-9_.-]/g, '-');
    try {
      const c = await this.call('create', () =>
        this.docker.createContainer({
          name,
          Image: spec.image,
          ...(spec.command === undefined || spec.command.length === 0 ? {} : { Cmd: spec.command }),
          Env: env,
          Labels: { [LABEL_POD]: spec.id, [LABEL_NODE]: this.nodeId, [LABEL_SPEC]: hash, 'berth.pod-name': spec.name },
          HostConfig: {
            NetworkMode: 'host',
            Init: true,
            NanoCpus: Math.round(spec.cpu * 1e9),
            Memory: Math.round(spec.memoryMiB * 1024 * 1024),
          },
        }),
      );
      this.containers.set(spec.id, c.id);
    } catch (err) {
      if (statusOf(err) === 409) {
        // Created concurrently (or a leftover with our name): use it.
        this.containers.delete(spec.id);
        if ((await this.containerId(spec.id)) !== undefined) return;
      }
      if (err instanceof RuntimeUnavailableError) throw err;
      const code = statusOf(err);
      if (code !== undefined && code >= 400 && code < 500) throw new PodCreateError(`cannot create the container: ${engineMessage(err)}`, { cause: err });
      throw err;
    }
  }

  /** Pulls `image` unless present; retries with back-off, then throws PodCreateError with the engine's message. */
  private async ensureImage(image: string): Promise<void> {
    try {
      await this.call('inspect image', () => this.docker.getImage(image).inspect());
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    let last = '';
    for (let attempt = 1; attempt <= this.pullAttempts; attempt++) {
      try {
        await this.pull(image);
        return;
      } catch (err) {
        if (err instanceof RuntimeUnavailableError) throw err;
        last = engineMessage(err);
        this.opts.log?.warn({ image, attempt, err: last }, 'image pull failed');
        if (attempt < this.pullAttempts) await sleep(this.pullBackoffMs * 2 ** (attempt - 1));
      }
    }
    throw new PodCreateError(`cannot pull image ${JSON.stringify(image)} (${this.pullAttempts} attempts): ${last}`);
  }

  private async pull(image: string): Promise<void> {
    const stream = (await this.call('pull', () => this.docker.pull(image))) as Readable;
    await new Promise<void>((resolve, reject) => {
      let failed: string | undefined;
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          if (err) reject(err);
          else if (failed !== undefined) reject(new Error(failed));
          else resolve();
        },
        (event: { error?: string; errorDetail?: { message?: string } }) => {
          if (event.error !== undefined || event.errorDetail !== undefined) failed ??= event.errorDetail?.message ?? event.error;
        },
      );
    });
  }

  async start(id: string): Promise<void> {
    const c = await this.must(id);
    try {
      await this.call('start', () => c.start());
    } catch (err) {
      if (statusOf(err) === 304) return; // already running
      if (statusOf(err) === 404) throw new UnknownPodError(id);
      throw err;
    }
  }

  async stop(id: string, timeoutMs: number): Promise<{ forced: boolean }> {
    const info = await this.inspectContainer(id);
    if (info === undefined) throw new UnknownPodError(id);
    if (!info.State.Running && !info.State.Paused) return { forced: false };
    const c = this.docker.getContainer(info.Id);
    if (info.State.Paused) await this.call('unpause', () => c.unpause()).catch(ignoreStatus(409));
    const t = Math.max(0, Math.ceil(timeoutMs / 1000));
    const began = Date.now();
    await this.call('stop', () => c.stop({ t })).catch(ignoreStatus(304));
    const after = await this.call('inspect', () => c.inspect());
    // 137 = 128 + SIGKILL: the engine killed it after the grace (unless the OOM killer did, or it exited before the grace ran out).
    const forced = after.State.ExitCode === 137 && !after.State.OOMKilled && Date.now() - began >= t * 1000 - 250;
    return { forced };
  }

  async pause(id: string): Promise<void> {
    const info = await this.inspectContainer(id);
    if (info === undefined) throw new UnknownPodError(id);
    if (info.State.Paused || !info.State.Running) return;
    await this.call('pause', () => this.docker.getContainer(info.Id).pause()).catch(ignoreStatus(409));
  }

  async resume(id: string): Promise<void> {
    const info = await this.inspectContainer(id);
    if (info === undefined) throw new UnknownPodError(id);
    if (!info.State.Paused) return;
    await this.call('unpause', () => this.docker.getContainer(info.Id).unpause()).catch(ignoreStatus(409));
  }

  async remove(id: string): Promise<void> {
    const cid = await this.containerId(id);
    this.history.delete(id);
    if (cid === undefined) return;
    await this.call('remove', () => this.docker.getContainer(cid).remove({ force: true, v: true })).catch(ignoreStatus(404, 409));
    this.containers.delete(id);
  }

  async logs(id: string, opts: { tail?: number }): Promise<string> {
    const c = await this.must(id);
    if (opts.tail !== undefined && opts.tail <= 0) return '';
    const buf = (await this.call('logs', () =>
      c.logs({ stdout: true, stderr: true, follow: false, ...(opts.tail === undefined ? {} : { tail: opts.tail }) }),
    ).catch((err: unknown) => {
      if (statusOf(err) === 404) throw new UnknownPodError(id);
      throw err;
    })) as unknown as Buffer;
    return demux(buf);
  }

  async *followLogs(id: string, opts: { tail?: number }, signal: AbortSignal): AsyncIterable<string> {
    let c = await this.must(id);
    let tail: number | undefined = opts.tail;
    let since: string | undefined;
    while (!signal.aborted) {
      const raw = (await this.call('logs', () =>
        c.logs({
          stdout: true,
          stderr: true,
          follow: true,
          ...(since !== undefined ? { since: since as unknown as number } : tail === undefined ? {} : { tail }),
        }),
      )) as unknown as Readable;
      const out = new PassThrough();
      this.docker.modem.demuxStream(raw, out, out);
      const onAbort = () => raw.destroy();
      signal.addEventListener('abort', onAbort);
      raw.on('end', () => out.end());
      raw.on('close', () => out.end());
      raw.on('error', () => out.end());
      const decoder = new StringDecoder('utf8');
      try {
        for await (const chunk of out) {
          const text = decoder.write(chunk as Buffer);
          if (text.length > 0) yield text;
        }
        const rest = decoder.end();
        if (rest.length > 0) yield rest;
      } finally {
        signal.removeEventListener('abort', onAbort);
        raw.destroy();
      }
      if (signal.aborted) return;
      // The container stopped: follow its next run, from where this one ended, until it is removed.
      since = (Date.now() / 1000).toFixed(9);
      tail = undefined;
      for (;;) {
        if (signal.aborted) return;
        const info = await this.inspectContainer(id).catch(() => undefined);
        if (info === undefined) return;
        if (info.State.Running) {
          c = this.docker.getContainer(info.Id);
          break;
        }
        await sleep(500, signal);
      }
    }
  }

  async stats(id: string): Promise<{ cpuPercent: number; memoryMiB: number } | undefined> {
    const info = await this.inspectContainer(id);
    if (info === undefined || !info.State.Running || info.State.Paused) return undefined;
    const s = (await this.call('stats', () => this.docker.getContainer(info.Id).stats({ stream: false }))) as unknown as DockerStats;
    const sample = { ...computeStats(s), at: new Date().toISOString() };
    const h = this.history.get(id) ?? [];
    h.push(sample);
    if (h.length > this.historySize) h.splice(0, h.length - this.historySize);
    this.history.set(id, h);
    return { cpuPercent: sample.cpuPercent, memoryMiB: sample.memoryMiB };
  }

  /** The last samples `stats` took of a pod, oldest first. */
  statsHistory(id: string): StatsSample[] {
    return [...(this.history.get(id) ?? [])];
  }

  async list(): Promise<RuntimePodState[]> {
    const list = await this.call('list containers', () =>
      this.docker.listContainers({ all: true, filters: { label: [`${LABEL_NODE}=${this.nodeId}`, LABEL_POD] } }),
    );
    const out: RuntimePodState[] = [];
    for (const c of list) {
      const podId = c.Labels[LABEL_POD];
      if (podId === undefined) continue;
      this.containers.set(podId, c.Id);
      const exit = /Exited \((-?\d+)\)/.exec(c.Status);
      out.push({ id: podId, state: stateOf(c.State), containerId: c.Id, ...(exit ? { exitCode: Number(exit[1]) } : {}) });
    }
    return out;
  }

  async inspect(id: string): Promise<RuntimePodState | undefined> {
    const info = await this.inspectContainer(id);
    if (info === undefined) return undefined;
    const state = info.State.Paused ? 'paused' : stateOf(info.State.Status);
    return {
      id,
      state,
      containerId: info.Id,
      ...(state === 'exited' ? { exitCode: info.State.ExitCode } : {}),
      ...(info.State.Running && info.State.Pid > 0 ? { pid: info.State.Pid } : {}),
    };
  }

  onExit(listener: ExitListener): void {
    this.exitListeners.push(listener);
    if (this.events === undefined && this.reconnectTimer === undefined) void this.watchEvents(0);
  }

  /**
   * Adopts what a previous agent instance left: containers keep running (no
   * restart, no duplicate); the reconciler removes those of pods no longer
   * bound here. Waits for the engine while it is unavailable.
   */
  async recover(): Promise<string[]> {
    for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
      try {
        const pods = await this.list();
        const running = pods.filter((p) => p.state === 'running' || p.state === 'paused').length;
        if (pods.length > 0) this.opts.log?.info({ containers: pods.length, running }, 'adopting the containers of a previous agent instance');
        return pods.map((p) => p.id);
      } catch (err) {
        if (!(err instanceof RuntimeUnavailableError) || this.closed) throw err;
        this.opts.log?.warn({ err: err.message, retryInMs: delay }, 'Docker engine unavailable; waiting for it');
        await sleep(delay);
      }
    }
  }

  /** Stops watching the engine's events. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.events?.destroy();
  }

  private async watchEvents(attempt: number): Promise<void> {
    if (this.closed) return;
    delete this.reconnectTimer;
    const retry = () => {
      if (this.closed || this.reconnectTimer !== undefined) return;
      delete this.events;
      const delay = Math.min(200 * 2 ** attempt, 5000);
      this.reconnectTimer = setTimeout(() => void this.watchEvents(Math.min(attempt + 1, 5)), delay);
      this.reconnectTimer.unref();
    };
    let stream: Readable;
    try {
      stream = (await this.docker.getEvents({
        ...(this.eventsSince === undefined ? {} : { since: this.eventsSince }),
        filters: { type: ['container'], event: ['die'], label: [`${LABEL_NODE}=${this.nodeId}`, LABEL_POD] },
      })) as unknown as Readable;
    } catch (err) {
      this.opts.log?.debug({ err: String(err) }, 'cannot watch Docker events; retrying');
      return retry();
    }
    this.events = stream;
    attempt = 0;
    // Events while the stream was down: ask again from the last one seen (a repeated exit only re-queues a sync).
    this.eventsSince ??= Math.floor(Date.now() / 1000);
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.length > 0) this.onEvent(line);
      }
    });
    stream.on('error', () => undefined);
    stream.on('close', () => {
      if (this.events === stream) retry();
    });
    stream.on('end', () => {
      if (this.events === stream) retry();
    });
  }

  private onEvent(line: string): void {
    let ev: { status?: string; Action?: string; time?: number; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      return;
    }
    if (typeof ev.time === 'number') this.eventsSince = ev.time;
    if ((ev.Action ?? ev.status) !== 'die') return;
    const podId = ev.Actor?.Attributes?.[LABEL_POD];
    if (podId === undefined) return;
    const code = Number(ev.Actor?.Attributes?.exitCode ?? 0);
    for (const l of this.exitListeners) l(podId, code);
  }
}

interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; stats?: Record<string, number> };
}

/** CPU % and memory as `docker stats` computes them (CPU: container delta over system delta, times online CPUs). */
export function computeStats(s: DockerStats): { cpuPercent: number; memoryMiB: number } {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 1;
  const cpuPercent = cpuDelta > 0 && sysDelta > 0 ? (cpuDelta / sysDelta) * cpus * 100 : 0;
  const st = s.memory_stats?.stats ?? {};
  // docker CLI: usage minus page cache (cgroup v1 total_inactive_file, v2 inactive_file).
  const cache = st.total_inactive_file ?? st.inactive_file ?? st.cache ?? 0;
  const used = Math.max(0, (s.memory_stats?.usage ?? 0) - cache);
  return { cpuPercent: Math.round(cpuPercent * 10) / 10, memoryMiB: Math.round((used / (1024 * 1024)) * 10) / 10 };
}

function stateOf(status: string): RuntimePodState['state'] {
  switch (status) {
    case 'created':
      return 'created';
    case 'running':
    case 'restarting':
      return 'running';
    case 'paused':
      return 'paused';
    default:
      return 'exited'; // exited, dead, removing
  }
}

/** What makes a container stale: a stopped one with another spec is replaced on create. */
function specHash(spec: PodSpecForRuntime): string {
  const env = Object.entries(spec.env ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  return createHash('sha256')
    .update(JSON.stringify([spec.image, spec.command ?? null, env, spec.cpu, spec.memoryMiB]))
    .digest('hex')
    .slice(0, 16);
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

function ignoreStatus(...codes: number[]) {
  return (err: unknown): void => {
    if (!codes.includes(statusOf(err) ?? -1)) throw err;
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}
