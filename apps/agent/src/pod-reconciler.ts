import net from 'node:net';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  BerthError,
  POD_TRANSITIONS,
  assertTransition,
  canTransition,
  errors,
  idOf,
  isBerthError,
  keyOf,
  nameKey,
  prefixes,
  type BerthEvent,
  type PodPhase,
  type PodRecord,
  type PodStatus,
} from '@berth/core';
import { commit, Informer, modifiedAt, putJson, type EventRecorder, type InformerChange, type Versioned } from '@berth/store';
import { isTransient, PodCreateError, UnknownPodError, type PodSpecForRuntime, type Runtime } from './runtime.js';

/** One node of this agent process, as the pod reconciler drives it. */
export interface ReconcilerNode {
  id: string;
  name: string;
  runtime: Runtime;
  /** Records events with the node's name as their source. */
  events: EventRecorder;
}

/** How the pod reconciler behaves (agent flags). */
export interface PodReconcilerOptions {
  client: Etcd3;
  log: Logger;
  /** Grace between SIGTERM and SIGKILL when a pod is stopped (`--stop-timeout`). */
  stopTimeoutMs: number;
  /** Cap of the crash-loop back-off (`--restart-backoff-max`). */
  restartBackoffMaxMs: number;
  /** First crash-loop delay; doubles per consecutive crash. */
  restartBackoffInitialMs?: number;
  /** Pods synced at once (each pod is only ever synced by one worker at a time). */
  concurrency?: number;
  /** How often running docker pods are sampled for `status.usage` (`--report-interval`); 0 or unset: never. */
  usageIntervalMs?: number;
}

/** Retry delays of a sync that failed (etcd away, a runtime error). */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 10_000;
/** How long a sync waits for the watch cache to show a revision it wrote or lost a CAS against. */
const CACHE_WAIT_MS = 2000;
/** A container that ran at least this long (or the back-off cap, if longer) starts a new crash count. */
const CRASH_RESET_MS = 10_000;
/** Kubernetes' probe defaults, for fields the record leaves out. */
const PROBE_DEFAULTS = { intervalSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 };

/** What the agent remembers about a pod it runs; lost on restart, so nothing here is needed for correctness. */
interface LocalPod {
  id: string;
  node: ReconcilerNode;
  hostPort?: number;
  /** The last `restartRequestedAt` acted on. */
  restartApplied?: string;
  /** Consecutive crashes, for the back-off. */
  crashes: number;
  /** When the container last started (ms). */
  lastStart?: number;
  /** While crash-looping: when the container may start again (ms). */
  restartAt?: number;
  health?: { timer: NodeJS.Timeout; failures: number; inFlight: boolean; key: string };
  /** Why the health check gave up on the container, until the reconciler acted on it. */
  unhealthy?: string;
  /** The pod's revision as this agent last wrote it: syncs wait for the cache to show it. */
  minRevision: number;
  /** A usage sample that differs notably from `status.usage`, for the next sync to write. */
  usage?: NonNullable<PodStatus['usage']>;
}

type Cur = Versioned<PodRecord>;

/**
 * Converges the pods bound to this process's nodes to what their records
 * want (the kubelet's sync loop). One watch cache of `/berth/pods/` feeds a
 * work queue of pod ids; `sync(id)` compares the record (desired state,
 * deletion, restart requests, binding) with the runtime and acts, then
 * writes the phase it reached with a compare-and-swap that follows the pod
 * state machine. A lost CAS waits for the cache to catch up and decides
 * again; other failures are retried with back-off. Runtime exits, crash-loop
 * timers and health checks feed the same queue, so a pod is only ever
 * handled by one worker at a time.
 */
export class PodReconciler {
  private readonly informer: Informer<PodRecord>;
  private readonly nodes = new Map<string, ReconcilerNode>();
  private readonly local = new Map<string, LocalPod>();
  /** nodeId -> ids of pods bound to it, from the cache. */
  private readonly byNode = new Map<string, Set<string>>();
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly idleWaiters: Array<() => void> = [];
  private stopped = false;
  private readonly backoffInitialMs: number;
  private readonly concurrency: number;
  /** Syncs run, for tests and benchmarks. */
  syncs = 0;

