import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import type { NodeIsolation } from '@berth/core';
import { containerOptions, LABEL_NODE, LABEL_POD, LABEL_SPEC, specHash, stateOf } from './docker/containers.js';
import { callEngine, ENGINE_CALL_TIMEOUT_MS, engineAddress, engineMessage, ignoreStatus, statusOf } from './docker/engine-errors.js';
import { EngineEvents } from './docker/events.js';
import { ensureImage } from './docker/images.js';
import { followLogs, readLogs } from './docker/logs.js';
import { computeStats, type DockerStats } from './docker/stats.js';
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
  /** Most processes one container may have (default DEFAULT_PIDS_LIMIT). */
  pidsLimit?: number;
  /** How long one engine call may take before it is aborted (default ENGINE_CALL_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

/**
 * False for a container the engine will never start again: Dead (a removal
 * or a start that failed as the engine stopped; after a restart the engine
 * marks it so) or being removed. Starting one answers 409 "marked for
 * removal" however often it is tried, so it is replaced instead.
 */
function startable(info: Docker.ContainerInspectInfo): boolean {
  return !info.State.Dead && info.State.Status !== 'removing' && info.State.Status !== 'dead';
}

/**
 * Pods as Docker containers, through dockerode against the engine in
 * DOCKER_HOST: one container per pod (see `docker/containers.ts` for its
 * name, labels and limits). Containers outlive the agent: `recover` adopts
 * them after a restart. Exits come from the engine's event stream
 * (`docker/events.ts`), which also tells log followers when a run ends and
 * the next begins. When the engine is away every call throws
 * RuntimeUnavailableError, which the reconciler treats as transient.
 */
