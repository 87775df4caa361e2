import { TERMINAL_PHASES, type BerthEvent, type PodPhase, type PodRecord, type PodStatus } from '@berth/core';
import type { RuntimePodState } from './runtime.js';

/** A status write: move the pod to `to` (hop by hop if need be) with `patch` applied. */
export interface PhaseWrite {
  to: PodPhase;
  patch: Partial<PodStatus>;
}

/** An event to record once the action it belongs to has succeeded. */
export interface PodEvent {
  type: BerthEvent['type'];
  reason: string;
  message: string;
}

/**
 * What the agent does next for one pod, as decided by `decidePod`. The
 * reconciler executes exactly one per sync; a write comes back through the
 * watch and the pod is decided again, so anything further is the next sync's.
 */
export type PodAction =
  /** Nothing to do now. */
  | { kind: 'none' }
  /** Crash-loop back-off still running: look again in `ms`. */
  | { kind: 'requeue-after'; ms: number }
  /** Create and start the container (Starting, then Running); `restarts` is the count the pod ends up with. */
  | { kind: 'launch'; restarts: number; fresh: boolean; restarted: boolean; reason: string; message: string }
  /** Restart a live container: Starting (where the table allows), stop, launch again. */
  | { kind: 'restart'; restarts: number; reason: string; message: string; event?: PodEvent }
  /** The container exited and will be started again after `delayMs` (the `crashes`-th crash in a row). */
  | { kind: 'back-off'; delayMs: number; crashes: number; write: PhaseWrite; event: PodEvent }
  /** Write the status; no runtime call, except removing what is left of the container first when `remove`. */
  | { kind: 'write'; to: PodPhase; patch: Partial<PodStatus>; event?: PodEvent; remove?: true }
  /**
   * Write `first` (if any), stop the container, then write `then` with the
   * `finishedAt` and `exitCode` of the stop (known only once it ended).
   */
  | { kind: 'stop-then-write'; why: string; first?: PhaseWrite; then: PhaseWrite; event?: PodEvent; remove?: true }
  /** Stop a container that should not run, without writing; the pod is decided again after. */
  | { kind: 'stop'; why: string }
  /** Pause the container (`runtime`) and/or write Paused. */
  | { kind: 'pause'; runtime: boolean; write?: PhaseWrite }
  /** Keep the container running: resume it if paused, write what is due, keep the health check armed. */
  | { kind: 'running'; resume: boolean; write?: PhaseWrite }
  /** Stop (if live) and remove the container, then delete the record and its name claim. */
  | { kind: 'delete'; stopFirst: boolean };

/** What the agent remembers about a pod it runs; lost with the agent, so decisions fall back on the record. */
export interface PodMemory {
  /** Host port allocated for the pod (stable across restarts on this node). */
  hostPort?: number;
  /** The last `restartRequestedAt` acted on. */
  restartApplied?: string;
  /** Consecutive crashes, for the back-off. */
  crashes: number;
  /** When the container last started (ms). */
  lastStart?: number;
  /** While crash-looping: when the container may start again (ms). */
  restartAt?: number;
  /** Why the health check gave up on the container, until a sync acted on it. */
  unhealthy?: string;
  /** A usage sample that differs notably from `status.usage`, to be written. */
  usage?: NonNullable<PodStatus['usage']>;
  /** The health check's latest verdict on the running container; unset until its first probe answers. */
  ready?: boolean;
  /** The node's runtime runs nothing to probe (simulated): a health check counts as passing. */
  noProbes?: true;
}

/** Agent flags the decision depends on. */
export interface DecideLimits {
  /** First crash-loop delay; doubles per consecutive crash. */
  restartBackoffInitialMs: number;
  /** Cap of the crash-loop back-off (`--restart-backoff-max`). */
  restartBackoffMaxMs: number;
  /** Grace between SIGTERM and SIGKILL (`--stop-timeout`), shown in the Stopping message. */
  stopTimeoutMs: number;
}

