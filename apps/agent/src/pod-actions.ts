import type { Logger } from 'pino';
import { canTransition, FORCE_STOP_MS, isBerthError, type PodPhase, type PodRecord } from '@berth/core';
import type { EventRecorder, PodRepository, Versioned } from '@berth/store';
import { nextStatus, readiness, runningPatch, type PhaseWrite, type PodAction, type PodEvent, type PodMemory } from './decide-pod.js';
import { freePort } from './free-port.js';
import type { HealthProber } from './health-prober.js';
import { phasePath } from './phase-path.js';
import { PodCreateError, UnknownPodError, type PodSpecForRuntime, type Runtime } from './runtime.js';

/** One node of this agent process, as the pod reconciler drives it. */
export interface ReconcilerNode {
  id: string;
  name: string;
  runtime: Runtime;
  /** Records events with the node's name as their source. */
  events: EventRecorder;
}

/** A pod this agent runs: what it remembers (lost on restart) and the node it runs on. */
export interface LocalPod extends PodMemory {
  id: string;
  node: ReconcilerNode;
}

type Cur = Versioned<PodRecord>;
type LaunchAction = Extract<PodAction, { kind: 'launch' }>;

/** What the executor needs from the reconciler around it. */
export interface PodActionsOptions {
  repo: PodRepository;
  log: Logger;
  prober: HealthProber;
  /** Grace between SIGTERM and SIGKILL when a pod is stopped. */
  stopTimeoutMs: number;
  /** Syncs the pod again in `ms` (0: once the current sync ends). */
  requeue: (podId: string, ms: number) => void;
  /** The pod's record was written at `revision`: the next sync waits for the cache to show it. */
  wrote: (podId: string, revision: number) => void;
  /** The pod is no longer run here: drop what the agent remembers about it. */
  forget: (local: LocalPod) => void;
  /** False once this agent stopped acting for the node (another agent took it over, it was deleted, or it is fenced). */
  acting: (node: ReconcilerNode) => boolean;
}

const FINISHED: ReadonlySet<PodPhase> = new Set<PodPhase>(['Stopped', 'Succeeded', 'Failed']);
const now = () => new Date().toISOString();

/**
 * Carries out a `PodAction`: runtime calls, then status writes through the
 * pod repository (the one write path: agent field ownership, the transition
 * table, a CAS on the revision decided from). A lost CAS throws CONFLICT and
 * the reconciler decides again from the newer record.
 */
export class PodActions {
  constructor(private readonly opts: PodActionsOptions) {}

  private get log(): Logger {
    return this.opts.log;
  }

  /** Executes `action` for the pod `cur` on `local.node`. */
  async execute(action: PodAction, cur: Cur, local: LocalPod): Promise<void> {
    const { node } = local;
    // Probes run only while the pod is to keep running; every other step stops, pauses or replaces the container.
    if (action.kind !== 'running') this.clearProbe(local);
    switch (action.kind) {
      case 'none':
        return;
      case 'requeue-after':
        return this.opts.requeue(local.id, action.ms);
      case 'launch':
        return this.launch(cur, local, action);
      case 'restart': {
        if (cur.value.status.phase !== 'Starting') {
          cur = await this.write(cur, local, { to: 'Starting', patch: { reason: action.reason, message: action.message, restarts: action.restarts } });
        }
        await this.stopContainer(cur.value, local, action.reason.toLowerCase());
        await this.launch(cur, local, { kind: 'launch', restarts: action.restarts, fresh: false, restarted: true, reason: action.reason, message: action.message });
        return this.event(local, cur.value, action.event);
      }
      case 'back-off':
        await this.write(cur, local, action.write);
        local.crashes = action.crashes;
        local.restartAt = Date.now() + action.delayMs;
        await this.event(local, cur.value, action.event);
        return this.opts.requeue(local.id, action.delayMs);
      case 'write':
        if (action.remove) await node.runtime.remove(local.id);
        await this.write(cur, local, action);
        this.settle(local, action.to);
        return this.event(local, cur.value, action.event);
      case 'stop-then-write': {
        if (action.first !== undefined) cur = await this.write(cur, local, action.first);
        const exitCode = await this.stopContainer(cur.value, local, action.why);
        if (action.remove) await node.runtime.remove(local.id);
        await this.write(cur, local, { to: action.then.to, patch: { ...action.then.patch, finishedAt: now(), exitCode } });
        this.settle(local, action.then.to);
        return this.event(local, cur.value, action.event);
      }
      case 'stop':
        await this.stopContainer(cur.value, local, action.why);
        return this.opts.requeue(local.id, 0);
      case 'pause':
        if (action.runtime) await node.runtime.pause(local.id);
        if (action.write !== undefined) await this.write(cur, local, action.write);
        return;
      case 'running': {
        if (action.resume) await node.runtime.resume(local.id);
        const usage = local.usage;
        if (action.write !== undefined) {
          cur = await this.write(cur, local, action.write);
          if (action.write.patch.usage !== undefined && local.usage === usage) delete local.usage;
        }
        local.hostPort ??= cur.value.status.hostPort;
        return this.armHealth(cur.value, local);
      }
      case 'delete':
        return this.deletePod(cur, local, action.stopFirst);
    }
  }

