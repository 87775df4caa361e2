import type { NodeUsage, Resources, RuntimeKind } from '@berth/core';

/** What a runtime needs to run one pod (the pods issue extends this). */
export interface PodSpecForRuntime {
  id: string;
  name: string;
  image?: string;
  command?: string[];
  env?: Record<string, string>;
  cpu: number;
  memoryMiB: number;
}

/** State of one pod as the runtime sees it. */
export interface RuntimePodState {
  id: string;
  state: 'created' | 'running' | 'paused' | 'exited';
  exitCode?: number;
}

/**
 * How an agent runs pods (SPEC.md section 6). One interface for docker,
 * process and simulated, so the agent's reconcile loop does not care which.
 */
export interface Runtime {
  readonly kind: RuntimeKind;
  create(spec: PodSpecForRuntime): Promise<void>;
  start(id: string): Promise<void>;
  stop(id: string, timeoutMs: number): Promise<{ forced: boolean }>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  remove(id: string): Promise<void>;
  logs(id: string, opts: { tail?: number }): Promise<string>;
  stats(id: string): Promise<{ cpuPercent: number; memoryMiB: number } | undefined>;
  /** Every pod the runtime holds. */
  list(): Promise<RuntimePodState[]>;
  /** Node usage to report, for runtimes that do not run on the host's resources. */
  usage?(capacity: Resources): NodeUsage;
}

/** Thrown for an operation on a pod the runtime does not hold. */
export class UnknownPodError extends Error {
  override readonly name = 'UnknownPodError';
  constructor(readonly podId: string) {
    super(`no pod ${podId} in this runtime`);
  }
}

/**
 * The classroom runtime of seeds/003: a node keeps the ids of its pods in an
 * in-memory array and "runs" them instantly. Usage is what its pods request.
 */
export class SimulatedRuntime implements Runtime {
  readonly kind = 'simulated' as const;
  /** The node's pod id array, in creation order. */
  readonly podIds: string[] = [];
  private readonly pods = new Map<string, { spec: PodSpecForRuntime; state: RuntimePodState['state']; log: string[] }>();

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
    pod.log.push(`${new Date().toISOString()} started`);
  }

  async stop(id: string): Promise<{ forced: boolean }> {
    const pod = this.get(id);
    pod.state = 'exited';
    pod.log.push(`${new Date().toISOString()} stopped`);
    return { forced: false };
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
  }

  async logs(id: string, opts: { tail?: number }): Promise<string> {
    const lines = this.get(id).log;
    return (opts.tail === undefined ? lines : lines.slice(-opts.tail)).join('\n') + '\n';
  }

  async stats(id: string): Promise<{ cpuPercent: number; memoryMiB: number } | undefined> {
    const pod = this.pods.get(id);
    if (pod === undefined || pod.state !== 'running') return undefined;
    return { cpuPercent: pod.spec.cpu * 100, memoryMiB: pod.spec.memoryMiB };
  }

  async list(): Promise<RuntimePodState[]> {
    return this.podIds.map((id) => ({ id, state: this.get(id).state }));
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
