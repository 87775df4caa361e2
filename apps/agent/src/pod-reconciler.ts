import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { idOf, isBerthError, keyOf, prefixes, TERMINAL_PHASES, type PodRecord } from '@berth/core';
import { Informer, PodRepository, WorkQueue, type EventRecorder, type InformerChange } from '@berth/store';
import { decidePod, type DecideLimits } from './decide-pod.js';
import { HealthProber } from './health-prober.js';
import { PodActions, type LocalPod, type ReconcilerNode } from './pod-actions.js';
import { samplePodUsage } from './pod-usage.js';
import { isTransient, type Runtime } from './runtime.js';


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
/** Lost CASes in a row on one pod that re-decide at once; past them the pod backs off like any failure. */
const MAX_QUICK_CONFLICTS = 5;
/** The informer index of pods by the node they are bound to. */
const BY_NODE = 'node';
/** How long lifting a fence waits for the watch cache to show what it read from etcd (a compare-and-swap still guards every start). */
const FENCE_CACHE_WAIT_MS = 5000;
/** Phases of a pod that is to run: a fenced one still bound to its node is started again. */
const LIVE_PHASES: ReadonlySet<PodRecord['status']['phase']> = new Set(['Starting', 'Running', 'Paused']);

/**
 * Converges the pods bound to this process's nodes to what their records
 * want (the kubelet's sync loop). One watch cache of `/berth/pods/` feeds a
 * work queue of pod ids; `sync(id)` reads the record from the cache and the
 * container from the runtime, asks `decidePod` for the next step and has
 * `PodActions` carry it out. Runtime exits, crash-loop timers, usage samples
 * and health checks feed the same queue, so a pod is only ever handled by one
 * worker at a time.
 */
export class PodReconciler {
  private readonly informer: Informer<PodRecord>;
  private readonly queue: WorkQueue<string>;
  private readonly actions: PodActions;
  private readonly prober: HealthProber;
  private readonly nodes = new Map<string, ReconcilerNode>();
  /** Nodes this process stopped acting for (taken over or deleted); never added again. */
  private readonly removed = new Set<string>();
  /** Nodes fenced (cut off from etcd too long): nothing is started or written for them until `unfence`. */
  private readonly fenced = new Set<string>();
  private readonly repo: PodRepository;
  private readonly local = new Map<string, LocalPod>();
  /** Per pod, the revision this agent last wrote or lost a CAS against: its next sync first waits for the cache to show it. */
  private readonly awaitRevision = new Map<string, number>();
  /** Per failing pod, the message of its last failed sync: a transient one repeated is logged only now and then. */
  private readonly lastSyncError = new Map<string, string>();
  private readonly limits: DecideLimits;
  private stopped = false;
  private usageTimer?: NodeJS.Timeout;
  private sampling = false;

  constructor(private readonly opts: PodReconcilerOptions) {
    this.informer = new Informer<PodRecord>(opts.client, prefixes.pods, opts.log.child({ component: 'pod-informer' }));
    // Thousands of simulated nodes share this cache: find a node's pods without a scan.
    this.informer.addIndex(BY_NODE, (p) => p.status.nodeId);
    this.informer.on('change', (c) => this.onChange(c));
    this.limits = { restartBackoffInitialMs: opts.restartBackoffInitialMs ?? 500, restartBackoffMaxMs: opts.restartBackoffMaxMs, stopTimeoutMs: opts.stopTimeoutMs };
    this.queue = new WorkQueue<string>({
      handler: (id) => this.sync(id),
      concurrency: opts.concurrency ?? 32,
      baseDelayMs: RETRY_MIN_MS,
      maxDelayMs: RETRY_MAX_MS,
      onError: (id, err, failures) => this.onSyncError(id, err, failures),
    });
    this.prober = new HealthProber(opts.log.child({ component: 'health' }), {
      unhealthy: (id, why) => {
        const l = this.local.get(id);
        if (l === undefined) return;
        l.unhealthy = why;
        this.queue.add(id);
      },
      // A verdict that changed is written by the pod's next sync, like every other status change.
      readiness: (id, ready) => {
        const l = this.local.get(id);
        if (l === undefined) return;
        l.ready = ready;
        this.queue.add(id);
      },
    });
    this.repo = new PodRepository(opts.client);
    this.actions = new PodActions({
      repo: this.repo,
      log: opts.log,
      prober: this.prober,
      stopTimeoutMs: opts.stopTimeoutMs,
      requeue: (id, ms) => (ms > 0 ? this.queue.addAfter(id, ms) : this.queue.add(id)),
      wrote: (id, revision) => this.awaitRevision.set(id, Math.max(revision, this.awaitRevision.get(id) ?? 0)),
      forget: (l) => this.forget(l),
      acting: (node) => this.nodes.get(node.id) === node && !this.fenced.has(node.id),
    });
  }