  constructor(private readonly opts: PodReconcilerOptions) {
    this.informer = new Informer<PodRecord>(opts.client, prefixes.pods, opts.log.child({ component: 'pod-informer' }));
    this.informer.on('change', (c) => this.onChange(c));
    this.backoffInitialMs = opts.restartBackoffInitialMs ?? 500;
    this.concurrency = opts.concurrency ?? 32;
  }

  private get log(): Logger {
    return this.opts.log;
  }

  private usageTimer?: NodeJS.Timeout;
  private sampling = false;

  /** Starts the watch cache; resolves after its first list. */
  start(): Promise<void> {
    const every = this.opts.usageIntervalMs ?? 0;
    if (every > 0 && this.usageTimer === undefined) {
      this.usageTimer = setInterval(() => void this.sampleUsage(), every);
      this.usageTimer.unref();
    }
    return this.informer.start();
  }

  /** Samples running docker pods; a sample that changed notably (5 CPU points, 10% or 4 MiB of memory) is queued for writing. */
  private async sampleUsage(): Promise<void> {
    if (this.sampling || this.stopped) return;
    this.sampling = true;
    try {
      await Promise.all(
        [...this.local.values()].map(async (l) => {
          if (l.node.runtime.kind !== 'docker') return;
          const pod = this.informer.get(keyOf('pods', l.id))?.value;
          if (pod?.status.phase !== 'Running') return;
          const s = await l.node.runtime.stats(l.id).catch(() => undefined);
          if (s === undefined) return;
          const prev = pod.status.usage;
          const notable =
            prev === undefined || Math.abs(s.cpuPercent - prev.cpuPercent) >= 5 || Math.abs(s.memoryMiB - prev.memoryMiB) >= Math.max(4, prev.memoryMiB * 0.1);
          if (!notable) return;
          l.usage = { ...s, at: now() };
          this.enqueue(l.id);
        }),
      );
    } finally {
      this.sampling = false;
    }
  }

  /**
   * Starts running the pods bound to `node`. First ends what a previous
   * agent instance left running for it and drops leftovers of pods that are
   * no longer bound to it, so no pod ever runs twice.
   */
  async addNode(node: ReconcilerNode): Promise<void> {
    node.runtime.onExit((podId) => {
      if (this.local.get(podId)?.node === node) this.enqueue(podId);
    });
    const leftovers = (await node.runtime.recover?.()) ?? [];
    await this.informer.whenSynced();
    for (const id of leftovers) {
      const pod = this.informer.get(keyOf('pods', id))?.value;
      if (pod !== undefined && pod.status.nodeId === node.id && pod.status.phase !== 'Pending') continue;
      await node.runtime.remove(id).catch((err: unknown) => this.log.warn({ err, pod: id }, 'could not remove a leftover pod'));
    }
    if (leftovers.length > 0) this.log.info({ node: node.name, leftovers: leftovers.length }, 'ended what a previous agent instance left running');
    this.nodes.set(node.id, node);
    for (const id of this.byNode.get(node.id) ?? []) this.enqueue(id);
  }

  /** Stops acting for a node (taken over by another agent): forgets its pods without touching the runtime. */
  removeNode(nodeId: string): void {
    this.nodes.delete(nodeId);
    for (const l of [...this.local.values()]) if (l.node.id === nodeId) this.forget(l);
  }

  /** The runtime that holds (or held) a pod's container on this agent, for its logs. */
  runtimeFor(podId: string): Runtime | undefined {
    const local = this.local.get(podId);
    if (local !== undefined) return local.node.runtime;
    const nodeId = this.informer.get(keyOf('pods', podId))?.value.status.nodeId;
    return nodeId ? this.nodes.get(nodeId)?.runtime : undefined;
  }

