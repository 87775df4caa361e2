import type { LinuxCapability, NodeIsolation, NodeUsage, Resources, RuntimeKind } from '@berth/core';

/** What a runtime needs to run one pod. */
export interface PodSpecForRuntime {
  id: string;
  name: string;
  image?: string;
  command?: string[];
  /** The pod's environment, including the agent's PORT when it allocated one. */
  env?: Record<string, string>;
  cpu: number;
  memoryMiB: number;
  /** Capabilities a container keeps (docker). */
  capabilities?: LinuxCapability[];
  /** Mount a container's root file system read-only (docker). */
  readOnlyRootFilesystem?: boolean;
}

/** State of one pod as the runtime sees it. */
export interface RuntimePodState {
  id: string;
  state: 'created' | 'running' | 'paused' | 'exited';
  /** Exit code of the last run, once it exited (128 + signal when killed by one). */
  exitCode?: number;
  /** The last run was ended by the kernel's OOM killer for exceeding the pod's memory limit. */
  oomKilled?: boolean;
  /** Host process id of the pod's main process (process runtime), while it runs. */
  pid?: number;
  /** The pod's container (docker runtime). */
  containerId?: string;
}

/** Called when a pod's main process ends, whether the agent stopped it or it exited on its own. */
export type ExitListener = (podId: string, exitCode: number) => void;

/**
 * How an agent runs pods. One interface for docker,
 * process and simulated, so the agent's reconcile loop does not care which.
 * Every operation is idempotent, so a reconciler that retries after a crash
 * or a conflict can repeat it safely.
 */
export interface Runtime {
  readonly kind: RuntimeKind;
  create(spec: PodSpecForRuntime): Promise<void>;
  start(id: string): Promise<void>;
  stop(id: string, timeoutMs: number): Promise<{ forced: boolean }>;
  /**
   * Kills the pod at once, with no grace (SIGKILL: its node is fenced), and
   * waits up to `waitMs` for it to end: false if it had not by then.
   */
  kill(id: string, waitMs: number): Promise<boolean>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  remove(id: string): Promise<void>;
  logs(id: string, opts: { tail?: number }): Promise<string>;
  /** The last `tail` lines, then new output as it is written, until `signal` aborts or the pod is removed. */
  followLogs(id: string, opts: { tail?: number }, signal: AbortSignal): AsyncIterable<string>;
  stats(id: string): Promise<{ cpuPercent: number; memoryMiB: number } | undefined>;
  /** Every pod the runtime holds. */
  list(): Promise<RuntimePodState[]>;
  /** One pod, or undefined when the runtime does not hold it. */
  inspect(id: string): Promise<RuntimePodState | undefined>;
  /** Registers a listener for pod exits (a runtime whose pods never exit may never call it). */
  onExit(listener: ExitListener): void;
  /**
   * After an agent restart: ends whatever a previous agent instance left
   * running (so a pod is never run twice) and returns the ids it has
   * leftovers of (their logs are kept until `remove`).
   */
  recover?(): Promise<string[]>;
  /** Whether the runtime can run pods right now (e.g. the Docker engine answers); reported with each heartbeat. */
  health?(): Promise<RuntimeHealth>;
  /** The agent stops: release what the runtime holds for the node (event streams, cgroups). */
  close?(): void;
  /** How the runtime isolates pods (the node record's `isolation`). */
  isolationReport?(): NodeIsolation | undefined;
  /** Node usage to report, for runtimes that do not run on the host's resources. */
  usage?(capacity: Resources): NodeUsage;
}

/** A runtime's own readiness, shown as the node's RuntimeReady condition. */
export interface RuntimeHealth {
  ready: boolean;
  message: string;
}

/** Thrown for an operation on a pod the runtime does not hold. */
export class UnknownPodError extends Error {
  override readonly name = 'UnknownPodError';
  constructor(readonly podId: string) {
    super(`no pod ${podId} in this runtime`);
  }
}

/**
 * Thrown when a pod can never be created as specified (e.g. its image cannot
 * be pulled after retries): the pod fails with reason CreateFailed and this
 * message (which carries the engine's own text) instead of being retried.
 */
export class PodCreateError extends Error {
  override readonly name = 'PodCreateError';
}

/**
 * Thrown when the runtime's engine is away (Docker socket closed, dockerd
 * stopped). Transient: the reconciler retries with back-off and never fails a
 * pod for it; everything resumes when the engine returns.
 */
export class RuntimeUnavailableError extends Error {
  override readonly name = 'RuntimeUnavailableError';
  readonly transient = true;
}

/** True for errors worth retrying as they are (the runtime's engine is away). */
export function isTransient(err: unknown): boolean {
  return err instanceof RuntimeUnavailableError;
}