/** A container that ran at least this long (or the back-off cap, if longer) starts a new crash count. */
export const CRASH_RESET_MS = 10_000;

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Decides the next step for a pod bound to one of this agent's nodes, from
 * its record (what is wanted and what was last written), what the runtime
 * holds (`actual`, undefined when nothing) and what the agent remembers.
 * Pure: no I/O and no clock (`now` is ms since the epoch), so every branch
 * is a row of a table test.
 */
export function decidePod(pod: PodRecord, actual: RuntimePodState | undefined, local: Readonly<PodMemory>, now: number, limits: DecideLimits): PodAction {
  const { phase, restarts } = pod.status;
  const live = actual?.state === 'running' || actual?.state === 'paused';

  if (pod.deletionRequested !== undefined) return { kind: 'delete', stopFirst: live };

  // A stop that began is finished whatever is wanted now: Stopping only leads to Stopped.
  if (phase === 'Stopping') {
    const then = { to: 'Stopped', patch: { reason: 'Stopped', message: '' } } as const;
    if (live) return { kind: 'stop-then-write', why: 'stop', then };
    return { kind: 'write', to: 'Stopped', patch: { ...then.patch, finishedAt: iso(now), exitCode: actual?.exitCode } };
  }

  // The leader evicts the pod (drain, preemption, a node that shrank): stop it and say so (Stopped); it then
  // unbinds it and releases its reservation. Nothing starts again here, whatever is wanted.
  if (pod.status.eviction !== undefined) return evicted(pod, live, now, limits);

  if (phase === 'Scheduled') {
    if (pod.desired === 'stopped') return { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: 'stopped before it started', finishedAt: iso(now) } };
    return { kind: 'launch', restarts, fresh: true, restarted: false, reason: 'Starting', message: '' };
  }

  if (phase === 'Stopped' || phase === 'Succeeded' || phase === 'Failed') {
    if (live) return { kind: 'stop', why: 'a stale container' }; // never expected; never leave one running
    // A finished pod holds no reservation on this node: running it again is the leader's (it unbinds the pod).
    if (phase !== 'Stopped' || pod.desired === 'stopped') return { kind: 'none' };
    const restart = restartPending(pod, local);
    return { kind: 'launch', restarts: restarts + (restart ? 1 : 0), fresh: false, restarted: restart, reason: restart ? 'Restarting' : 'Starting', message: '' };
  }

  // Starting, Running, Paused (Pending is never decided here: the pod is not bound to this agent then).
  if (!live) {
    if (actual?.state === 'exited') return exited(pod, actual.exitCode ?? 1, actual.oomKilled === true, local, now, limits);
    if (pod.desired === 'stopped') return { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: '', finishedAt: iso(now) } };
    // The record says it runs but the runtime holds nothing: this agent restarted. Run it again.
    const lost = actual === undefined && phase !== 'Starting';
    if (lost) return { kind: 'launch', restarts: restarts + 1, fresh: false, restarted: true, reason: 'AgentRestarted', message: 'the agent restarted and no longer held the container' };
    return { kind: 'launch', restarts, fresh: false, restarted: false, reason: 'Starting', message: '' };
  }

  if (pod.desired !== 'stopped') {
    if (local.unhealthy !== undefined) {
      const event = { type: 'Warning', reason: 'Unhealthy', message: local.unhealthy } as const;
      if (pod.spec.restartPolicy === 'Never') {
        return { kind: 'stop-then-write', why: 'unhealthy', then: { to: 'Failed', patch: { reason: 'Unhealthy', message: local.unhealthy } }, event };
      }
      return { kind: 'restart', restarts: restarts + 1, reason: 'Unhealthy', message: local.unhealthy, event };
    }
    if (restartPending(pod, local)) return { kind: 'restart', restarts: restarts + 1, reason: 'Restarting', message: `restart requested at ${pod.restartRequestedAt}` };
  }
  if (pod.desired === 'stopped') {
    return {
      kind: 'stop-then-write',
      why: 'stop',
      first: { to: 'Stopping', patch: { reason: 'Stopping', message: `grace ${limits.stopTimeoutMs / 1000} s` } },
      then: { to: 'Stopped', patch: { reason: 'Stopped', message: '' } },
    };
  }
  // Started, but the write saying so was lost (a conflict, or the agent restarted and adopted the container).
  if (phase === 'Starting') {
    const patch = runningPatch(restarts, 'Started', local.lastStart ?? now, local.hostPort ?? pod.status.hostPort, readiness(pod, local) ?? false, local.restartApplied ?? pod.status.restartHandled);
    return { kind: 'running', resume: actual.state === 'paused', write: { to: 'Running', patch } };
  }
  if (pod.desired === 'paused') {
    const runtime = actual.state === 'running';
    if (!runtime && phase === 'Paused') return { kind: 'none' };
    return { kind: 'pause', runtime, ...(phase === 'Paused' ? {} : { write: { to: 'Paused', patch: { reason: 'Paused', message: '' } } }) };
  }
  // Resumed: ready only once a probe passes again (pausing cleared the verdict), at once without a check.
  let patch: Partial<PodStatus> | undefined = phase === 'Running' ? undefined : { reason: 'Resumed', message: '', ready: readiness(pod, local) ?? false };
  if (local.usage !== undefined) patch = { ...patch, usage: local.usage };
  // What the record says about readiness is repaired here too (a verdict changed, or an older agent wrote it);
  // without a verdict yet (this agent restarted and adopted the container) the record stands until the first probe.
  const ready = readiness(pod, local);
  if (phase === 'Running' && ready !== undefined && ready !== pod.status.ready) patch = { ...patch, ready };
  return { kind: 'running', resume: actual.state === 'paused', ...(patch === undefined ? {} : { write: { to: 'Running', patch } }) };
}