  private get log(): Logger {
    return this.opts.log;
  }

  /** Syncs run, for tests and benchmarks. */
  get syncs(): number {
    return this.queue.runs;
  }

  /** Starts the watch cache; resolves after its first list. */
  start(): Promise<void> {
    const every = this.opts.usageIntervalMs ?? 0;
    if (every > 0 && this.usageTimer === undefined) {
      this.usageTimer = setInterval(() => void this.sampleUsage(), every);
      this.usageTimer.unref();
    }
    return this.informer.start();
  }

  /**
   * Starts running the pods bound to `node`. First ends what a previous
   * agent instance left running for it and drops leftovers of pods that are
   * no longer bound to it, so no pod ever runs twice.
   */
  async addNode(node: ReconcilerNode): Promise<void> {
    node.runtime.onExit((podId) => {
      // A pod whose sync is failing waits out its back-off: an engine reports a start it refused as an exit too,
      // and each retry would otherwise trigger the next at once.
      if (this.local.get(podId)?.node === node && this.queue.failuresOf(podId) === 0) this.queue.add(podId);
    });
    const leftovers = (await node.runtime.recover?.()) ?? [];
    await this.informer.whenSynced();
    for (const id of leftovers) {
      const pod = this.informer.get(keyOf('pods', id))?.value;
      if (pod !== undefined && pod.status.nodeId === node.id && pod.status.phase !== 'Pending') continue;
      await node.runtime.remove(id).catch((err: unknown) => this.log.warn({ err, pod: id }, 'could not remove a leftover pod'));
    }
    if (leftovers.length > 0) this.log.info({ node: node.name, leftovers: leftovers.length }, 'ended what a previous agent instance left running');
    // Removed while it was being added (taken over, deleted): its pods are another agent's.
    if (this.removed.has(node.id)) return;
    this.nodes.set(node.id, node);
    for (const p of this.informer.byIndex(BY_NODE, node.id)) this.queue.add(p.value.id);
  }

  /**
   * Looks at every pod of a node again (its runtime came back: what ended
   * meanwhile may have gone unreported). Their back-off starts over: what
   * failed while the runtime was away says nothing about it now.
   */
  resyncNode(nodeId: string): void {
    const again = (id: string) => {
      this.queue.resetFailures(id);
      this.queue.add(id);
    };
    for (const key of this.informer.indexKeys(BY_NODE, nodeId)) {
      const id = idOf('pods', key);
      if (id !== undefined) again(id);
    }
    // Pods it runs that the cache no longer files under it (unbound meanwhile) are to be removed.
    for (const l of this.local.values()) if (l.node.id === nodeId) again(l.id);
  }

  /** The node is fenced: from now on none of its pods is started, written or probed, until `unfence`. */
  fence(nodeId: string): void {
    this.fenced.add(nodeId);
    for (const l of this.local.values()) {
      if (l.node.id !== nodeId) continue;
      this.prober.clear(l.id);
      delete l.ready;
    }
  }

