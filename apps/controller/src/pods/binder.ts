import type { Logger } from 'pino';
import { keyOf, TERMINAL_PHASES, type AllocationRecord, type EvictionReason, type NodeRecord, type PodRecord } from '@berth/core';
import { absent, modifiedAt, putJson, type EventRecorder, type FencedPodBatch, type Fence, type PodRepository, type Versioned } from '@berth/store';
import { reservationFor, type Decision } from '@berth/scheduler';
import type { ClusterState } from '../cluster-state.js';
import { evictedRecord, unboundRecord, type UnbindReason } from './placement.js';

/** Pods per transaction: each costs a guard and a put, plus one of each per touched node (etcd allows 128 ops). */
const BATCH = 40;
/** Releases per transaction: one guard each, plus the fence and the reservation record, under etcd's 128 compares. */
const MAX_RELEASES = 100;

/** A bound pod to mark for eviction, and why. */
export interface Evict {
  pod: Versioned<PodRecord>;
  reason: EvictionReason;
}

/** A bound pod to send back to Pending, and why. */
export interface Unbind {
  pod: Versioned<PodRecord>;
  reason: UnbindReason;
}

/** Reservation records by node id, as read (and as this pass has rewritten them). */
export type Reservations = Map<string, Versioned<AllocationRecord>>;

/**
 * A fenced write lost a compare-and-swap: a pod or a reservation changed
 * after the cache the decision was made on. Not a failure of etcd. Deciding
 * again at once would read the same stale cache; the change that won is on
 * its way through the watch (and its event asks for a pass), so the queue
 * retries only after a backoff. (`ClusterState.caughtUp(revision)` could wait
 * for exactly that instead; the backoff is simpler and costs a lost race at
 * most 100 ms, doubling only while races keep being lost.)
 */
export class RaceLost extends Error {
  override readonly name = 'RaceLost';

  constructor(
    /** The store's revision when the write failed. */
    readonly revision: number,
  ) {
    super(`a pod or reservation changed before revision ${revision}`);
  }
}

/**
 * Every write of the leader's scheduling loop, each a fenced transaction
 * through the pod repository (which checks it is a binding, an unbinding or
 * a Pending pod's reason). A node's reservation record is guarded and
 * rewritten in the same transaction as the pods it gains or loses, so no race
 * can overcommit a node or reserve a pod twice.
 */
export class PodBinder {
  /** Pods bound since this replica started, for metrics. */
  bound = 0;