/**
 * A pod the leader evicts: stopped with the usual grace and removed from the
 * runtime, then Stopped with reason Evicted (its acknowledgement: the pod is
 * gone from this node, so wherever it runs next, even a node sharing this
 * Docker engine, finds its container name free).
 */
function evicted(pod: PodRecord, live: boolean, now: number, limits: DecideLimits): PodAction {
  const message = `evicted: ${pod.status.eviction!.reason}`;
  const then = { to: 'Stopped', patch: { reason: 'Evicted', message } } as const;
  const event = { type: 'Normal', reason: 'Evicted', message } as const;
  const { phase } = pod.status;
  // Stopped or finished: acknowledged already (a container still there is stale: never leave one running).
  if (phase === 'Stopped' || TERMINAL_PHASES.has(phase)) return live ? { kind: 'stop', why: 'a stale container' } : { kind: 'none' };
  if (live && phase !== 'Scheduled') {
    const first = { to: 'Stopping', patch: { reason: 'Evicting', message: `${message}; grace ${limits.stopTimeoutMs / 1000} s` } } as const;
    return { kind: 'stop-then-write', why: 'evicted', first, then, event, remove: true };
  }
  if (live) return { kind: 'stop-then-write', why: 'evicted', then, event, remove: true };
  return { kind: 'write', to: 'Stopped', patch: { ...then.patch, finishedAt: iso(now) }, event, remove: true };
}

/**
 * The container exited on its own: start it again per restartPolicy (with
 * back-off), or finish the pod. `oom`: the kernel killed it for exceeding
 * its memory limit, which a Failed pod gives as its reason (`OOMKilled`).
 */