  /**
   * Lifts the fence of a node that holds a heartbeat again. Each pod the
   * fence killed (`stopped`, emptied as they are handled, so a retry repeats
   * nothing) is read again from etcd, not from the watch cache, which was
   * frozen: one still bound here gets its status (`Fenced`, `why`) and starts
   * again; one unbound, bound elsewhere or deleted meanwhile is removed from
   * the runtime and never started. Once the cache shows those reads, every
   * pod of the node is synced again (a start still needs its compare-and-swap
   * of Starting to win). `stillClear` is asked last: a node silent again
   * stays fenced (false).
   */
  async unfence(nodeId: string, stopped: Set<string>, why: string, stillClear: () => boolean): Promise<boolean> {
    const node = this.nodes.get(nodeId);
    if (node === undefined) {
      this.fenced.delete(nodeId);
      return true;
    }
    let seen = 0;
    const again: string[] = [];
    const gone: string[] = [];
    // Read in chunks at once (thousands of simulated pods may lift together after a partition heals).
    const ids = [...stopped];
    const records = new Map<string, Awaited<ReturnType<PodRepository['get']>>>();
    for (let i = 0; i < ids.length; i += 32) {
      const chunk = ids.slice(i, i + 32);
      const got = await Promise.all(chunk.map((id) => this.repo.get(id)));
      chunk.forEach((id, k) => records.set(id, got[k]));
    }
    for (const id of ids) {
      const cur = records.get(id);
      const local = this.local.get(id);
      if (cur !== undefined) seen = Math.max(seen, cur.modRevision);
      if (cur === undefined || cur.value.status.nodeId !== nodeId || cur.value.status.phase === 'Pending') {
        if (local !== undefined) await this.actions.teardown(local, 'it left this node while the node was fenced');
        else await node.runtime.remove(id);
        gone.push(cur?.value.name ?? id);
      } else if (LIVE_PHASES.has(cur.value.status.phase) && cur.value.deletionRequested === undefined && cur.value.status.eviction === undefined && cur.value.desired !== 'stopped') {
        // (An evicted one is not started again: its next sync acknowledges the eviction with Stopped.)
        const mine = local ?? newLocal(id, node);
        this.local.set(id, mine);
        seen = Math.max(seen, (await this.actions.fenced(cur, mine, `force-stopped: ${why}; still bound to node ${node.name}, starting again`)).modRevision);
        again.push(cur.value.name);
      }
      stopped.delete(id);
    }
    if (seen > 0 && !(await this.informer.waitForRevision(seen, FENCE_CACHE_WAIT_MS))) {
      this.log.warn({ node: node.name, revision: seen }, 'the pod cache has not caught up with etcd after a fence; syncing anyway (starts are compare-and-swapped)');
    }
    // The event only tells; failing to record it must not keep the node fenced.
    await node.events
      .record({
        type: 'Warning',
        reason: 'NodeFenced',
        message: `node ${node.name} was fenced: ${why}; every pod was force-stopped; ${again.length} still bound here start again${again.length ? ` (${again.join(', ')})` : ''}, ${gone.length} that left it meanwhile were removed${gone.length ? ` (${gone.join(', ')})` : ''}`,
        involved: { kind: 'node', id: nodeId },
      })
      .catch((err: unknown) => this.log.warn({ err, node: node.name }, 'could not record the NodeFenced event'));
    if (!stillClear()) return false;
    this.fenced.delete(nodeId);
    this.log.warn({ node: node.name, startingAgain: again.length, removed: gone.length }, 'fence lifted: the node runs what is still bound to it');
    this.resyncNode(nodeId);
    return true;
  }

  /** Stops acting for a node (taken over by another agent): forgets its pods without touching the runtime. */
  removeNode(nodeId: string): void {
    this.removed.add(nodeId);
    this.nodes.delete(nodeId);
    for (const l of [...this.local.values()]) if (l.node.id === nodeId) this.forget(l);
  }

  /**
   * Resolves once no pod that still runs (or is to run) is bound to `nodeId`,
   * or after `timeoutMs`; true when drained. While the node leaves the
   * cluster the leader evicts its pods: this reconciler stops each one and
   * says so (phase Stopped), then the leader unbinds it and reschedules it.
   */
  drained(nodeId: string, timeoutMs: number): Promise<boolean> {
    const empty = () => this.informer.byIndex(BY_NODE, nodeId).every((p) => TERMINAL_PHASES.has(p.value.status.phase));
    if (empty()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.informer.off('change', check);
        resolve(ok);
      };
      const check = () => {
        if (empty()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.informer.on('change', check);
    });
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
    this.queue.shutdown();
    this.prober.close();
    await this.informer.stop();
    // A sync in flight finishes its step (nothing is queued once stopped); do not wait out a long pod stop.
    await withTimeout(this.queue.idle(), 2000);
  }

  private onChange(c: InformerChange<PodRecord>): void {
    const id = idOf('pods', c.key);
    if (id === undefined) return;
    const before = c.prev?.value.status.nodeId ?? null;
    const after = c.type === 'put' ? (c.item?.value.status.nodeId ?? null) : null;
    if ((before !== null && this.nodes.has(before)) || (after !== null && this.nodes.has(after)) || this.local.has(id)) this.queue.add(id);
  }

