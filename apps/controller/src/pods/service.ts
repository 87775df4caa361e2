import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  BerthError,
  errors,
  isBerthError,
  keyOf,
  nameKey,
  newId,
  podSpecFromRequest,
  TERMINAL_PHASES,
  type CreatePodRequest,
  type DesiredState,
  type PodRecord,
} from '@berth/core';
import { absent, commit, modifiedAt, putJson, Repository, type EventRecorder } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';

/** Lifecycle actions of `POST /v1/pods/:id/<action>`. */
export type PodAction = 'stop' | 'start' | 'pause' | 'resume' | 'restart';

/**
 * User intent on pods, written by whichever replica got the request, straight
 * to etcd with compare-and-swap: create (claiming the name in the same txn),
 * desired-state actions, and delete. Never the binding or the phase: those are
 * the leader's and the agent's.
 */
export class PodService {
  private readonly repo: Repository<PodRecord>;

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {
    this.repo = new Repository<PodRecord>(client, 'pods', 'pod');
  }

  /** Creates a Pending pod; CONFLICT if the name is taken. */
  async create(req: CreatePodRequest): Promise<PodRecord> {
    if (req.image === undefined && req.command === undefined) {
      throw errors.validation('body/command: give a command (process runtime) or an image (docker runtime)', { field: 'body/command' });
    }
    const id = newId();
    const pod: PodRecord = {
      id,
      name: req.name,
      spec: podSpecFromRequest(req),
      desired: 'running',
      status: { phase: 'Pending', nodeId: null, reason: 'Created', message: 'waiting for the scheduler', restarts: 0, startedAt: null, finishedAt: null },
      createdAt: new Date().toISOString(),
    };
    const podKey = keyOf('pods', id);
    const indexKey = nameKey('pods', req.name);
    const res = await commit(this.client, [absent(indexKey), absent(podKey)], [putJson(indexKey, id), putJson(podKey, pod)]);
    if (!res.succeeded) throw errors.conflict(`a pod named ${JSON.stringify(req.name)} already exists`, { field: 'body/name' });
    // The write is done; if the cache lags (etcd just went away) answer with what was written.
    return (await this.state.pods.waitForRevision(res.revision)) ? this.state.pod(id).value : pod;
  }

  /** Applies a lifecycle action by changing what the user wants; the agent converges. */
  async act(idOrName: string, action: PodAction): Promise<PodRecord> {
    return this.update(idOrName, (p) => {
      if (p.deletionRequested) throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is being deleted`);
      const phase = p.status.phase;
      switch (action) {
        case 'stop':
          return { ...p, desired: 'stopped' as DesiredState };
        case 'start':
          return { ...p, desired: 'running' as DesiredState };
        case 'pause':
          if (phase !== 'Running' && phase !== 'Paused') {
            throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is ${phase}; only a Running pod can be paused`);
          }
          return { ...p, desired: 'paused' as DesiredState };
        case 'resume':
          if (p.desired !== 'paused') throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is not paused (desired ${p.desired})`);
          return { ...p, desired: 'running' as DesiredState };
        case 'restart':
          if (p.status.nodeId === null) throw new BerthError('INVALID_TRANSITION', `pod ${p.name} is ${phase}: not bound to a node yet, nothing to restart`);
          if (TERMINAL_PHASES.has(phase)) {
            // A finished pod holds no reservation any more: it goes back to the scheduler, which reserves again.
            return {
              ...p,
              desired: 'running' as DesiredState,
              status: { ...p.status, phase: 'Pending' as const, nodeId: null, reason: 'RestartRequested', message: `was ${phase} on node ${p.status.nodeId}`, startedAt: null },
            };
          }
          return { ...p, desired: 'running' as DesiredState, restartRequestedAt: new Date().toISOString() };
      }
    }, `Pod${action[0]!.toUpperCase()}${action.slice(1)}Requested`);
  }

  /**
   * Deletes a pod: at once when no agent holds it (Pending, or its node is
   * gone), else by marking it so its agent removes the container first.
   */
  async remove(idOrName: string): Promise<PodRecord> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const cached = this.state.pod(idOrName);
      const cur = await this.repo.get(cached.value.id);
      if (cur === undefined) throw errors.notFound('pod', idOrName);
      const p = cur.value;
      const node = p.status.nodeId === null ? undefined : this.state.nodes.get(keyOf('nodes', p.status.nodeId))?.value;
      const key = keyOf('pods', p.id);
      if (p.status.nodeId === null || node === undefined) {
        const res = await commit(this.client, [modifiedAt(key, cur.modRevision)], [{ type: 'delete', key }, { type: 'delete', key: nameKey('pods', p.name) }]);
        if (!res.succeeded) continue;
        await this.state.pods.waitForRevision(res.revision);
        return p;
      }
      if (p.deletionRequested) return p;
      const next = { ...p, deletionRequested: new Date().toISOString() };
      const res = await commit(this.client, [modifiedAt(key, cur.modRevision)], [putJson(key, next)]);
      if (!res.succeeded) continue;
      await this.state.pods.waitForRevision(res.revision);
      return this.state.pods.get(key)?.value ?? next;
    }
    throw errors.conflict(`pod ${idOrName} kept changing; try again`);
  }

  private async update(idOrName: string, change: (p: PodRecord) => PodRecord, reason: string): Promise<PodRecord> {
    const id = this.state.pod(idOrName).value.id;
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await this.repo.get(id);
      if (cur === undefined) throw errors.notFound('pod', idOrName);
      const next = change(cur.value);
      try {
        const rev = await this.repo.update(id, next, cur.modRevision);
        await this.state.pods.waitForRevision(rev);
        void this.events
          .record({ type: 'Normal', reason, message: `pod ${next.name}: ${reason}`, involved: { kind: 'pod', id } })
          .catch((err: unknown) => this.log.warn({ err: String(err) }, 'could not record event'));
        return this.state.pods.get(keyOf('pods', id))?.value ?? next;
      } catch (err) {
        if (!isBerthError(err, 'CONFLICT')) throw err;
      }
    }
    throw errors.conflict(`pod ${idOrName} is changing too fast; try again`);
  }
}