function exited(pod: PodRecord, code: number, oom: boolean, local: Readonly<PodMemory>, now: number, limits: DecideLimits): PodAction {
  const { restarts } = pod.status;
  if (local.restartAt !== undefined) {
    // Already backing off (the BackOff write is in): wait it out, unless the pod is no longer wanted.
    if (pod.desired === 'stopped') return { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: 'stopped while backing off' } };
    const wait = local.restartAt - now;
    if (wait > 0) return { kind: 'requeue-after', ms: wait };
    return { kind: 'launch', restarts, fresh: false, restarted: true, reason: 'Restarting', message: `after exit code ${pod.status.exitCode ?? code}` };
  }
  const finishedAt = iso(now);
  const how = oom ? `killed by the kernel's OOM killer over its memory limit of ${pod.spec.memoryMiB} MiB (exit code ${code})` : `exited with code ${code}`;
  if (pod.desired === 'stopped') return { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: how, finishedAt, exitCode: code } };
  const policy = pod.spec.restartPolicy ?? 'Always';
  if (policy === 'Never' || (policy === 'OnFailure' && code === 0)) {
    if (code === 0) {
      return {
        kind: 'write',
        to: 'Succeeded',
        patch: { reason: 'Completed', message: 'exited with code 0', finishedAt, exitCode: 0 },
        event: { type: 'Normal', reason: 'Completed', message: 'exited with code 0' },
      };
    }
    return {
      kind: 'write',
      to: 'Failed',
      patch: { reason: oom ? 'OOMKilled' : 'Error', message: how, finishedAt, exitCode: code },
      event: { type: 'Warning', reason: oom ? 'OOMKilled' : 'Failed', message: `${how} (restartPolicy ${policy})` },
    };
  }
  const ranMs = local.lastStart === undefined ? 0 : now - local.lastStart;
  const crashes = ranMs >= Math.max(CRASH_RESET_MS, limits.restartBackoffMaxMs) ? 0 : local.crashes;
  const delayMs = Math.min(limits.restartBackoffInitialMs * 2 ** crashes, limits.restartBackoffMaxMs);
  const message = `${oom ? 'OOMKilled: ' : ''}${how}; restarting in ${delayMs} ms`;
  return {
    kind: 'back-off',
    delayMs,
    crashes: crashes + 1,
    write: { to: 'Starting', patch: { reason: 'BackOff', message, finishedAt, exitCode: code, restarts: restarts + 1 } },
    event: { type: 'Warning', reason: 'BackOff', message },
  };
}

/**
 * True when `restartRequestedAt` asks for a restart no start has honoured:
 * every start records the request it honoured in `status.restartHandled`
 * (and the agent remembers it until that write lands), so neither an agent
 * that restarted nor a clock that differs between machines repeats one.
 */
export function restartPending(pod: PodRecord, local: Readonly<PodMemory>): boolean {
  const at = pod.restartRequestedAt;
  return at !== undefined && at !== local.restartApplied && at !== pod.status.restartHandled;
}

/** The status of a container that has just started (`startedAt` in ms) with `hostPort` as its PORT, honouring `restartHandled`. */
export function runningPatch(restarts: number, reason: string, startedAt: number, hostPort: number | undefined, ready: boolean, restartHandled?: string): Partial<PodStatus> {
  return {
    reason,
    message: '',
    restarts,
    startedAt: iso(startedAt),
    finishedAt: null,
    exitCode: undefined,
    hostPort,
    usage: undefined,
    ready,
    restartHandled,
  };
}

/**
 * What `status.ready` should say of a pod whose container runs: true without
 * a health check (or where nothing is probed), else the check's latest
 * verdict, so one failed probe takes the pod out of service long before
 * `failureThreshold` restarts it. Undefined while no probe has answered yet.
 */
export function readiness(pod: PodRecord, local: Readonly<PodMemory>): boolean | undefined {
  if (pod.spec.healthCheck === undefined || local.noProbes) return true;
  return local.ready;
}

/**
 * The status the agent writes for one hop to `phase`: `patch` applied, and
 * not ready in any phase but Running, so a pod leaves service with the very
 * write that says it stopped running (never a write of its own).
 */
export function nextStatus(status: PodStatus, phase: PodPhase, patch: Partial<PodStatus>): PodStatus {
  return { ...status, ...patch, phase, ...(phase === 'Running' ? {} : { ready: false }) };
}