  /**
   * A failed sync. A lost CAS re-decides at once, after the cache has caught
   * up with the winner (the sync waits for it); anything else backs off
   * (200 ms doubling to 10 s). An engine that is away fails every pod alike,
   * so a transient error logs one line per pod when it first appears (or
   * changes) and then every 10th failure.
   */
  private onSyncError(id: string, err: unknown, failures: number): number | undefined {
    const revision = (isBerthError(err, 'CONFLICT') && (err.details as { revision?: number } | undefined)?.revision) || 0;
    if (revision > 0 && failures <= MAX_QUICK_CONFLICTS) {
      this.log.debug({ pod: id, revision }, 'pod changed concurrently; re-deciding');
      this.awaitRevision.set(id, Math.max(revision, this.awaitRevision.get(id) ?? 0));
      return 0;
    }
    const transient = isTransient(err);
    const message = err instanceof Error ? err.message : String(err);
    const repeated = this.lastSyncError.get(id) === message;
    this.lastSyncError.set(id, message);
    const quiet = transient && failures > 1 && repeated && failures % 10 !== 0;
    this.log[quiet ? 'debug' : 'warn']({ pod: id, err, failures, retryInMs: this.queue.backoff(failures), transient }, 'pod sync failed; retrying');
    return undefined;
  }

  /** The node of this process a pod is bound to, if any. */
  private boundNode(pod: PodRecord): ReconcilerNode | undefined {
    if (pod.status.phase === 'Pending' || pod.status.nodeId === null) return undefined;
    return this.nodes.get(pod.status.nodeId);
  }

  private async sync(id: string): Promise<void> {
    const wanted = this.awaitRevision.get(id);
    if (wanted !== undefined) {
      await this.informer.waitForRevision(wanted, CACHE_WAIT_MS);
      if (this.awaitRevision.get(id) === wanted) this.awaitRevision.delete(id);
    }
    const cur = this.informer.get(keyOf('pods', id));
    const node = cur === undefined ? undefined : this.boundNode(cur.value);
    const known = this.local.get(id);
    if (known !== undefined && known.node !== node) {
      // Deleted, unbound (node lost, drained, preempted) or bound elsewhere: the container goes, the record is no longer ours to write.
      await this.actions.teardown(known, cur === undefined ? 'its record was deleted' : node === undefined ? 'it was unbound from this node' : 'it was bound to another node');
    }
    if (cur === undefined || node === undefined) return;
    // Fenced: nothing is started or written for the node; lifting the fence syncs its pods again.
    if (this.fenced.has(node.id)) return;
    let local = this.local.get(id);
    if (local === undefined) this.local.set(id, (local = newLocal(id, node)));
    const actual = await node.runtime.inspect(id);
    if (this.nodes.get(node.id) !== node || this.fenced.has(node.id)) return; // removed or fenced while inspecting: not to act on
    const action = decidePod(cur.value, actual, local, Date.now(), this.limits);
    this.log.trace({ pod: cur.value.name, phase: cur.value.status.phase, actual: actual?.state, action: action.kind }, 'pod decided');
    await this.actions.execute(action, cur, local);
  }

  private forget(local: LocalPod): void {
    this.prober.clear(local.id);
    this.queue.forget(local.id);
    this.awaitRevision.delete(local.id);
    this.lastSyncError.delete(local.id);
    if (this.local.get(local.id) === local) this.local.delete(local.id);
  }

  /** Samples running docker pods; a sample that changed notably is queued for writing. */
  private async sampleUsage(): Promise<void> {
    if (this.sampling || this.stopped) return;
    this.sampling = true;
    try {
      const changed = await samplePodUsage(this.local.values(), (id) => this.informer.get(keyOf('pods', id))?.value);
      for (const l of changed) this.queue.add(l.id);
    } finally {
      this.sampling = false;
    }
  }
}

/** What the agent starts out remembering about a pod it runs on `node`. */
function newLocal(id: string, node: ReconcilerNode): LocalPod {
  return { id, node, crashes: 0, ...(node.runtime.kind === 'simulated' ? { noProbes: true } : {}) };
}

/** Resolves when `p` does, or after `ms` (whichever is first), without leaving a timer behind. */
function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.then(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}