  /** The pod is no longer this node's: stop and remove its container without writing its record. */
  async teardown(local: LocalPod, why: string): Promise<void> {
    const { runtime } = local.node;
    this.clearProbe(local);
    try {
      const { forced } = await runtime.stop(local.id, this.opts.stopTimeoutMs);
      if (forced) await this.event(local, { id: local.id, name: local.id }, { type: 'Warning', reason: 'ForcedKill', message: `did not exit within the grace (${why}); killed` });
    } catch (err) {
      if (!(err instanceof UnknownPodError)) throw err;
    }
    await runtime.remove(local.id);
    this.opts.forget(local);
    this.log.info({ pod: local.id, node: local.node.name, why }, 'pod removed from this node');
  }

  /**
   * A pod its node's fence killed is still bound here once etcd answers
   * again: its status says why it stopped (`Fenced`, counted as a restart)
   * and it starts again at once, without a crash-loop back-off (the exited
   * container is started again by the next sync, through the usual
   * compare-and-swap of Starting).
   */
  async fenced(cur: Cur, local: LocalPod, message: string): Promise<Cur> {
    const exitCode = (await local.node.runtime.inspect(local.id))?.exitCode;
    const written = await this.write(cur, local, {
      to: 'Starting',
      patch: { reason: 'Fenced', message, restarts: cur.value.status.restarts + 1, finishedAt: now(), ...(exitCode === undefined ? {} : { exitCode }) },
    });
    local.restartAt = Date.now();
    await this.event(local, cur.value, { type: 'Warning', reason: 'Fenced', message });
    return written;
  }

  /**
   * Creates (if needed) and starts the container: Starting, then Running
   * with a fresh startedAt. A pod its runtime can never create (no command,
   * an image that cannot be pulled) fails with CreateFailed instead of being
   * retried forever.
   */
  private async launch(cur: Cur, local: LocalPod, a: LaunchAction): Promise<void> {
    const pod = cur.value;
    const { runtime } = local.node;
    const hostPort = await this.hostPortFor(pod, local, a.fresh);
    // Always one compare-and-swap before the container starts, from every phase a launch starts from, even
    // Starting (a crash-loop restart): a record the leader has moved on since (unbound, bound elsewhere, evicted)
    // stops it here.
    cur = await this.write(cur, local, { to: 'Starting', patch: { reason: a.reason, message: a.message, restarts: a.restarts, hostPort, restartHandled: pod.restartRequestedAt } });
    if (!this.opts.acting(local.node)) return;
    try {
      await runtime.create(runtimeSpec(pod, hostPort));
    } catch (err) {
      if (!isBerthError(err, 'VALIDATION_FAILED') && !(err instanceof PodCreateError)) throw err;
      await this.write(cur, local, { to: 'Failed', patch: { reason: 'CreateFailed', message: err.message, finishedAt: now() } });
      return this.event(local, pod, { type: 'Warning', reason: 'Failed', message: `cannot create: ${err.message}` });
    }
    await runtime.start(pod.id);
    if (!this.opts.acting(local.node)) {
      // Fenced (or given up) while it was starting: it must not outlive this moment.
      await runtime.kill(pod.id, FORCE_STOP_MS);
      return;
    }
    local.lastStart = Date.now();
    delete local.restartAt;
    delete local.unhealthy;
    delete local.ready;
    local.restartApplied = pod.restartRequestedAt;
    // Ready with this write when there is nothing to probe; else once the first probe passes.
    const patch = runningPatch(a.restarts, a.restarted ? 'Restarted' : 'Started', local.lastStart, hostPort, readiness(pod, local) ?? false, pod.restartRequestedAt);
    cur = await this.write(cur, local, { to: 'Running', patch });
    if (a.restarted) {
      this.log.info({ pod: pod.name, restarts: a.restarts, reason: a.reason }, 'pod started again');
      await this.event(local, pod, { type: 'Normal', reason: 'Restarted', message: `started again (restart ${a.restarts})${a.message ? `: ${a.message}` : ''}` });
    }
    this.armHealth(cur.value, local);
  }

