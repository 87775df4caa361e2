import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  errors,
  isBerthError,
  keyOf,
  nameKey,
  newId,
  type NodeRecord,
  type ProvisionNodeRequest,
  type RuntimeKind,
} from '@berth/core';
import { absent, commit, modifiedAt, putJson, Repository, toBerthError, type EventRecorder } from '@berth/store';
import type { ClusterState, NodeView } from '../cluster-state.js';
import type { NodeProvisioner } from './provisioner.js';

/** How long `POST /v1/nodes` waits for the new agent to register. */
const DEFAULT_PROVISION_TIMEOUT_MS = 30_000;

/**
 * User intent on nodes, written by whichever replica got the request:
 * cordon/uncordon/drain/delete are compare-and-swap updates of the node
 * record (retried on conflicts), provisioning claims the name atomically
 * before anything is started and removes everything again on failure.
 */
export class NodeService {
  private readonly repo: Repository<NodeRecord>;

  constructor(
    private readonly client: Etcd3,
    private readonly state: ClusterState,
    private readonly provisioner: NodeProvisioner,
    private readonly events: EventRecorder,
    private readonly etcdEndpoints: string[],
    private readonly log: Logger,
    private readonly provisionTimeoutMs = DEFAULT_PROVISION_TIMEOUT_MS,
    /** Whether a leader exists to mark the new node Ready. */
    private readonly hasLeader: () => boolean = () => false,
    /** etcd credential flags of the agents provisioned (`--node-etcd-user`, ...). */
    private readonly agentEtcdArgs: string[] = [],
  ) {
    this.repo = new Repository<NodeRecord>(client, 'nodes', 'node');
  }

