import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { deadAfterMs, DEFAULT_HEARTBEAT_TTL_SECONDS, DEFAULT_NODE_GRACE_SECONDS, isBerthError, keyOf, TERMINAL_PHASES, type NodeFence, type NodeRecord, type PodRecord } from '@berth/core';
import { PodRepository, WorkQueue, type EventRecorder, type Fence, type LeaderElector, type Versioned } from '@berth/store';
import { findPreemption, reservedTotal, scheduleBatch, type Decision, type NodeInfo, type Policy, type RunningPod } from '@berth/scheduler';
import type { ClusterState } from '../cluster-state.js';
import { PodBinder, RaceLost, type Evict, type Reservations, type Unbind } from './binder.js';
import { boundPodAction, nodeInfo, nodeUnbindReason, overcommitVictims, podRequest } from './placement.js';

/** The work queue's only key: every change asks for one pass over the whole cluster. */
const PASS = 'pass';
/** Deleted nodes remembered (their fences), the oldest forgotten first. */
const MAX_REMOVED = 1000;
/** While a deleted node's heartbeat is still there, its pods are looked at again this often. */
const REMOVED_RECHECK_MS = 1000;

type Bound = Extract<Decision, { kind: 'bound' }>;
type Unschedulable = Extract<Decision, { kind: 'unschedulable' }>;

/**
 * The leader's scheduling loop. Watch-driven: any change of pods, nodes or
 * reservations adds the one key of a work queue, so bursts of changes
 * coalesce into one pass, passes never overlap, and a pass that fails (etcd
 * away, or a write that lost a race against a change the cache had not seen
 * yet) is retried with backoff instead of at once. A pass:
 *   1. evicts pods of draining or deregistered nodes and of nodes that
 *      reserve more than their capacity (marks them; once their agent has
 *      stopped them, unbinds them); unbinds pods of Dead nodes and, after the
 *      fence budget, of removed ones, and finished pods a user asked to
 *      restart; deletes marked pods whose agent is gone;
 *   2. releases reservations of pods that are gone, finished or bound elsewhere,
 *      and reserves (loudly) bound live pods that have none;
 *   3. binds Pending pods chosen by the pure scheduler (libs/scheduler), in
 *      fenced transactions that also guard each node's reservation record, so
 *      nothing can overcommit a node or bind a pod twice;
 *   4. writes the reasons of pods that fit nowhere;
 *   5. preempts lower-priority pods for one of those: evicts them, and the
 *      preemptor binds on a later pass, once their agent has stopped them and
 *      their reservations are released (one preemption at a time).
 * Every write goes through the pod repository (binder.ts).
 */
export class PodScheduler {
  private fence: Fence | undefined;
  private passes = 0;
  /** A kick is waiting for the end of this turn of the event loop. */
  private kickPending = false;
  private readonly queue: WorkQueue<typeof PASS>;
  private readonly binder: PodBinder;
  /**
   * Nodes deleted while this replica watched (leading or not), by id: the
   * fence their last record reported, and since when this replica has seen
   * both record and heartbeat gone (ms). Pods bound to them wait for it.
   */
  private readonly removed = new Map<string, { fence?: NodeFence; since?: number }>();

  constructor(
    client: Etcd3,
    private readonly state: ClusterState,
    private readonly elector: LeaderElector,
    events: EventRecorder,
    private readonly defaultPolicy: Policy,
    private readonly log: Logger,
    /** The controllers' `--node-grace`: with a node's fence, how long its pods stay bound after it vanished. */
    private readonly graceMs = DEFAULT_NODE_GRACE_SECONDS * 1000,
  ) {
    // The last record of each deleted node: its fence says how long its pods must wait (any replica may lead next).
    state.nodes.on('change', ({ type, prev }) => {
      if (type !== 'delete' || prev === undefined) return;
      this.removed.set(prev.value.id, prev.value.fence === undefined ? {} : { fence: prev.value.fence });
      if (this.removed.size > MAX_REMOVED) this.removed.delete(this.removed.keys().next().value!);
    });
    this.binder = new PodBinder(new PodRepository(client), state, events, log);
    this.queue = new WorkQueue<typeof PASS>({
      handler: () => this.sync(),
      baseDelayMs: 100,
      maxDelayMs: 5000,
      onError: (_key, err, failures) => {
        // Deposed: the elector steps down and stop() follows; nothing to retry.
        if (this.fence === undefined || isBerthError(err, 'LEADERSHIP_LOST')) return false;
        if (err instanceof RaceLost) this.log.debug({ err, failures }, 'a scheduling write lost a race; deciding again after a backoff');
        else this.log.warn({ err, failures }, 'scheduling pass failed; retrying with backoff');
        return undefined;
      },
    });
    for (const inf of [state.pods, state.nodes, state.allocations] as const) inf.on('change', () => this.kick());
    // A node's runtime coming back (its Docker engine answers again) is only in its heartbeat; the
    // heartbeat's usage reports change every few seconds and do not concern the scheduler.
    state.heartbeats.on('change', ({ item, prev }) => {
      if (item?.value.runtime?.ready !== prev?.value.runtime?.ready) this.kick();
    });
  }