  constructor(
    private readonly repo: PodRepository,
    private readonly state: ClusterState,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {}

  /**
   * Sends pods back to Pending and deletes marked pods whose agent is gone,
   * releasing their reservations in the same transactions, in chunks per node
   * and reason (one event each). Each transaction also guards the node
   * record as `nodes` shows it (what the decision was made on: its state for
   * a dead, drained or removed node, its capacity for a preemption), so a
   * stale cache cannot take pods off a node that is Ready again.
   */
  async unbind(
    fence: Fence,
    unbind: readonly Unbind[],
    forceDelete: readonly Versioned<PodRecord>[],
    allocs: Reservations,
    nodes: ReadonlyMap<string, Versioned<NodeRecord>>,
  ): Promise<void> {
    const groups = new Map<string, { nodeId: string; why: UnbindReason | 'Deleted'; items: Array<{ pod: Versioned<PodRecord>; next?: PodRecord }> }>();
    const add = (nodeId: string, why: UnbindReason | 'Deleted', item: { pod: Versioned<PodRecord>; next?: PodRecord }) => {
      const key = `${nodeId}\u0000${why}`;
      const group = groups.get(key) ?? { nodeId, why, items: [] };
      group.items.push(item);
      groups.set(key, group);
    };
    for (const { pod, reason } of unbind) add(pod.value.status.nodeId!, reason, { pod, next: unboundRecord(pod.value, reason) });
    for (const pod of forceDelete) add(pod.value.status.nodeId!, 'Deleted', { pod });

    for (const { nodeId, why, items } of groups.values()) {
      for (let i = 0; i < items.length; i += BATCH) {
        const chunk = items.slice(i, i + BATCH);
        const batch = this.repo.fenced(fence);
        for (const c of chunk) {
          if (c.next) batch.put(c.pod, c.next);
          else batch.delete(c.pod);
        }
        const node = nodes.get(nodeId);
        const nodeKey = keyOf('nodes', nodeId);
        batch.guard(node === undefined ? absent(nodeKey) : modifiedAt(nodeKey, node.modRevision));
        const alloc = allocs.get(nodeId);
        const released = alloc === undefined ? [] : chunk.filter((c) => alloc.value.pods[c.pod.value.id] !== undefined);
        let remaining: AllocationRecord['pods'] = {};
        if (alloc !== undefined && released.length > 0) {
          remaining = { ...alloc.value.pods };
          for (const c of released) delete remaining[c.pod.value.id];
          writeReservations(batch, nodeId, alloc.modRevision, remaining);
        }
        const res = await batch.commit();
        if (!res.succeeded) throw new RaceLost(res.revision);
        if (alloc !== undefined && released.length > 0) allocs.set(nodeId, { ...alloc, value: { nodeId, pods: remaining }, modRevision: res.revision });
        await this.state.pods.waitForRevision(res.revision);
        const names = chunk.map((c) => c.pod.value.name);
        this.log.info({ node: nodeId, reason: why, pods: names }, why === 'RestartRequested' ? 'finished pods sent back to the scheduler to run again' : 'pods taken off a node');
        void this.events
          .recordFenced(fence, {
            type: why === 'RestartRequested' ? 'Normal' : 'Warning',
            reason: why === 'RestartRequested' ? 'PodsRestarting' : 'PodsRescheduled',
            message: `${chunk.length} pod(s) left node ${nodeId} (${why}): ${names.join(', ')}`,
            involved: { kind: 'node', id: nodeId },
          })
          .catch((err: unknown) => this.log.debug({ err }, 'could not record the event'));
      }
    }
  }

  /**
   * Marks pods for eviction, in chunks per node (one event each), each chunk
   * guarding the node record as decided on. Nothing else changes: the pods
   * keep their node and reservation until their agent has stopped them, and
   * a later pass unbinds them (boundPodAction).
   */
  async evict(fence: Fence, evict: readonly Evict[], nodes: ReadonlyMap<string, Versioned<NodeRecord>>): Promise<void> {
    const byNode = new Map<string, Evict[]>();
    for (const e of evict) {
      const list = byNode.get(e.pod.value.status.nodeId!) ?? [];
      list.push(e);
      byNode.set(e.pod.value.status.nodeId!, list);
    }
    const now = Date.now();
    for (const [nodeId, all] of byNode) {
      for (let i = 0; i < all.length; i += BATCH) {
        const chunk = all.slice(i, i + BATCH);
        const batch = this.repo.fenced(fence);
        for (const e of chunk) batch.put(e.pod, evictedRecord(e.pod.value, e.reason, now));
        const node = nodes.get(nodeId);
        const nodeKey = keyOf('nodes', nodeId);
        batch.guard(node === undefined ? absent(nodeKey) : modifiedAt(nodeKey, node.modRevision));
        const res = await batch.commit();
        if (!res.succeeded) throw new RaceLost(res.revision);
        await this.state.pods.waitForRevision(res.revision);
        const names = chunk.map((e) => `${e.pod.value.name} (${e.reason})`);
        this.log.info({ node: nodeId, pods: names }, 'evicting pods: their agent stops them, then they are rescheduled');
        void this.events
          .recordFenced(fence, {
            type: 'Normal',
            reason: 'PodsEvicting',
            message: `${chunk.length} pod(s) being evicted from node ${nodeId}: ${names.join(', ')}`,
            involved: { kind: 'node', id: nodeId },
          })
          .catch((err: unknown) => this.log.debug({ err }, 'could not record the event'));
      }
    }
  }

  /**
   * Releases reservations of pods that are gone, finished or bound elsewhere;
   * true when it wrote. Each release is guarded on the pod record as the
   * cache shows it (its revision, or its absence): the reservation and pod
   * caches follow separate watches, and a pods cache behind the reservations
   * must not free the reservation of a pod that was just bound and runs.
   */
  async releaseStale(fence: Fence, allocs: Reservations): Promise<boolean> {
    let wrote = false;
    for (const [nodeId, a] of allocs) {
      const stale = Object.keys(a.value.pods)
        .filter((podId) => !holdsReservation(this.state.pods.get(keyOf('pods', podId))?.value, nodeId))
        .slice(0, MAX_RELEASES);
      if (stale.length === 0) continue;
      const kept = Object.fromEntries(Object.entries(a.value.pods).filter(([podId]) => !stale.includes(podId)));
      // (A removed node's record goes away with its last reservation.)
      const batch = writeReservations(this.repo.fenced(fence), nodeId, a.modRevision, kept);
      for (const podId of stale) {
        const key = keyOf('pods', podId);
        const cached = this.state.pods.get(key);
        batch.guard(cached === undefined ? absent(key) : modifiedAt(key, cached.modRevision));
      }
      const res = await batch.commit();
      if (!res.succeeded) throw new RaceLost(res.revision);
      await this.state.allocations.waitForRevision(res.revision);
      wrote = true;
    }
    return wrote;
  }

  /**
   * Reserves what bound, running pods hold without a reservation, which
   * should never happen (every binding writes its reservation in the same
   * transaction): logged as an error and recorded as a Warning event when it
   * does, because the node's free capacity was overstated until then. Guarded
   * on the reservation record and each pod as read, so a cache that lags
   * (pods ahead of reservations) loses the race instead of reserving twice.
   * True when it wrote.
   */
  async reserveMissing(fence: Fence, pods: readonly Versioned<PodRecord>[], allocs: Reservations): Promise<boolean> {
    const missing = new Map<string, Versioned<PodRecord>[]>();
    for (const p of pods) {
      const nodeId = p.value.status.nodeId;
      if (nodeId === null || !holdsReservation(p.value, nodeId) || allocs.get(nodeId)?.value.pods[p.value.id] !== undefined) continue;
      const list = missing.get(nodeId) ?? [];
      list.push(p);
      missing.set(nodeId, list);
    }
    for (const [nodeId, all] of missing) {
      const chunk = all.slice(0, MAX_RELEASES);
      const a = allocs.get(nodeId);
      const key = keyOf('allocations', nodeId);
      const reserved: AllocationRecord['pods'] = { ...(a?.value.pods ?? {}) };
      for (const p of chunk) reserved[p.value.id] = reservationFor(p.value.spec);
      const batch = this.repo.fenced(fence).guard(a === undefined ? absent(key) : modifiedAt(key, a.modRevision)).op(putJson(key, { nodeId, pods: reserved } satisfies AllocationRecord));
      for (const p of chunk) batch.guard(modifiedAt(p.key, p.modRevision));
      const res = await batch.commit();
      if (!res.succeeded) throw new RaceLost(res.revision);
      const names = chunk.map((p) => p.value.name);
      this.log.error({ node: nodeId, pods: names }, 'bound pods had no reservation: reserved them now (a binding always writes one; this is a bug)');
      void this.events
        .recordFenced(fence, { type: 'Warning', reason: 'ReservationRepaired', message: `${chunk.length} pod(s) bound to node ${nodeId} had no reservation: ${names.join(', ')}`, involved: { kind: 'node', id: nodeId } })
        .catch((err: unknown) => this.log.debug({ err }, 'could not record the event'));
      await this.state.allocations.waitForRevision(res.revision);
      return true;
    }
    return false;
  }

  /**
   * Binds the scheduler's `bound` decisions in chunks; each chunk also
   * rewrites the reservation record of every node it touches, guarded on the
   * revision read (or on its absence), then on the revision this pass wrote.
   */
  async bind(
    fence: Fence,
    binds: ReadonlyArray<Extract<Decision, { kind: 'bound' }>>,
    pods: ReadonlyMap<string, Versioned<PodRecord>>,
    allocs: Reservations,
    nodes: ReadonlyMap<string, Versioned<NodeRecord>>,
  ): Promise<void> {
    // Reservation records as this pass has changed them so far (value and the revision to guard on).
    const working = new Map<string, { pods: AllocationRecord['pods']; rev: number | undefined }>();
    for (let i = 0; i < binds.length; i += BATCH) {
      const chunk = binds.slice(i, i + BATCH);
      const batch = this.repo.fenced(fence);
      const touched = new Set<string>();
      for (const d of chunk) {
        const pod = pods.get(d.podId)!;
        const nodeName = nodes.get(d.nodeId)?.value.name ?? d.nodeId;
        batch.put(pod, {
          ...pod.value,
          status: { ...pod.value.status, phase: 'Scheduled', nodeId: d.nodeId, reason: 'Scheduled', message: `bound to ${nodeName} (score ${d.score})` },
        });
        let w = working.get(d.nodeId);
        if (w === undefined) {
          const a = allocs.get(d.nodeId);
          w = { pods: { ...(a?.value.pods ?? {}) }, rev: a?.modRevision };
          working.set(d.nodeId, w);
        }
        w.pods[d.podId] = reservationFor(pod.value.spec);
        touched.add(d.nodeId);
      }
      for (const nodeId of touched) {
        const { pods: reserved, rev } = working.get(nodeId)!;
        const key = keyOf('allocations', nodeId);
        batch.guard(rev === undefined ? absent(key) : modifiedAt(key, rev)).op(putJson(key, { nodeId, pods: reserved } satisfies AllocationRecord));
        // The node as decided on: a stale cache cannot bind onto a node that is cordoned, draining, dead or gone by now.
        const node = nodes.get(nodeId);
        batch.guard(node === undefined ? absent(keyOf('nodes', nodeId)) : modifiedAt(keyOf('nodes', nodeId), node.modRevision));
      }
      const res = await batch.commit();
      if (!res.succeeded) throw new RaceLost(res.revision);
      for (const nodeId of touched) working.get(nodeId)!.rev = res.revision;
      this.bound += chunk.length;
      this.log.debug({ pods: chunk.length, revision: res.revision }, 'pods bound');
      await Promise.all([this.state.pods.waitForRevision(res.revision), this.state.allocations.waitForRevision(res.revision)]);
    }
  }

  /**
   * Writes why pods fit nowhere, only where it changed. Chunks share a
   * transaction; a chunk that loses a race is written pod by pod, and a pod
   * that still loses changed meanwhile: its watch event brings another pass.
   */
  async explain(fence: Fence, unschedulable: ReadonlyArray<Extract<Decision, { kind: 'unschedulable' }>>, pods: ReadonlyMap<string, Versioned<PodRecord>>): Promise<void> {
    const changed: Array<{ pod: Versioned<PodRecord>; next: PodRecord }> = [];
    for (const d of unschedulable) {
      const pod = pods.get(d.podId);
      if (pod === undefined || (pod.value.status.reason === 'Unschedulable' && pod.value.status.message === d.message)) continue;
      changed.push({ pod, next: { ...pod.value, status: { ...pod.value.status, reason: 'Unschedulable', message: d.message } } });
    }
    for (let i = 0; i < changed.length; i += BATCH) {
      const chunk = changed.slice(i, i + BATCH);
      const batch = this.repo.fenced(fence);
      for (const c of chunk) batch.put(c.pod, c.next);
      if ((await batch.commit()).succeeded || chunk.length === 1) continue;
      for (const c of chunk) await this.repo.fenced(fence).put(c.pod, c.next).commit();
    }
  }
}

/** True while `pod` (as cached) still holds its reservation on `nodeId`: bound there and not finished. */
function holdsReservation(pod: PodRecord | undefined, nodeId: string): boolean {
  return pod !== undefined && pod.status.nodeId === nodeId && !TERMINAL_PHASES.has(pod.status.phase);
}

/** Guards a node's reservation record at `rev` and rewrites it with `pods` (deleted when none are left). */
function writeReservations(batch: FencedPodBatch, nodeId: string, rev: number, pods: AllocationRecord['pods']): FencedPodBatch {
  const key = keyOf('allocations', nodeId);
  return batch.guard(modifiedAt(key, rev)).op(Object.keys(pods).length === 0 ? { type: 'delete', key } : putJson(key, { nodeId, pods } satisfies AllocationRecord));
}