  /** Applies `change` to the node's current record with CAS, retrying on conflicts; answers the new view. */
  async update(idOrName: string, change: (n: NodeRecord) => NodeRecord, reason: string): Promise<NodeView> {
    const id = this.state.node(idOrName).value.id;
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await this.repo.get(id);
      if (cur === undefined) throw errors.notFound('node', idOrName);
      const next = change(cur.value);
      if (JSON.stringify(next) === JSON.stringify(cur.value)) return this.state.nodeView(cur.value);
      try {
        const rev = await this.repo.update(id, next, cur.modRevision);
        await this.state.nodes.waitForRevision(rev);
        void this.record(reason, next, `node ${next.name}: ${reason}`);
        return this.state.nodeView(this.state.node(id).value);
      } catch (err) {
        if (!isBerthError(err, 'CONFLICT')) throw err;
      }
    }
    throw errors.conflict(`node ${idOrName} is changing too fast; try again`);
  }

  cordon(idOrName: string): Promise<NodeView> {
    return this.update(idOrName, (n) => ({ ...n, cordoned: true }), 'NodeCordoned');
  }

  uncordon(idOrName: string): Promise<NodeView> {
    return this.update(idOrName, (n) => ({ ...n, cordoned: false, draining: false }), 'NodeUncordoned');
  }

  /** Cordons the node and marks it draining: the scheduler moves its pods elsewhere. */
  drain(idOrName: string): Promise<NodeView> {
    return this.update(idOrName, (n) => ({ ...n, cordoned: true, draining: true }), 'NodeDraining');
  }

  /**
   * Drains, then removes the node: its record, its name, its heartbeat, and
   * the container or process that was provisioned for it.
   */
  async remove(idOrName: string): Promise<NodeView> {
    const drained = await this.drain(idOrName);
    // With a leader, its scheduler moves the pods off; wait for that before the node vanishes.
    if (this.hasLeader()) await this.waitEmpty(drained.id, this.provisionTimeoutMs);
    const cur = this.state.node(drained.id);
    if (cur.value.provisioner) await this.provisioner.remove(cur.value.provisioner);
    const nodeKey = keyOf('nodes', drained.id);
    // The agent we just stopped may still be writing its deregistration: retry the CAS on fresh reads.
    for (let attempt = 0; ; attempt++) {
      const now = await this.repo.get(drained.id);
      if (now === undefined) break;
      const res = await commit(
        this.client,
        [modifiedAt(nodeKey, now.modRevision)],
        [
          { type: 'delete', key: nodeKey },
          { type: 'delete', key: nameKey('nodes', drained.name) },
          { type: 'delete', key: keyOf('heartbeats', drained.id) },
          { type: 'delete', key: keyOf('nodeCreds', drained.id) },
        ],
      );
      if (res.succeeded) {
        await this.state.nodes.waitForRevision(res.revision);
        break;
      }
      if (attempt >= 10) throw errors.conflict(`node ${idOrName} kept changing while being removed; try again`);
    }
    void this.record('NodeRemoved', cur.value, `node ${cur.value.name} removed`);
    return drained;
  }

  /**
   * Provisions a node: claims the name with a placeholder record (status
   * NotReady, reason Provisioning), starts the agent, and answers once the
   * agent registered and heartbeats. On timeout it removes what it started
   * and the placeholder, then throws TIMEOUT (504).
   */
  async provision(req: ProvisionNodeRequest): Promise<NodeView> {
    const name = req.name ?? `node-${newId().slice(0, 6)}`;
    const id = newId();
    const now = new Date().toISOString();
    const runtime = (req.runtime ?? 'process') as RuntimeKind;
    const resources = { cpu: req.cpu, memoryMiB: req.memoryMiB ?? 512 };
    const placeholder: NodeRecord = {
      id,
      name,
      labels: req.labels ?? {},
      runtime,
      address: '',
      capacity: resources,
      status: 'NotReady',
      reason: 'Provisioning',
      statusChangedAt: now,
      cordoned: false,
      draining: false,
      registeredAt: now,
      agent: { hostname: '', pid: 0, startedAt: now, version: '' },
    };
    const indexKey = nameKey('nodes', name);
    const nodeKey = keyOf('nodes', id);
    const claim = await commit(this.client, [absent(indexKey)], [putJson(indexKey, id), putJson(nodeKey, placeholder)]);
    if (!claim.succeeded) throw errors.conflict(`a node named ${JSON.stringify(name)} already exists`, { field: 'body/name' });
    await this.state.nodes.waitForRevision(claim.revision);

    let started;
    try {
      started = await this.provisioner.launch({ nodeId: id, name, resources, runtime, labels: req.labels ?? {}, etcd: this.etcdEndpoints, etcdArgs: this.agentEtcdArgs });
      await this.update(id, (n) => ({ ...n, provisioner: started! }), 'NodeProvisioned');
      await this.waitRegistered(id, name);
      return this.state.nodeView(this.state.node(id).value);
    } catch (err) {
      const output = started ? await this.provisioner.output(started) : '';
      // Clean-up failures are logged, and the original error is what the caller gets.
      if (started) await this.provisioner.remove(started).catch((e: unknown) => this.log.error({ err: e, nodeId: id, name }, 'could not remove a failed node'));
      await commit(this.client, [], [{ type: 'delete', key: nodeKey }, { type: 'delete', key: indexKey }, { type: 'delete', key: keyOf('heartbeats', id) }]).catch((e: unknown) =>
        this.log.warn({ err: e, nodeId: id, name }, 'could not delete the records of a failed node'),
      );
      if (isBerthError(err, 'TIMEOUT')) {
        throw errors.timeout(`${err.message}; removed its ${started?.kind === 'docker' ? 'container' : 'process'}${output ? `. Agent output:\n${output}` : ''}`);
      }
      // Its record went while it was being provisioned (a DELETE of it won): the request conflicted, the node did not vanish on its own.
      if (isBerthError(err, 'NOT_FOUND')) throw deletedWhileProvisioned(name);
      throw err;
    }
  }

  /**
   * Headers that let this replica call the node's agent API: its node
   * credential, read from etcd on each call (a restarted agent has a new one;
   * logs are not a hot path). None when the agent published none.
   */
  async agentHeaders(nodeId: string): Promise<Record<string, string>> {
    const secret = await this.client
      .get(keyOf('nodeCreds', nodeId))
      .json()
      .catch((err: unknown) => {
        throw toBerthError(err);
      });
    return typeof secret === 'string' ? { authorization: `Bearer ${secret}` } : {};
  }

  /** Resolves once no active pod is bound to the node, or after `timeoutMs` (the leader then unbinds what is left). */
  private waitEmpty(nodeId: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.state.activePods(nodeId).length === 0) done();
      };
      const timer = setTimeout(() => done(), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.state.pods.off('change', check);
        resolve();
      };
      this.state.pods.on('change', check);
      check();
    });
  }

  /**
   * Resolves once the agent re-joined the placeholder record (its pid is set),
   * its heartbeat is in the cache and, while there is a leader, the leader
   * marked it Ready.
   */
  private waitRegistered(id: string, name: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const node = this.state.nodes.get(keyOf('nodes', id))?.value;
        if (node && node.agent.pid !== 0 && this.state.heartbeat(id) && (node.status === 'Ready' || !this.hasLeader())) done(resolve);
        else if (node === undefined) done(() => reject(deletedWhileProvisioned(name)));
      };
      const timer = setTimeout(
        () => done(() => reject(errors.timeout(`node ${id} did not register within ${this.provisionTimeoutMs / 1000} s`))),
        this.provisionTimeoutMs,
      );
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.state.nodes.off('change', check);
        this.state.heartbeats.off('change', check);
        fn();
      };
      this.state.nodes.on('change', check);
      this.state.heartbeats.on('change', check);
      check();
    });
  }

  private async record(reason: string, node: NodeRecord, message: string): Promise<void> {
    await this.events
      .record({ type: 'Normal', reason, message, involved: { kind: 'node', id: node.id } })
      .catch((err: unknown) => this.log.warn({ err, nodeId: node.id, reason }, 'could not record event'));
  }
}

/** POST /v1/nodes lost to a DELETE of the node it was provisioning: 409, whichever step noticed. */
function deletedWhileProvisioned(name: string) {
  return errors.conflict(`node ${JSON.stringify(name)} was deleted while it was being provisioned`);
}
