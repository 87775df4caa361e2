import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { BerthError, errors, isBerthError, keyOf, newId, podSpecFromRequest, TERMINAL_PHASES, type CreatePodRequest, type PodAction, type PodRecord } from '@berth/core';
import { PodRepository, type EventRecorder, type Versioned } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';

/** Lifecycle actions of `POST /v1/pods/:id/<action>`. */
export type { PodAction } from '@berth/core';

/** How often a user write is decided again after losing a compare-and-swap. */
const MAX_ATTEMPTS = 10;

/**
 * User intent on pods, written by whichever replica got the request through
 * the pod repository (compare-and-swap, checked against the user's fields
 * and the transition table): create (claiming the name in the same txn),
 * desired-state actions, restart requests, and delete. Never the binding or
 * the phase: those are the leader's and the agent's.
 *
 * Each write is decided from the watch cache; when its compare-and-swap
 * loses, the cache is brought up to the revision etcd reported and the
 * decision is made again, so a stale cache costs a retry, never a wrong write.
 */
export class PodService {
  private readonly repo: PodRepository;

  constructor(
    client: Etcd3,
    private readonly state: ClusterState,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {
    this.repo = new PodRepository(client);
  }

  /** Creates a Pending pod; CONFLICT if the name is taken. */
  async create(req: CreatePodRequest): Promise<PodRecord> {
    if (req.image === undefined && req.command === undefined) {
      throw errors.validation('body/command: give a command (process runtime) or an image (docker runtime)', { field: 'body/command' });
    }
    const pod: PodRecord = {
      id: newId(),
      name: req.name,
      spec: podSpecFromRequest(req),
      desired: 'running',
      status: { phase: 'Pending', nodeId: null, reason: 'Created', message: 'waiting for the scheduler', restarts: 0, startedAt: null, finishedAt: null },
      createdAt: new Date().toISOString(),
    };
    const revision = await this.repo.create(pod);
    // The write is done; if the cache lags (etcd just went away) answer with what was written.
    return (await this.state.pods.waitForRevision(revision)) ? (this.state.pods.get(keyOf('pods', pod.id))?.value ?? pod) : pod;
  }

  /**
   * Applies a lifecycle action by changing what the user wants; the agent
   * converges. A restart of a finished pod only records the request: the
   * leader sees it is newer than the pod's end and sends the pod back to the
   * scheduler (a finished pod holds no reservation, so only a fenced
   * binding may place it again). The answer is the record as written.
   */
  async act(idOrName: string, action: PodAction): Promise<PodRecord> {
    const reason = `Pod${action[0]!.toUpperCase()}${action.slice(1)}Requested`;
    return this.write(idOrName, reason, (p) => {
      if (p.deletionRequested) throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is being deleted`);
      const phase = p.status.phase;
      switch (action) {
        case 'stop':
          return { ...p, desired: 'stopped' };
        case 'start':
          return { ...p, desired: 'running' };
        case 'pause':
          if (phase !== 'Running' && phase !== 'Paused') {
            throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is ${phase}; only a Running pod can be paused`);
          }
          return { ...p, desired: 'paused' };
        case 'resume':
          if (p.desired !== 'paused') throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is not paused (desired ${p.desired})`);
          return { ...p, desired: 'running' };
        case 'restart':
          if (p.status.nodeId === null) throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is ${phase}: not bound to a node yet, nothing to restart`);
          return { ...p, desired: 'running', restartRequestedAt: new Date().toISOString() };
      }
    });
  }

  /**
   * Deletes a pod: at once when no agent holds it (Pending, or its node is
   * gone), else by marking it so its agent removes the container first.
   */
  async remove(idOrName: string): Promise<PodRecord> {
    return this.retrying(idOrName, async (cur) => {
      const p = cur.value;
      const nodeGone = p.status.nodeId !== null && this.state.nodes.get(keyOf('nodes', p.status.nodeId)) === undefined;
      if (p.status.nodeId === null || nodeGone) {
        await this.state.pods.waitForRevision(await this.repo.delete('user', cur, { nodeGone }));
        return p;
      }
      if (p.deletionRequested) return p;
      return this.written(await this.repo.update('user', cur, { ...p, deletionRequested: new Date().toISOString() }));
    });
  }

  /** Writes `change(current)` and records an audit event; answers the record as written. */
  private write(idOrName: string, reason: string, change: (p: PodRecord) => PodRecord): Promise<PodRecord> {
    return this.retrying(idOrName, async (cur) => {
      const next = change(cur.value);
      const written = await this.written(await this.repo.update('user', cur, next));
      void this.events
        .record({ type: 'Normal', reason, message: `pod ${next.name}: ${reason}`, involved: { kind: 'pod', id: next.id } })
        .catch((err: unknown) => this.log.warn({ err, pod: next.id, reason }, 'could not record event'));
      return written;
    });
  }

  /** Waits for the cache to hold a write (read-your-writes), then answers the record from it. */
  private async written(w: Versioned<PodRecord>): Promise<PodRecord> {
    await this.state.pods.waitForRevision(w.modRevision);
    const cached = this.state.pods.get(w.key);
    return cached !== undefined && cached.modRevision >= w.modRevision ? cached.value : w.value;
  }

  /**
   * Runs `attempt` on the cached pod; when its compare-and-swap loses
   * (CONFLICT with the store's revision), catches the cache up to that
   * revision and runs it again on what it then holds.
   */
  private async retrying(idOrName: string, attempt: (cur: Versioned<PodRecord>) => Promise<PodRecord>): Promise<PodRecord> {
    const id = this.state.pod(idOrName).value.id;
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const cur = this.state.pods.get(keyOf('pods', id));
      if (cur === undefined) throw errors.notFound('pod', idOrName);
      try {
        return await attempt(cur);
      } catch (err) {
        if (!isBerthError(err, 'CONFLICT')) throw err;
        const revision = (err.details as { revision?: unknown } | undefined)?.revision;
        if (typeof revision !== 'number' || !(await this.state.pods.waitForRevision(revision))) throw err;
      }
    }
    throw errors.conflict(`pod ${idOrName} is changing too fast; try again`);
  }
}

