import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { deadAfterMs, isBerthError, keyOf, prefixes, type NodeRecord, type NodeStatus } from '@berth/core';
import { commitFenced, modifiedAt, putJson, WorkQueue, type Compare, type EventRecorder, type Fence, type LeaderElector, type Op } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';

/** A status change the leader decided for one node. */
export interface NodeTransition {
  nodeId: string;
  to: NodeStatus;
  reason: string;
  /** Guards: the node record is as read, and the heartbeat is (absent|present) as read. */
  guards: Compare[];
  record: NodeRecord;
}

/**
 * When a NotReady node may be declared Dead: the grace (stretched to the
 * node's own fence budget, `deadAfterMs`) counted from the latest moment this
 * leader knows the heartbeat was already gone (the NotReady write, its own
 * term's start, the last deletion it saw), never from before the key vanished.
 */
export function nodeDeadAt(node: NodeRecord, graceMs: number, since: number): number {
  return Math.max(Date.parse(node.statusChangedAt), since) + deadAfterMs(graceMs, node.fence);
}

/**
 * Decides a node's status from its record, whether its heartbeat key exists,
 * the grace period and the time. Pure: the loop below does the I/O.
 * Returns the transition to write, or `wakeAt` when only time can change it.
 */
export function decideNodeStatus(
  node: NodeRecord,
  nodeModRevision: number,
  heartbeatPresent: boolean,
  graceMs: number,
  now: number,
  /**
   * No grace counts from before this: when the deciding leader took office
   * (each leader observes a full grace itself: clock skew, outages), or
   * later, when it last saw the heartbeat deleted (a heartbeat that came back
   * and went again before the node was seen Ready).
   */
  termStart = 0,
): { transition?: NodeTransition; wakeAt?: number } {
  const nodeKey = keyOf('nodes', node.id);
  const hbKey = keyOf('heartbeats', node.id);
  const at = new Date(now).toISOString();
  const guards = (present: boolean): Compare[] => [
    modifiedAt(nodeKey, nodeModRevision),
    present ? { key: hbKey, target: 'Create', cmp: '>', value: 0 } : { key: hbKey, target: 'Create', cmp: '==', value: 0 },
  ];
  const to = (status: NodeStatus, reason: string): NodeTransition => ({
    nodeId: node.id,
    to: status,
    reason,
    guards: guards(heartbeatPresent),
    record: { ...node, status, reason, statusChangedAt: at },
  });
  if (heartbeatPresent) {
    return node.status === 'Ready' ? {} : { transition: to('Ready', node.reason === 'Registering' || node.reason === 'Provisioning' ? 'AgentRegistered' : 'HeartbeatResumed') };
  }
  // A node being provisioned has no agent yet; the provisioner's own timeout handles it.
  if (node.reason === 'Provisioning' && node.agent.pid === 0) return {};
  if (node.status === 'Ready') return { transition: to('NotReady', node.deregisteredAt ? 'AgentDeregistered' : 'HeartbeatLost') };
  if (node.status === 'NotReady') {
    const deadAt = nodeDeadAt(node, graceMs, termStart);
    return now >= deadAt ? { transition: to('Dead', 'GracePeriodExpired') } : { wakeAt: deadAt };
  }
  return {};
}

/** Nodes per transaction: 2 guards and 2 puts (record, event) each, under etcd's default limit of 128 of either per txn. */
const BATCH = 50;

/** Transitions waiting for one transaction, and the promise of its outcome. */
interface PendingBatch {
  items: NodeTransition[];
  done: Promise<void>;
}

/**
 * Leader-only loop: heartbeat key gone -> NotReady, after the grace -> Dead,
 * heartbeat back -> Ready. Watch-driven (no polling): informer changes add
 * node ids to a work queue, grace timers add them after a delay, and a failed
 * write sends them back with per-node backoff. The queue runs up to BATCH
 * nodes at once; the transitions they decide in the same tick join one
 * fenced transaction whose guards also check each node record and heartbeat
 * as read, so a stale cache can never produce a false transition.
 */
export class NodeLifecycle {
  private fence: Fence | undefined;
  private termStart = 0;
  /** When this replica last saw each node's heartbeat key deleted: a grace never counts from before. */
  private readonly heartbeatGoneAt = new Map<string, number>();
  private readonly queue: WorkQueue<string>;
  /** The batch transitions decided in this tick join; written on the next turn of the event loop. */
  private gathering: PendingBatch | undefined;
  /** Transitions written, for tests and metrics. */
  written = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly elector: LeaderElector,
    private readonly events: EventRecorder,
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {
    this.queue = new WorkQueue<string>({
      handler: (id) => this.sync(id),
      // One transaction's worth of nodes decide at once, so their transitions share it.
      concurrency: BATCH,
      baseDelayMs: 250,
      maxDelayMs: 5000,
      // Deposed: the elector steps down and stop() follows. Anything else (etcd away) retries with backoff.
      onError: (_id, err) => (this.fence === undefined || isBerthError(err, 'LEADERSHIP_LOST') ? false : undefined),
    });
    state.nodes.on('change', (c) => {
      const nodeId = (c.item ?? c.prev)!.value.id;
      if (c.type === 'delete') this.heartbeatGoneAt.delete(nodeId);
      this.enqueue(nodeId);
    });
    state.heartbeats.on('change', (c) => {
      const nodeId = c.key.slice(prefixes.heartbeats.length);
      if (c.type === 'delete') this.heartbeatGoneAt.set(nodeId, Date.now());
      else this.heartbeatGoneAt.delete(nodeId);
      this.enqueue(nodeId);
    });
  }