/**
 * The simulated runtime (for scale runs): a node keeps the ids of its pods in an
 * in-memory array and "runs" them instantly. Usage is what its pods request.
 */
export class SimulatedRuntime implements Runtime {
  readonly kind = 'simulated' as const;
  /** The node's pod id array, in creation order. */
  readonly podIds: string[] = [];
  private readonly pods = new Map<string, { spec: PodSpecForRuntime; state: RuntimePodState['state']; log: string[] }>();
  /** Followers of each pod's log, woken when a line is added or the pod removed. */
  private readonly followers = new Map<string, Set<() => void>>();

  private get(id: string) {
    const pod = this.pods.get(id);
    if (pod === undefined) throw new UnknownPodError(id);
    return pod;
  }

  async create(spec: PodSpecForRuntime): Promise<void> {
    if (this.pods.has(spec.id)) return;
    this.pods.set(spec.id, { spec, state: 'created', log: [`${new Date().toISOString()} created ${spec.name}`] });
    this.podIds.push(spec.id);
  }

  async start(id: string): Promise<void> {
    const pod = this.get(id);
    pod.state = 'running';
    this.append(id, 'started');
  }

  async stop(id: string): Promise<{ forced: boolean }> {
    const pod = this.get(id);
    pod.state = 'exited';
    this.append(id, 'stopped');
    return { forced: false };
  }

  async kill(id: string): Promise<boolean> {
    const pod = this.pods.get(id);
    if (pod !== undefined && (pod.state === 'running' || pod.state === 'paused')) {
      pod.state = 'exited';
      this.append(id, 'killed');
    }
    return true;
  }

  async pause(id: string): Promise<void> {
    this.get(id).state = 'paused';
  }

  async resume(id: string): Promise<void> {
    this.get(id).state = 'running';
  }

  async remove(id: string): Promise<void> {
    this.pods.delete(id);
    const i = this.podIds.indexOf(id);
    if (i >= 0) this.podIds.splice(i, 1);
    this.wake(id);
  }

  async logs(id: string, opts: { tail?: number }): Promise<string> {
    const lines = tailOf(this.get(id).log, opts.tail);
    return lines.length === 0 ? '' : lines.join('\n') + '\n';
  }

  async *followLogs(id: string, opts: { tail?: number }, signal: AbortSignal): AsyncIterable<string> {
    let sent = this.get(id).log.length;
    const first = await this.logs(id, opts);
    if (first.length > 0) yield first;
    let wake: (() => void) | undefined;
    const listener = () => wake?.();
    const set = this.followers.get(id) ?? new Set();
    this.followers.set(id, set);
    set.add(listener);
    signal.addEventListener('abort', listener);
    try {
      for (;;) {
        const pod = this.pods.get(id);
        if (signal.aborted || pod === undefined) return;
        if (pod.log.length > sent) {
          const lines = pod.log.slice(sent);
          sent = pod.log.length;
          yield lines.join('\n') + '\n';
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      set.delete(listener);
      if (set.size === 0) this.followers.delete(id);
      signal.removeEventListener('abort', listener);
    }
  }

  async stats(id: string): Promise<{ cpuPercent: number; memoryMiB: number } | undefined> {
    const pod = this.pods.get(id);
    if (pod === undefined || pod.state !== 'running') return undefined;
    return { cpuPercent: pod.spec.cpu * 100, memoryMiB: pod.spec.memoryMiB };
  }

  async list(): Promise<RuntimePodState[]> {
    return this.podIds.map((id) => ({ id, state: this.get(id).state }));
  }

  async inspect(id: string): Promise<RuntimePodState | undefined> {
    const pod = this.pods.get(id);
    return pod === undefined ? undefined : { id, state: pod.state };
  }

  /** Simulated pods never exit on their own; stops are reported by the stop call itself. */
  onExit(): void {}

  private append(id: string, line: string): void {
    this.get(id).log.push(`${new Date().toISOString()} ${line}`);
    this.wake(id);
  }

  private wake(id: string): void {
    for (const f of this.followers.get(id) ?? []) f();
  }

  usage(capacity: Resources): NodeUsage {
    let cpu = 0;
    let mem = 0;
    for (const p of this.pods.values()) {
      if (p.state !== 'running') continue;
      cpu += p.spec.cpu;
      mem += p.spec.memoryMiB;
    }
    return { cpuPercent: capacity.cpu > 0 ? Math.round((cpu / capacity.cpu) * 1000) / 10 : 0, memoryMiB: mem, load1: cpu };
  }
}

/** The last `n` items (all when n is undefined; none when 0, which `slice(-0)` would get wrong). */
export function tailOf<T>(items: T[], n: number | undefined): T[] {
  if (n === undefined) return items;
  return n <= 0 ? [] : items.slice(-n);
}