  /** Pods bound since this replica started, for metrics. */
  get bound(): number {
    return this.binder.bound;
  }

  /** Starts acting for a term. */
  start(fence: Fence): void {
    this.fence = fence;
    this.kick();
  }

  /** Stops at once (deposed): a pass under way finds its fence rejected by etcd. */
  stop(): void {
    this.fence = undefined;
    this.queue.clear();
  }

  /**
   * Asks for a pass; passes never overlap and bursts of watch events coalesce.
   * The key is added once the current turn of the event loop is over: a pass
   * then sees every watch response received in it, and never runs inside an
   * informer's change event (or the elector's), half-way through applying it.
   */
  kick(): void {
    if (this.fence === undefined || this.kickPending) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      if (this.fence !== undefined) this.queue.add(PASS);
    });
  }

  private async sync(): Promise<void> {
    const fence = this.fence;
    if (fence === undefined) return;
    await this.elector.withFence(() => this.pass(fence));
  }

  private async pass(fence: Fence): Promise<void> {
    this.passes += 1;
    const seed = `${fence.term}:${this.passes}`;
    // Unsorted snapshots: a pass may run many times a second over 10,000s of items.
    const pods = [...this.state.pods.values()];
    const nodes = new Map([...this.state.nodes.values()].map((n) => [n.value.id, n]));
    const allocs: Reservations = new Map([...this.state.allocations.values()].map((a) => [a.value.nodeId, a]));

    // 1. Bound pods that must leave their node, or be deleted where their agent no longer will.
    const { unbind, evict, forceDelete } = this.leaving(pods, nodes, allocs);
    let wrote = false;
    if (evict.length > 0) {
      await this.binder.evict(fence, evict, nodes);
      wrote = true;
    }
    if (unbind.length > 0 || forceDelete.length > 0) {
      await this.binder.unbind(fence, unbind, forceDelete, allocs, nodes);
      wrote = true;
    }

    // 2. Reservations nobody holds any more, and (never expected) bound pods without one.
    if (await this.binder.releaseStale(fence, allocs)) wrote = true;
    if (!wrote && (await this.binder.reserveMissing(fence, pods, allocs))) wrote = true;
    if (wrote) return this.kick(); // decide the rest on caches that have seen these writes

    // 3. Pending pods, in one batch of the pure scheduler.
    const pending = pods.filter((p) => p.value.status.phase === 'Pending' && !p.value.deletionRequested);
    if (pending.length === 0) return;
    const infos = [...nodes.values()].map((n) => nodeInfo(n.value, allocs.get(n.value.id)?.value, this.state.heartbeat(n.value.id)?.value));
    const decisions = scheduleBatch(
      pending.map((p) => podRequest(p.value)),
      infos,
      { policy: this.defaultPolicy, seed },
    );
    const byId = new Map(pending.map((p) => [p.value.id, p]));
    const binds = decisions.filter((d): d is Bound => d.kind === 'bound');
    if (binds.length > 0) await this.binder.bind(fence, binds, byId, allocs, nodes);

    // 4. Reasons for pods that fit nowhere.
    const unschedulable = decisions.filter((d): d is Unschedulable => d.kind === 'unschedulable');
    await this.binder.explain(fence, unschedulable, byId);

    // 5. Preemption, one at a time, when nothing could be bound.
    // (A victim that finished meanwhile holds nothing: it does not count.)
    const preempting = pods.some((p) => p.value.status.eviction?.reason === 'Preempted' && p.value.status.nodeId !== null && !TERMINAL_PHASES.has(p.value.status.phase));
    if (binds.length === 0 && unschedulable.length > 0 && !preempting) await this.preempt(fence, unschedulable, byId, infos, pods, nodes, seed);
  }

  /**
   * How much longer (ms) pods must stay bound to a node whose record was
   * deleted under them (no leader drained it first), 0 when they may go. Its
   * agent may still run them until it notices; cut off, it fences itself
   * within its fence budget. So the wait starts once record and heartbeat
   * are both gone (a heartbeat means a living, connected agent, which kills
   * its pods when it sees the deletion) and lasts like a dead node's: its
   * heartbeat TTL and then its dead-after time. A node deleted before this
   * replica watched counts the agents' defaults.
   */
  private removedWaitMs(nodeId: string, now: number): number {
    const r = this.removed.get(nodeId) ?? {};
    this.removed.set(nodeId, r);
    if (this.state.heartbeat(nodeId) !== undefined) {
      delete r.since;
      return REMOVED_RECHECK_MS;
    }
    r.since ??= now;
    return Math.max(0, r.since + (r.fence?.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_SECONDS * 1000) + deadAfterMs(this.graceMs, r.fence) - now);
  }

  /** Step 1's decisions: which bound pods are unbound, marked for eviction or deleted this pass. */
  private leaving(
    pods: readonly Versioned<PodRecord>[],
    nodes: ReadonlyMap<string, Versioned<NodeRecord>>,
    allocs: Reservations,
  ): { unbind: Unbind[]; evict: Evict[]; forceDelete: Versioned<PodRecord>[] } {
    const unbind: Unbind[] = [];
    const evict: Evict[] = [];
    const forceDelete: Versioned<PodRecord>[] = [];
    const now = Date.now();
    let wakeIn = Infinity;
    const waits = new Map<string, number>();
    for (const p of pods) {
      const nodeId = p.value.status.nodeId;
      if (nodeId === null) continue;
      const node = nodes.get(nodeId);
      const action = boundPodAction(p.value, node?.value);
      if (action === undefined) continue;
      if (node === undefined) {
        // Unbound or deleted alike (a deletion frees the name for a new pod): only once the node's wait is over.
        const wait = waits.get(nodeId) ?? this.removedWaitMs(nodeId, now);
        waits.set(nodeId, wait);
        if (wait > 0) {
          wakeIn = Math.min(wakeIn, wait);
          continue;
        }
      }
      if (action.kind === 'unbind') unbind.push({ pod: p, reason: action.reason });
      else if (action.kind === 'evict') evict.push({ pod: p, reason: action.reason });
      else forceDelete.push(p);
    }
    if (wakeIn !== Infinity) this.queue.addAfter(PASS, wakeIn);
    // Nodes that came back smaller than what they reserve (an agent re-joined with less --cpu). Draining and
    // deregistered nodes are skipped: their pods are all being evicted above.
    for (const n of nodes.values()) {
      if (n.value.status !== 'Ready' || nodeUnbindReason(n.value) !== undefined) continue;
      const alloc = allocs.get(n.value.id)?.value;
      const reserved = reservedTotal(alloc);
      if (reserved.cpu <= n.value.capacity.cpu && reserved.memoryMiB <= n.value.capacity.memoryMiB) continue;
      for (const v of overcommitVictims(n.value, alloc, this.state.podsOn(n.value.id))) {
        const pod = this.state.pods.get(keyOf('pods', v.id));
        if (pod !== undefined) evict.push({ pod, reason: 'CapacityReduced' });
      }
    }
    return { unbind, evict, forceDelete };
  }

  private async preempt(
    fence: Fence,
    unschedulable: readonly Unschedulable[],
    pending: ReadonlyMap<string, Versioned<PodRecord>>,
    infos: readonly NodeInfo[],
    pods: readonly Versioned<PodRecord>[],
    /** The node records the plan was made on: the victims' eviction guards them. */
    nodes: ReadonlyMap<string, Versioned<NodeRecord>>,
    seed: string,
  ): Promise<void> {
    const running: RunningPod[] = pods
      // A pod being deleted or evicted is no victim: it leaves anyway.
      .filter((p) => p.value.status.nodeId !== null && !TERMINAL_PHASES.has(p.value.status.phase) && p.value.deletionRequested === undefined && p.value.status.eviction === undefined)
      .map((p) => ({ id: p.value.id, nodeId: p.value.status.nodeId!, cpu: p.value.spec.cpu, memoryMiB: p.value.spec.memoryMiB, priority: p.value.spec.priority }));
    // A loop, not Math.min(...): spreading 100,000s of arguments overflows the stack.
    let minPriority = Infinity;
    for (const r of running) minPriority = Math.min(minPriority, r.priority);
    const candidates = unschedulable
      .map((d) => pending.get(d.podId))
      .filter((p): p is Versioned<PodRecord> => p !== undefined && p.value.spec.priority > minPriority)
      .sort((a, b) => b.value.spec.priority - a.value.spec.priority);
    for (const p of candidates) {
      const plan = findPreemption(podRequest(p.value), infos, running, { seed });
      if (plan === undefined || plan.victims.length === 0) continue;
      const victims = plan.victims.map((id) => this.state.pods.get(keyOf('pods', id))).filter((v): v is Versioned<PodRecord> => v !== undefined);
      this.log.info({ pod: p.value.name, node: plan.nodeId, victims: victims.map((v) => v.value.name) }, 'preempting lower-priority pods');
      await this.binder.evict(fence, victims.map((pod) => ({ pod, reason: 'Preempted' as const })), nodes);
      return;
    }
  }
}