  /** The moment no grace of `nodeId` may count from before. */
  private since(nodeId: string): number {
    return Math.max(this.termStart, this.heartbeatGoneAt.get(nodeId) ?? 0);
  }

  /** Starts acting for a term: every node is reconsidered. */
  start(fence: Fence): void {
    this.fence = fence;
    this.termStart = Date.now();
    for (const n of this.state.nodes.list()) this.queue.add(n.value.id);
  }

  /** Stops at once (deposed): forget queued work, grace timers and backoffs. */
  stop(): void {
    this.fence = undefined;
    this.queue.clear();
  }

  private enqueue(nodeId: string): void {
    if (this.fence !== undefined) this.queue.add(nodeId);
  }

  /** Decides one node from the caches; a transition joins the current batch and resolves once it is committed. */
  private async sync(nodeId: string): Promise<void> {
    if (this.fence === undefined) return;
    const item = this.state.nodes.get(keyOf('nodes', nodeId));
    if (item === undefined) return;
    const present = this.state.heartbeat(nodeId) !== undefined;
    const now = Date.now();
    const { transition, wakeAt } = decideNodeStatus(item.value, item.modRevision, present, this.graceMs, now, this.since(nodeId));
    if (wakeAt !== undefined) this.queue.addAfter(nodeId, wakeAt - now);
    if (transition !== undefined) await this.join(transition);
  }

  /** Adds a transition to the batch being gathered (a full one is left to be written and a new one begun). */
  private join(t: NodeTransition): Promise<void> {
    let batch = this.gathering;
    if (batch === undefined || batch.items.length >= BATCH) {
      const items: NodeTransition[] = [];
      const gathered: PendingBatch = {
        items,
        done: new Promise((resolve, reject) =>
          setImmediate(() => {
            if (this.gathering === gathered) this.gathering = undefined;
            this.write(items).then(resolve, reject);
          }),
        ),
      };
      batch = this.gathering = gathered;
    }
    batch.items.push(t);
    return batch.done;
  }

  private async ops(t: NodeTransition, term: number): Promise<Op[]> {
    const { op } = await this.events.prepare(
      {
        type: t.to === 'Ready' ? 'Normal' : 'Warning',
        reason: t.to === 'Ready' ? 'NodeReady' : t.to === 'NotReady' ? 'NodeNotReady' : 'NodeDead',
        message: `node ${t.record.name} is ${t.to}: ${t.reason}`,
        involved: { kind: 'node', id: t.nodeId },
      },
      term,
    );
    return [putJson(keyOf('nodes', t.nodeId), t.record), op];
  }

  /**
   * Writes a batch in one fenced transaction; when one stale guard fails it,
   * node by node (a node that still loses changed meanwhile, and that change
   * is on its way through the watch). Throws (LEADERSHIP_LOST, etcd away) so
   * that every node of the batch backs off in the queue.
   */
  private async write(batch: NodeTransition[]): Promise<void> {
    try {
      await this.elector.withFence(async (fence) => {
        const ops = (await Promise.all(batch.map((t) => this.ops(t, fence.term)))).flat();
        const res = await commitFenced(this.client, fence, batch.flatMap((t) => t.guards), ops);
        if (res.succeeded) return this.applied(batch);
        for (const t of batch) {
          if (this.fence !== fence) return; // deposed meanwhile: stop at once
          const one = await commitFenced(this.client, fence, t.guards, await this.ops(t, fence.term));
          if (one.succeeded) this.applied([t]);
        }
      });
    } catch (err) {
      // A revoked event lease fails every transaction carrying an event: the retry puts them on a new one.
      this.events.forgetLeaseOn(err);
      if (!isBerthError(err, 'LEADERSHIP_LOST')) this.log.warn({ err, nodes: batch.length }, 'node status write failed; retrying with backoff');
      throw err;
    }
  }

  private applied(batch: NodeTransition[]): void {
    this.written += batch.length;
    for (const t of batch) {
      this.log.info({ node: t.record.name, id: t.nodeId, status: t.to, reason: t.reason }, 'node status changed');
      if (t.to === 'NotReady') this.queue.addAfter(t.nodeId, nodeDeadAt(t.record, this.graceMs, this.since(t.nodeId)) - Date.now());
    }
  }
}
