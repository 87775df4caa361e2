import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { isBerthError, keyOf, prefixes, type NodeRecord, type NodeStatus } from '@berth/core';
import { commitFenced, modifiedAt, putJson, type Compare, type EventRecorder, type Fence, type LeaderElector, type Op } from '@berth/store';
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
  /** When the deciding leader took office: each leader observes a full grace itself (clock skew, outages). */
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
    const deadAt = Math.max(Date.parse(node.statusChangedAt), termStart) + graceMs;
    return now >= deadAt ? { transition: to('Dead', 'GracePeriodExpired') } : { wakeAt: deadAt };
  }
  return {};
}

/** Nodes per transaction: 2 guards and 2 puts each, under etcd's default limit of 128 per txn. */
const BATCH = 50;

/**
 * Leader-only loop: heartbeat key gone -> NotReady, after the grace -> Dead,
 * heartbeat back -> Ready. Watch-driven (no polling): informer changes and
 * grace timers enqueue node ids; batches of transitions are committed in one
 * fenced transaction whose guards also check the node record and the
 * heartbeat as read, so a stale cache can never produce a false transition.
 */
export class NodeLifecycle {
  private fence: Fence | undefined;
  private termStart = 0;
  private readonly queue = new Set<string>();
  /** Nodes whose write failed; they return to the queue after a backoff, not at once. */
  private readonly retryIds = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private draining = false;
  private retryTimer: NodeJS.Timeout | undefined;
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
    state.nodes.on('change', (c) => this.enqueue((c.item ?? c.prev)!.value.id));
    state.heartbeats.on('change', (c) => this.enqueue(c.key.slice(prefixes.heartbeats.length)));
  }

  /** Starts acting for a term: every node is reconsidered. */
  start(fence: Fence): void {
    this.fence = fence;
    this.termStart = Date.now();
    for (const n of this.state.nodes.list()) this.queue.add(n.value.id);
    this.kick();
  }

  /** Stops at once (deposed): forget queued work and timers. */
  stop(): void {
    this.fence = undefined;
    this.queue.clear();
    this.retryIds.clear();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    clearTimeout(this.retryTimer);
  }

  private enqueue(nodeId: string): void {
    if (this.fence === undefined) return;
    this.queue.add(nodeId);
    this.kick();
  }

  private kick(): void {
    if (this.draining || this.fence === undefined) return;
    this.draining = true;
    // Let a burst of watch events coalesce into one batch.
    setImmediate(() =>
      void this.drain().finally(() => {
        this.draining = false;
        if (this.queue.size > 0) this.kick();
      }),
    );
  }

  private async drain(): Promise<void> {
    while (this.queue.size > 0 && this.fence !== undefined) {
      const now = Date.now();
      const batch: NodeTransition[] = [];
      for (const id of this.queue) {
        this.queue.delete(id);
        const item = this.state.nodes.get(keyOf('nodes', id));
        if (item === undefined) continue;
        const present = this.state.heartbeat(id) !== undefined;
        const { transition, wakeAt } = decideNodeStatus(item.value, item.modRevision, present, this.graceMs, now, this.termStart);
        if (wakeAt !== undefined) this.wakeAt(id, wakeAt);
        if (transition) batch.push(transition);
        if (batch.length >= BATCH) break;
      }
      if (batch.length > 0 && !(await this.write(batch))) return;
    }
  }

  private wakeAt(nodeId: string, at: number): void {
    clearTimeout(this.timers.get(nodeId));
    this.timers.set(
      nodeId,
      setTimeout(() => {
        this.timers.delete(nodeId);
        this.enqueue(nodeId);
      }, Math.max(0, at - Date.now())),
    );
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

  /** Writes a batch; false when it failed and the loop must back off. */
  private async write(batch: NodeTransition[]): Promise<boolean> {
    try {
      await this.elector.withFence(async (fence) => {
        const ops = (await Promise.all(batch.map((t) => this.ops(t, fence.term)))).flat();
        const res = await commitFenced(this.client, fence, batch.flatMap((t) => t.guards), ops);
        if (res.succeeded) return this.applied(batch);
        // One stale guard fails the whole batch: write them one by one; the losers are re-enqueued by their watch events.
        for (const t of batch) {
          if (this.fence !== fence) return; // deposed meanwhile: stop at once
          const one = await commitFenced(this.client, fence, t.guards, await this.ops(t, fence.term));
          if (one.succeeded) this.applied([t]);
        }
      });
      return true;
    } catch (err) {
      if (isBerthError(err, 'LEADERSHIP_LOST')) return false; // the elector steps down
      this.log.warn({ err: err instanceof Error ? err.message : String(err), nodes: batch.length }, 'node status write failed; retrying in 500 ms');
      for (const t of batch) this.retryIds.add(t.nodeId);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        for (const id of this.retryIds) this.queue.add(id);
        this.retryIds.clear();
        this.kick();
      }, 500);
      return false;
    }
  }

  private applied(batch: NodeTransition[]): void {
    this.written += batch.length;
    for (const t of batch) {
      this.log.info({ node: t.record.name, id: t.nodeId, status: t.to, reason: t.reason }, 'node status changed');
      if (t.to === 'NotReady') this.wakeAt(t.nodeId, Math.max(Date.parse(t.record.statusChangedAt), this.termStart) + this.graceMs);
    }
  }
}