export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const;
  readonly docker: Docker;
  /** pod id -> container id, a cache of the label lookup. */
  private readonly containers = new Map<string, string>();
  private readonly events: EngineEvents;
  private readonly pullAttempts: number;
  private readonly pullBackoffMs: number;
  private closed = false;

  constructor(private readonly opts: DockerRuntimeOptions) {
    this.docker = opts.docker ?? new Docker();
    this.pullAttempts = opts.pullAttempts ?? 3;
    this.pullBackoffMs = opts.pullBackoffMs ?? 500;
    this.events = new EngineEvents(this.docker, () => this.nodeId, opts.log);
  }

  /** One engine call, aborted after `--runtime-request-timeout` (plus `extraMs`, e.g. a stop's grace). */
  private call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, extraMs = 0): Promise<T> {
    return callEngine(what, fn, (this.opts.requestTimeoutMs ?? ENGINE_CALL_TIMEOUT_MS) + extraMs);
  }

  get nodeId(): string {
    return typeof this.opts.nodeId === 'function' ? this.opts.nodeId() : this.opts.nodeId;
  }

  /** Containers run as their image's user, in cgroups the engine makes (`containerOptions` hardens them). */
  isolationReport(): NodeIsolation {
    return { user: 'image', limits: 'docker' };
  }

  /** Pings the engine (2 s at most): the node's RuntimeReady condition. */
  async health(): Promise<RuntimeHealth> {
    const where = engineAddress();
    try {
      await Promise.race([
        this.docker.ping(),
        sleep(2000, undefined, { ref: false }).then(() => {
          throw new Error('no answer within 2 s');
        }),
      ]);
      return { ready: true, message: `Docker engine at ${where} answers` };
    } catch (err) {
      return { ready: false, message: `Docker engine at ${where} is unavailable: ${(err as Error).message}` };
    }
  }

  /** The container of a pod, or undefined. */
  private async containerId(podId: string): Promise<string | undefined> {
    const cached = this.containers.get(podId);
    if (cached !== undefined) return cached;
    const list = await this.call('list containers', (abortSignal) =>
      this.docker.listContainers({ all: true, filters: { label: [`${LABEL_POD}=${podId}`, `${LABEL_NODE}=${this.nodeId}`] }, abortSignal }),
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
        return await this.call('inspect', (abortSignal) => this.docker.getContainer(id).inspect({ abortSignal }));
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

  async create(spec: PodSpecForRuntime, replaced = false): Promise<void> {
    if (spec.image === undefined || spec.image.length === 0) throw new PodCreateError(`pod ${spec.name}: the docker runtime needs spec.image`);
    const existing = await this.inspectContainer(spec.id);
    if (existing !== undefined) {
      const live = existing.State.Running || existing.State.Paused;
      if (live || (startable(existing) && existing.Config.Labels?.[LABEL_SPEC] === specHash(spec))) return;
      // A stopped container with another spec (e.g. a new PORT), or one the engine will never start again: replace it.
      await this.remove(spec.id);
    }
    await ensureImage(this.docker, spec.image, { attempts: this.pullAttempts, backoffMs: this.pullBackoffMs, ...(this.opts.log ? { log: this.opts.log } : {}) });
    const options = containerOptions(spec, this.nodeId, this.opts.pidsLimit);
    try {
      const c = await this.call('create', (abortSignal) => this.docker.createContainer({ ...options, abortSignal }));
      this.containers.set(spec.id, c.id);
    } catch (err) {
      if (statusOf(err) === 409) {
        // Created concurrently (or a leftover with our name): use it.
        this.containers.delete(spec.id);
        const mine = await this.inspectContainer(spec.id);
        if (mine !== undefined && startable(mine)) return;
        // Ours, but being removed (the engine keeps the name until it is gone): the sync backs off and creates it then.
        if (mine !== undefined) throw new Error(`pod ${spec.name}: its previous container is still being removed; creating it again once it is gone`);
        // The name is another node's container of this pod (nodes sharing one engine, as `npm start` runs them).
        // The pod is bound here, so the leader moved it: after that node's agent acknowledged stopping it
        // (and then removed it), or after the node was declared Dead past its fence budget, by which time a
        // living agent has killed its containers. A container still there is its dead agent's orphan: remove it.
        const other = await this.call('inspect', (abortSignal) => this.docker.getContainer(options.name!).inspect({ abortSignal })).catch(() => undefined);
        if (other !== undefined && !replaced) {
          const live = other.State.Running || other.State.Paused;
          if (live) this.opts.log?.warn({ pod: spec.name, node: other.Config.Labels?.[LABEL_NODE] }, "removing another node's orphaned container of a pod now bound here (its agent is gone)");
          await this.call('remove', (abortSignal) => this.docker.getContainer(other.Id).remove({ force: live, abortSignal })).catch(() => undefined);
          return this.create(spec, true);
        }
        // A plain error: the sync backs off and tries again, unlike a PodCreateError, which fails the pod.
        throw new Error(`pod ${spec.name} still has a container on node ${other?.Config.Labels?.[LABEL_NODE] ?? '?'} of this engine; retrying once it is gone`);
      }
      if (err instanceof RuntimeUnavailableError) throw err;
      const code = statusOf(err);
      if (code !== undefined && code >= 400 && code < 500) throw new PodCreateError(`cannot create the container: ${engineMessage(err)}`, { cause: err });
      throw err;
    }
  }

  async start(id: string): Promise<void> {
    const c = await this.must(id);
    try {
      await this.call('start', (abortSignal) => c.start({ abortSignal }));
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
    if (info.State.Paused) await this.call('unpause', (abortSignal) => c.unpause({ abortSignal })).catch(ignoreStatus(409));
    const t = Math.max(0, Math.ceil(timeoutMs / 1000));
    const began = Date.now();
    await this.call('stop', (abortSignal) => c.stop({ t, abortSignal }), t * 1000).catch(ignoreStatus(304));
    const after = await this.call('inspect', (abortSignal) => c.inspect({ abortSignal }));
    // 137 = 128 + SIGKILL: the engine killed it after the grace (unless the OOM killer did, or it exited before the grace ran out).
    const forced = after.State.ExitCode === 137 && !after.State.OOMKilled && Date.now() - began >= t * 1000 - 250;
    return { forced };
  }

  async kill(id: string, waitMs: number): Promise<boolean> {
    const info = await this.inspectContainer(id);
    if (info === undefined || (!info.State.Running && !info.State.Paused)) return true;
    const c = this.docker.getContainer(info.Id);
    const ended = c.wait({ condition: 'not-running' }).then(
      () => true,
      async () => !((await this.inspectContainer(id).catch(() => undefined))?.State.Running ?? false),
    );
    await this.call('kill', (abortSignal) => c.kill({ signal: 'SIGKILL', abortSignal })).catch(ignoreStatus(404, 409));
    // A frozen (paused) container takes the signal once thawed.
    if (info.State.Paused) await this.call('unpause', (abortSignal) => c.unpause({ abortSignal })).catch(ignoreStatus(404, 409));
    return Promise.race([ended, sleep(waitMs, false, { ref: false })]);
  }

  async pause(id: string): Promise<void> {
    const info = await this.inspectContainer(id);
    if (info === undefined) throw new UnknownPodError(id);
    if (info.State.Paused || !info.State.Running) return;
    await this.call('pause', (abortSignal) => this.docker.getContainer(info.Id).pause({ abortSignal })).catch(ignoreStatus(409));
  }

  async resume(id: string): Promise<void> {
    const info = await this.inspectContainer(id);
    if (info === undefined) throw new UnknownPodError(id);
    if (!info.State.Paused) return;
    await this.call('unpause', (abortSignal) => this.docker.getContainer(info.Id).unpause({ abortSignal })).catch(ignoreStatus(409));
  }

  async remove(id: string): Promise<void> {
    const cid = await this.containerId(id);
    if (cid === undefined) return;
    await this.call('remove', (abortSignal) => this.docker.getContainer(cid).remove({ force: true, v: true, abortSignal })).catch(ignoreStatus(404, 409));
    this.containers.delete(id);
  }

  async logs(id: string, opts: { tail?: number }): Promise<string> {
    return readLogs(await this.must(id), id, opts.tail, this.opts.requestTimeoutMs);
  }

  followLogs(id: string, opts: { tail?: number }, signal: AbortSignal): AsyncIterable<string> {
    return followLogs({ podId: id, docker: this.docker, events: this.events, inspect: () => this.inspectContainer(id) }, opts, signal);
  }

  async stats(id: string): Promise<{ cpuPercent: number; memoryMiB: number } | undefined> {
    const info = await this.inspectContainer(id);
    if (info === undefined || !info.State.Running || info.State.Paused) return undefined;
    // dockerode hands `abortSignal` on for stats too; its types leave it out.
    const s = (await this.call('stats', (abortSignal) => this.docker.getContainer(info.Id).stats({ stream: false, abortSignal } as { stream: false }))) as unknown as DockerStats;
    return computeStats(s);
  }

  async list(): Promise<RuntimePodState[]> {
    const list = await this.call('list containers', (abortSignal) =>
      this.docker.listContainers({ all: true, filters: { label: [`${LABEL_NODE}=${this.nodeId}`, LABEL_POD] }, abortSignal }),
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
      ...(state === 'exited' && info.State.OOMKilled ? { oomKilled: true } : {}),
      ...(info.State.Running && info.State.Pid > 0 ? { pid: info.State.Pid } : {}),
    };
  }

  onExit(listener: ExitListener): void {
    this.events.subscribe((ev) => {
      if (ev.action === 'die') listener(ev.podId, ev.exitCode ?? 0);
    });
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
        this.opts.log?.warn({ err, retryInMs: delay }, 'Docker engine unavailable; waiting for it');
        await sleep(delay);
      }
    }
  }

  /** Stops watching the engine's events. */
  close(): void {
    this.closed = true;
    this.events.close();
  }
}