  /**
   * `deletionRequested`: stop and remove the container, then delete the
   * record and its name claim in one transaction guarded on the record's
   * revision (a concurrent change makes the agent decide again).
   */
  private async deletePod(cur: Cur, local: LocalPod, live: boolean): Promise<void> {
    const pod = cur.value;
    if (live) {
      if (pod.status.phase !== 'Stopping' && canTransition(pod.status.phase, 'Stopping')) {
        cur = await this.write(cur, local, { to: 'Stopping', patch: { reason: 'Deleting', message: '' } });
      }
      await this.stopContainer(pod, local, 'delete');
    }
    await local.node.runtime.remove(pod.id);
    // Forgotten only once the record is gone: a lost delete decides again with what this sync wrote.
    await this.opts.repo.delete('agent', cur, { node: local.node.id });
    this.opts.forget(local);
    this.log.info({ pod: pod.name, id: pod.id }, 'pod deleted');
    await this.event(local, pod, { type: 'Normal', reason: 'Deleted', message: 'container removed and record deleted' });
  }

  /** Stops the container (SIGTERM, SIGKILL after the grace) and returns its exit code; a forced kill is an event. */
  private async stopContainer(pod: PodRecord, local: LocalPod, why: string): Promise<number | undefined> {
    this.clearProbe(local);
    const { runtime } = local.node;
    const { forced } = await runtime.stop(pod.id, this.opts.stopTimeoutMs);
    if (forced) {
      await this.event(local, pod, { type: 'Warning', reason: 'ForcedKill', message: `did not exit within ${this.opts.stopTimeoutMs / 1000} s of SIGTERM (${why}); killed` });
    }
    return (await runtime.inspect(pod.id))?.exitCode;
  }

  /**
   * Moves the pod to `w.to` with `w.patch` applied, one write per hop of the
   * state machine when the phase is not directly reachable (e.g. Paused ->
   * Stopping -> Failed), each through the repository. Returns the record as
   * written.
   */
  private async write(cur: Cur, local: LocalPod, w: PhaseWrite): Promise<Cur> {
    // An unreachable phase is written directly, for the repository to refuse with INVALID_TRANSITION.
    for (const phase of phasePath(cur.value.status.phase, w.to) ?? [w.to]) {
      const next: PodRecord = { ...cur.value, status: nextStatus(cur.value.status, phase, w.patch) };
      const before = cur.modRevision;
      cur = await this.opts.repo.update('agent', cur, next, local.node.id);
      this.opts.wrote(local.id, cur.modRevision);
      this.log.debug({ pod: next.name, phase, reason: next.status.reason }, cur.modRevision === before ? 'pod status unchanged (compared, not written)' : 'pod status written');
    }
    return cur;
  }

  /** A pod that no longer runs has no back-off or health verdict pending. */
  private settle(local: LocalPod, phase: PodPhase): void {
    if (!FINISHED.has(phase)) return;
    delete local.restartAt;
    delete local.unhealthy;
  }

  private async event(local: LocalPod, pod: { id: string; name: string }, e: PodEvent | undefined): Promise<void> {
    if (e === undefined) return;
    try {
      await local.node.events.record({ type: e.type, reason: e.reason, message: `pod ${pod.name}: ${e.message}`, involved: { kind: 'pod', id: pod.id } });
    } catch (err) {
      this.log.warn({ err, pod: pod.name, reason: e.reason }, 'could not record event');
    }
  }

  /** The host port of a pod with ports: a new one for a fresh binding, else the one it had (stable across restarts). */
  private async hostPortFor(pod: PodRecord, local: LocalPod, fresh: boolean): Promise<number | undefined> {
    // Nothing listens in a simulated pod; thousands of them must not consume host ports.
    if ((pod.spec.ports ?? []).length === 0 || local.node.runtime.kind === 'simulated') return undefined;
    if (!fresh) local.hostPort ??= pod.status.hostPort;
    local.hostPort ??= await freePort();
    return local.hostPort;
  }

  /** Stops the pod's health check; its verdict was about a container that no longer runs as it did. */
  private clearProbe(local: LocalPod): void {
    this.opts.prober.clear(local.id);
    delete local.ready;
  }

  private armHealth(pod: PodRecord, local: LocalPod): void {
    if (pod.spec.healthCheck === undefined || local.node.runtime.kind === 'simulated') return;
    this.opts.prober.arm(pod, pod.spec.healthCheck, local.hostPort);
  }
}

function runtimeSpec(pod: PodRecord, hostPort: number | undefined): PodSpecForRuntime {
  const { spec } = pod;
  return {
    id: pod.id,
    name: pod.name,
    ...(spec.image === undefined ? {} : { image: spec.image }),
    ...(spec.command === undefined ? {} : { command: spec.command }),
    // PORT last: status.hostPort must be what the pod really got.
    env: { ...spec.env, ...(hostPort === undefined ? {} : { PORT: String(hostPort) }) },
    cpu: spec.cpu,
    memoryMiB: spec.memoryMiB,
    ...(spec.capabilities === undefined ? {} : { capabilities: spec.capabilities }),
    ...(spec.readOnlyRootFilesystem === undefined ? {} : { readOnlyRootFilesystem: spec.readOnlyRootFilesystem }),
  };
}