  /** Stops watching and clears every timer; containers keep running (an agent restart recovers them). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.usageTimer);
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    for (const l of this.local.values()) this.clearHealth(l);
    this.queue.length = 0;
    this.queued.clear();
    await this.informer.stop();
    // A sync in flight finishes its step (its timers are not re-armed once stopped); do not wait out a long pod stop.
    await withTimeout(this.idle(), 2000);
  }

  // ---- work queue ----------------------------------------------------------

  private onChange(c: InformerChange<PodRecord>): void {
    const id = idOf('pods', c.key);
    if (id === undefined) return;
    const before = c.prev?.value.status.nodeId ?? null;
    const after = c.type === 'put' ? (c.item?.value.status.nodeId ?? null) : null;
    if (before !== after) {
      if (before !== null) {
        const set = this.byNode.get(before);
        set?.delete(id);
        if (set?.size === 0) this.byNode.delete(before);
      }
      if (after !== null) {
        let set = this.byNode.get(after);
        if (set === undefined) this.byNode.set(after, (set = new Set()));
        set.add(id);
      }
    }
    if ((before !== null && this.nodes.has(before)) || (after !== null && this.nodes.has(after)) || this.local.has(id)) this.enqueue(id);
  }

  private enqueue(id: string): void {
    if (this.stopped) return;
    if (this.active.has(id)) {
      this.dirty.add(id);
      return;
    }
    if (this.queued.has(id)) return;
    this.queued.add(id);
    this.queue.push(id);
    this.pump();
  }

  /** Syncs `id` again in `ms` (or sooner, if something else asks). */
  private enqueueAfter(id: string, ms: number): void {
    if (this.stopped) return;
    const at = Date.now() + ms;
    const existing = this.delayed.get(id);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(id);
      this.enqueue(id);
    }, ms);
    this.delayed.set(id, { at, timer });
  }

  private pump(): void {
    while (this.active.size < this.concurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      this.queued.delete(id);
      this.active.add(id);
      void this.work(id);
    }
  }

  private async work(id: string): Promise<void> {
    try {
      this.syncs += 1;
      await this.sync(id);
      this.failures.delete(id);
    } catch (err) {
      const n = (this.failures.get(id) ?? 0) + 1;
      this.failures.set(id, n);
      const revision = (isBerthError(err, 'CONFLICT') && (err.details as { revision?: number } | undefined)?.revision) || 0;
      if (revision > 0 && n <= 5) {
        // Lost a CAS: decide again once the cache shows what won.
        this.log.debug({ pod: id, revision }, 'pod changed concurrently; re-deciding');
        await withTimeout(this.informer.waitForRevision(revision), CACHE_WAIT_MS);
        this.dirty.add(id);
      } else {
        const delay = Math.min(RETRY_MIN_MS * 2 ** (n - 1), RETRY_MAX_MS);
        // An engine that is away (transient) fails every pod alike: one line per pod at the first failure and then every 10th.
        const quiet = isTransient(err) && n > 1 && n % 10 !== 0;
        this.log[quiet ? 'debug' : 'warn']({ pod: id, err: err instanceof Error ? err.message : String(err), retryInMs: delay, transient: isTransient(err) }, 'pod sync failed; retrying');
        this.enqueueAfter(id, delay);
      }
    } finally {
      this.active.delete(id);
      if (this.dirty.delete(id)) this.enqueue(id);
      this.pump();
      if (this.active.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private idle(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ---- deciding ------------------------------------------------------------

  /** The node of this process a pod is bound to, if any. */
  private boundNode(pod: PodRecord): ReconcilerNode | undefined {
    if (pod.status.phase === 'Pending' || pod.status.nodeId === null) return undefined;
    return this.nodes.get(pod.status.nodeId);
  }

  private async sync(id: string): Promise<void> {
    const known = this.local.get(id);
    if (known !== undefined && this.informer.revision < known.minRevision) await withTimeout(this.informer.waitForRevision(known.minRevision), CACHE_WAIT_MS);
    const cur = this.informer.get(keyOf('pods', id));
    const node = cur === undefined ? undefined : this.boundNode(cur.value);
    if (known !== undefined && known.node !== node) {
      // Deleted, unbound (node lost, drained, preempted) or bound elsewhere: the container goes, the record is no longer ours to write.
      await this.teardown(known, cur === undefined ? 'its record was deleted' : node === undefined ? 'it was unbound from this node' : 'it was bound to another node');
    }
    if (cur === undefined || node === undefined) return;
    let local = this.local.get(id);
    if (local === undefined) this.local.set(id, (local = { id, node, crashes: 0, minRevision: 0 }));
    await this.converge(cur, node, local);
  }

  private async converge(cur: Cur, node: ReconcilerNode, local: LocalPod): Promise<void> {
    const pod = cur.value;
    const phase = pod.status.phase;
    const actual = await node.runtime.inspect(pod.id);
    const live = actual?.state === 'running' || actual?.state === 'paused';

    if (pod.deletionRequested) return this.deletePod(cur, node, local, live);

    // A stop that began is finished whatever is wanted now: Stopping only leads to Stopped.
    if (phase === 'Stopping') {
      const exitCode = live ? await this.stopContainer(pod, node, local, 'stop') : actual?.exitCode;
      await this.write(cur, local, 'Stopped', { reason: 'Stopped', message: '', finishedAt: now(), exitCode });
      return;
    }

    if (phase === 'Scheduled') {
      if (pod.desired === 'stopped') {
        await this.write(cur, local, 'Stopped', { reason: 'Stopped', message: 'stopped before it started', finishedAt: now() });
        return;
      }
      return this.launch(cur, node, local, { restarts: pod.status.restarts, fresh: true });
    }

    if (phase === 'Stopped' || phase === 'Succeeded' || phase === 'Failed') {
      if (live) await this.stopContainer(pod, node, local, 'a stale container'); // never expected; never leave one running
      const restart = this.restartPending(pod, local);
      const start = phase === 'Stopped' ? pod.desired !== 'stopped' : restart;
      if (start) return this.launch(cur, node, local, { restarts: pod.status.restarts + (restart ? 1 : 0), restarted: restart });
      if (restart) local.restartApplied = pod.restartRequestedAt; // nothing runs, so there is nothing to restart
      return;
    }

    // Starting, Running, Paused.
    if (!live) {
      if (actual?.state === 'exited') return this.exited(cur, node, local, actual.exitCode ?? 1);
      if (pod.desired === 'stopped') {
        await this.write(cur, local, 'Stopped', { reason: 'Stopped', message: '', finishedAt: now() });
        return;
      }
      // The runtime does not hold a container the record says runs: this agent restarted. Run it again.
      const lost = actual === undefined && phase !== 'Starting';
      if (lost) this.log.info({ pod: pod.name, phase }, 'pod is not in the runtime (agent restarted); starting it again');
      return this.launch(cur, node, local, {
        restarts: pod.status.restarts + (lost ? 1 : 0),
        restarted: lost,
        ...(lost ? { reason: 'AgentRestarted', message: 'the agent restarted and no longer held the container' } : {}),
      });
    }

    if (local.unhealthy !== undefined && pod.desired !== 'stopped') return this.unhealthy(cur, node, local, local.unhealthy);
    if (this.restartPending(pod, local) && pod.desired !== 'stopped') {
      return this.restartLive(cur, node, local, 'Restarting', `restart requested at ${pod.restartRequestedAt}`);
    }
    if (pod.desired === 'stopped') {
      cur = await this.write(cur, local, 'Stopping', { reason: 'Stopping', message: `grace ${this.opts.stopTimeoutMs / 1000} s` });
      const exitCode = await this.stopContainer(pod, node, local, 'stop');
      await this.write(cur, local, 'Stopped', { reason: 'Stopped', message: '', finishedAt: now(), exitCode });
      return;
    }
    if (phase === 'Starting') {
      // Started, but the write saying so was lost (conflict or crash).
      cur = await this.write(cur, local, 'Running', this.runningPatch(local, pod.status.restarts, 'Started'));
      this.armHealth(cur.value, node, local);
    }
    if (pod.desired === 'paused') {
      this.clearHealth(local);
      if (actual.state === 'running') await node.runtime.pause(pod.id);
      if (cur.value.status.phase !== 'Paused') await this.write(cur, local, 'Paused', { reason: 'Paused', message: '' });
      return;
    }
    if (actual.state === 'paused') await node.runtime.resume(pod.id);
    if (cur.value.status.phase !== 'Running') cur = await this.write(cur, local, 'Running', { reason: 'Resumed', message: '' });
    if (local.usage !== undefined) {
      const usage = local.usage;
      delete local.usage;
      cur = await this.write(cur, local, 'Running', { usage });
    }
    local.hostPort ??= pod.status.hostPort;
    this.armHealth(cur.value, node, local);
  }

  /** True when `restartRequestedAt` asks for a restart this agent has not done yet. */
  private restartPending(pod: PodRecord, local: LocalPod): boolean {
    const at = pod.restartRequestedAt;
    if (at === undefined || at === local.restartApplied) return false;
    // After an agent restart the memory is gone: a container started (or finished) after the request already honoured it.
    const active = pod.status.phase === 'Starting' || pod.status.phase === 'Running' || pod.status.phase === 'Paused';
    const since = active ? pod.status.startedAt : (pod.status.finishedAt ?? pod.status.startedAt);
    if (since !== null && Date.parse(at) <= Date.parse(since)) {
      local.restartApplied = at;
      return false;
    }
    return true;
  }

  // ---- acting --------------------------------------------------------------

  /**
   * Creates (if needed) and starts the container: Starting, then Running
   * with a fresh startedAt. `restarts` is the count the pod ends up with.
   */
  private async launch(
    cur: Cur,
    node: ReconcilerNode,
    local: LocalPod,
    o: { restarts: number; fresh?: boolean; restarted?: boolean; reason?: string; message?: string },
  ): Promise<void> {
    const pod = cur.value;
    const hostPort = await this.hostPortFor(pod, node, local, o.fresh ?? false);
    if (pod.status.phase !== 'Starting' && canTransition(pod.status.phase, 'Starting')) {
      cur = await this.write(cur, local, 'Starting', {
        reason: o.reason ?? (o.restarted ? 'Restarting' : 'Starting'),
        message: o.message ?? '',
        restarts: o.restarts,
        hostPort,
      });
    }
    try {
      await node.runtime.create(this.runtimeSpec(pod, hostPort));
    } catch (err) {
      if (!isBerthError(err, 'VALIDATION_FAILED') && !(err instanceof PodCreateError)) throw err;
      // The pod cannot run on this runtime (e.g. no command, an image that cannot be pulled): say so instead of retrying forever.
      await this.write(cur, local, 'Failed', { reason: 'CreateFailed', message: err.message, finishedAt: now() });
      await this.event(node, pod, 'Warning', 'Failed', `cannot create: ${err.message}`);
      return;
    }
    await node.runtime.start(pod.id);
    local.lastStart = Date.now();
    delete local.restartAt;
    delete local.unhealthy;
    local.restartApplied = pod.restartRequestedAt;
    cur = await this.write(cur, local, 'Running', this.runningPatch(local, o.restarts, o.restarted ? 'Restarted' : 'Started'));
    if (o.restarted) await this.event(node, pod, 'Normal', 'Restarted', `started again (restart ${o.restarts})${o.message ? `: ${o.message}` : ''}`);
    this.armHealth(cur.value, node, local);
  }

  private runningPatch(local: LocalPod, restarts: number, reason: string): Partial<PodStatus> {
    return {
      reason,
      message: '',
      restarts,
      startedAt: new Date(local.lastStart ?? Date.now()).toISOString(),
      finishedAt: null,
      exitCode: undefined,
      hostPort: local.hostPort,
      usage: undefined,
    };
  }

  /** The container exited on its own: restart it per restartPolicy (with back-off), or finish the pod. */
  private async exited(cur: Cur, node: ReconcilerNode, local: LocalPod, code: number): Promise<void> {
    const pod = cur.value;
    this.clearHealth(local);
    if (local.restartAt !== undefined) {
      if (pod.desired === 'stopped') {
        delete local.restartAt;
        await this.write(cur, local, 'Stopped', { reason: 'Stopped', message: 'stopped while backing off' });
        return;
      }
      const wait = local.restartAt - Date.now();
      if (wait > 0) return this.enqueueAfter(pod.id, wait);
      return this.launch(cur, node, local, { restarts: pod.status.restarts, restarted: true, message: `after exit code ${pod.status.exitCode ?? code}` });
    }
    const finishedAt = now();
    if (pod.desired === 'stopped') {
      await this.write(cur, local, 'Stopped', { reason: 'Stopped', message: `exited with code ${code}`, finishedAt, exitCode: code });
      return;
    }
    const policy = pod.spec.restartPolicy ?? 'Always';
    if (policy === 'Never' || (policy === 'OnFailure' && code === 0)) {
      if (code === 0) {
        await this.write(cur, local, 'Succeeded', { reason: 'Completed', message: 'exited with code 0', finishedAt, exitCode: 0 });
        await this.event(node, pod, 'Normal', 'Completed', 'exited with code 0');
      } else {
        await this.write(cur, local, 'Failed', { reason: 'Error', message: `exited with code ${code}`, finishedAt, exitCode: code });
        await this.event(node, pod, 'Warning', 'Failed', `exited with code ${code} (restartPolicy ${policy})`);
      }
      return;
    }
    const ranMs = local.lastStart === undefined ? 0 : Date.now() - local.lastStart;
    if (ranMs >= Math.max(CRASH_RESET_MS, this.opts.restartBackoffMaxMs)) local.crashes = 0;
    const delay = Math.min(this.backoffInitialMs * 2 ** local.crashes, this.opts.restartBackoffMaxMs);
    const message = `exited with code ${code}; restarting in ${delay} ms`;
    await this.write(cur, local, 'Starting', { reason: 'BackOff', message, finishedAt, exitCode: code, restarts: pod.status.restarts + 1 });
    local.crashes += 1;
    local.restartAt = Date.now() + delay;
    await this.event(node, pod, 'Warning', 'BackOff', message);
    this.enqueueAfter(pod.id, delay);
  }

  /** Restarts a live container at once (restart request, failed health check). */
  private async restartLive(cur: Cur, node: ReconcilerNode, local: LocalPod, reason: string, message: string): Promise<void> {
    const restarts = cur.value.status.restarts + 1;
    // Paused cannot go to Starting; such a pod goes straight back to Running (then paused again if still desired).
    if (cur.value.status.phase !== 'Starting' && canTransition(cur.value.status.phase, 'Starting')) {
      cur = await this.write(cur, local, 'Starting', { reason, message, restarts });
    }
    await this.stopContainer(cur.value, node, local, reason.toLowerCase());
    await this.launch(cur, node, local, { restarts, restarted: true, reason, message });
  }

  /** The health check gave up: restart the container, or fail the pod when its restartPolicy is Never. */
  private async unhealthy(cur: Cur, node: ReconcilerNode, local: LocalPod, why: string): Promise<void> {
    const pod = cur.value;
    await this.event(node, pod, 'Warning', 'Unhealthy', why);
    if ((pod.spec.restartPolicy ?? 'Always') !== 'Never') return this.restartLive(cur, node, local, 'Unhealthy', why);
    delete local.unhealthy;
    const exitCode = await this.stopContainer(pod, node, local, 'unhealthy');
    await this.write(cur, local, 'Failed', { reason: 'Unhealthy', message: why, finishedAt: now(), exitCode });
  }

  /** Stops the container (SIGTERM, SIGKILL after the grace) and returns its exit code; a forced kill is an event. */
  private async stopContainer(pod: PodRecord, node: ReconcilerNode, local: LocalPod, why: string): Promise<number | undefined> {
    this.clearHealth(local);
    const { forced } = await node.runtime.stop(pod.id, this.opts.stopTimeoutMs);
    if (forced) {
      await this.event(node, pod, 'Warning', 'ForcedKill', `did not exit within ${this.opts.stopTimeoutMs / 1000} s of SIGTERM (${why}); killed`);
    }
    return (await node.runtime.inspect(pod.id))?.exitCode;
  }

  /**
   * `deletionRequested`: stop and remove the container, then delete the
   * record and its name claim in one transaction guarded on the record's
   * revision (a concurrent change makes the agent decide again).
   */
  private async deletePod(cur: Cur, node: ReconcilerNode, local: LocalPod, live: boolean): Promise<void> {
    const pod = cur.value;
    if (live) {
      if (pod.status.phase !== 'Stopping' && canTransition(pod.status.phase, 'Stopping')) {
        cur = await this.write(cur, local, 'Stopping', { reason: 'Deleting', message: '' });
      }
      await this.stopContainer(pod, node, local, 'delete');
    }
    await node.runtime.remove(pod.id);
    this.forget(local);
    const res = await commit(this.opts.client, [modifiedAt(cur.key, cur.modRevision)], [
      { type: 'delete', key: cur.key },
      { type: 'delete', key: nameKey('pods', pod.name) },
    ]);
    if (!res.succeeded) throw staleWrite(pod, res.revision);
    this.log.info({ pod: pod.name, id: pod.id }, 'pod deleted');
    await this.event(node, pod, 'Normal', 'Deleted', 'container removed and record deleted');
  }

  /** The pod is no longer this node's: remove its container without writing its record. */
  private async teardown(local: LocalPod, why: string): Promise<void> {
    const { runtime } = local.node;
    this.clearHealth(local);
    try {
      const { forced } = await runtime.stop(local.id, this.opts.stopTimeoutMs);
      if (forced) {
        await local.node.events
          .record({ type: 'Warning', reason: 'ForcedKill', message: `pod ${local.id} did not exit within the grace (${why}); killed`, involved: { kind: 'pod', id: local.id } })
          .catch((err: unknown) => this.log.warn({ err: String(err) }, 'could not record event'));
      }
    } catch (err) {
      if (!(err instanceof UnknownPodError)) throw err;
    }
    await runtime.remove(local.id);
    this.forget(local);
    this.log.info({ pod: local.id, node: local.node.name, why }, 'pod removed from this node');
  }

  private forget(local: LocalPod): void {
    this.clearHealth(local);
    const d = this.delayed.get(local.id);
    if (d !== undefined) clearTimeout(d.timer);
    this.delayed.delete(local.id);
    if (this.local.get(local.id) === local) this.local.delete(local.id);
  }

  // ---- writing -------------------------------------------------------------

  /**
   * Moves the pod to phase `to` with `patch` applied to its status, one CAS
   * write per hop of the state machine when `to` is not directly reachable
   * (e.g. Paused -> Stopping -> Failed). Returns the record as written; a lost
   * CAS throws CONFLICT carrying the revision to wait for.
   */
  private async write(cur: Cur, local: LocalPod, to: PodPhase, patch: Partial<PodStatus>): Promise<Cur> {
    const hops = phasePath(cur.value.status.phase, to);
    if (hops === undefined) assertTransition(cur.value.status.phase, to, cur.value.name);
    for (const phase of hops ?? []) {
      assertTransition(cur.value.status.phase, phase, cur.value.name);
      const next: PodRecord = { ...cur.value, status: { ...cur.value.status, ...patch, phase } };
      const res = await commit(this.opts.client, [modifiedAt(cur.key, cur.modRevision)], [putJson(cur.key, next)]);
      if (!res.succeeded) throw staleWrite(cur.value, res.revision);
      cur = { ...cur, value: next, modRevision: res.revision, version: cur.version + 1 };
      local.minRevision = Math.max(local.minRevision, res.revision);
      this.log.debug({ pod: next.name, phase, reason: next.status.reason }, 'pod status written');
    }
    return cur;
  }

  private async event(node: ReconcilerNode, pod: PodRecord, type: BerthEvent['type'], reason: string, message: string): Promise<void> {
    try {
      await node.events.record({ type, reason, message: `pod ${pod.name}: ${message}`, involved: { kind: 'pod', id: pod.id } });
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err), pod: pod.name, reason }, 'could not record event');
    }
  }

  // ---- ports, spec, health ---------------------------------------------------

  /** The host port of a pod with ports: a new one for a fresh binding, else the one it had (stable across restarts). */
  private async hostPortFor(pod: PodRecord, node: ReconcilerNode, local: LocalPod, fresh: boolean): Promise<number | undefined> {
    // Nothing listens in a simulated pod; thousands of them must not consume host ports.
    if ((pod.spec.ports ?? []).length === 0 || node.runtime.kind === 'simulated') return undefined;
    if (!fresh) local.hostPort ??= pod.status.hostPort;
    local.hostPort ??= await freePort();
    return local.hostPort;
  }

  private runtimeSpec(pod: PodRecord, hostPort: number | undefined): PodSpecForRuntime {
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
    };
  }

  /** Probes `spec.healthCheck` every interval while the pod runs; `failureThreshold` failures in a row queue a restart. */
  private armHealth(pod: PodRecord, node: ReconcilerNode, local: LocalPod): void {
    const hc = pod.spec.healthCheck;
    if (hc === undefined || node.runtime.kind === 'simulated' || this.stopped) return;
    const port = hc.port ?? local.hostPort;
    const key = JSON.stringify([hc, port]);
    if (local.health?.key === key) return;
    this.clearHealth(local);
    if (port === undefined) {
      this.log.warn({ pod: pod.name }, 'health check has no port and the pod has no host port; not probing');
      return;
    }
    const url = `http://127.0.0.1:${port}${hc.path}`;
    const intervalMs = (hc.intervalSeconds ?? PROBE_DEFAULTS.intervalSeconds) * 1000;
    const timeoutMs = (hc.timeoutSeconds ?? PROBE_DEFAULTS.timeoutSeconds) * 1000;
    const threshold = hc.failureThreshold ?? PROBE_DEFAULTS.failureThreshold;
    const health: NonNullable<LocalPod['health']> = { failures: 0, inFlight: false, key, timer: setInterval(() => void probe(), intervalMs) };
    local.health = health;
    const probe = async () => {
      if (health.inFlight) return;
      health.inFlight = true;
      let problem: string | undefined;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status >= 400) problem = `HTTP ${res.status}`;
      } catch (err) {
        problem = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errorText(err);
      } finally {
        health.inFlight = false;
      }
      if (local.health !== health) return; // stopped, paused or re-armed meanwhile
      if (problem === undefined) {
        health.failures = 0;
        return;
      }
      health.failures += 1;
      this.log.info({ pod: pod.name, url, problem, failures: health.failures }, 'health check failed');
      if (health.failures < threshold) return;
      local.unhealthy = `GET ${url} failed ${health.failures} times in a row (last: ${problem})`;
      this.clearHealth(local);
      this.enqueue(local.id);
    };
  }

  private clearHealth(local: LocalPod): void {
    if (local.health === undefined) return;
    clearInterval(local.health.timer);
    delete local.health;
  }
}

/** The phases a pod goes through from `from` to `to` (excluding `from`), shortest first; undefined when unreachable. */
export function phasePath(from: PodPhase, to: PodPhase): PodPhase[] | undefined {
  if (from === to) return [to];
  const prev = new Map<PodPhase, PodPhase>([[from, from]]);
  const todo: PodPhase[] = [from];
  while (todo.length > 0) {
    const p = todo.shift()!;
    // Agents never unbind: Pending is the leader's.
    for (const n of POD_TRANSITIONS[p]) {
      if (n === 'Pending' || prev.has(n)) continue;
      prev.set(n, p);
      if (n === to) {
        const path: PodPhase[] = [to];
        for (let at = p; at !== from; at = prev.get(at)!) path.unshift(at);
        return path;
      }
      todo.push(n);
    }
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close): the pod binds it right after. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function staleWrite(pod: PodRecord, revision: number): BerthError {
  return errors.conflict(`pod ${JSON.stringify(pod.name)} was changed concurrently; deciding again`, { revision });
}

function now(): string {
  return new Date().toISOString();
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}

/** Resolves when `p` does, or after `ms` (whichever is first), without leaving a timer behind. */
function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.then(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}
