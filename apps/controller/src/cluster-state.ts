import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  errors,
  keyOf,
  prefixes,
  TERMINAL_PHASES,
  type HeartbeatRecord,
  type NodeRecord,
  type NodeUsage,
  type AllocationRecord,
  type PodRecord,
  type Resources,
} from '@berth/core';
import { Informer, type Versioned } from '@berth/store';

/** A node as the API shows it: its record plus what heartbeats and pods say (the type of core's `NodeView` schema). */
export type NodeView = import('@berth/core').NodeView;


/**
 * The watch caches every replica keeps of the cluster (nodes, heartbeats,
 * pods) and the derived indexes the API needs: name -> node id and
 * node id -> bound pods. Reads never go to etcd.
 */
export class ClusterState {
  readonly nodes: Informer<NodeRecord>;
  readonly heartbeats: Informer<HeartbeatRecord>;
  readonly pods: Informer<PodRecord>;
  /** The leader's reservations per node. */
  readonly allocations: Informer<AllocationRecord>;
  private readonly nodeNames = new Map<string, string>();
  private readonly podNames = new Map<string, string>();
  private readonly podsByNode = new Map<string, Set<string>>();

  constructor(client: Etcd3, log: Logger) {
    const l = log.child({ component: 'informer' });
    this.nodes = new Informer<NodeRecord>(client, prefixes.nodes, l);
    this.heartbeats = new Informer<HeartbeatRecord>(client, prefixes.heartbeats, l);
    this.pods = new Informer<PodRecord>(client, prefixes.pods, l);
    this.allocations = new Informer<AllocationRecord>(client, prefixes.allocations, l);
    this.nodes.on('change', ({ item, prev }) => {
      if (prev && this.nodeNames.get(prev.value.name) === prev.value.id) this.nodeNames.delete(prev.value.name);
      if (item) this.nodeNames.set(item.value.name, item.value.id);
    });
    this.pods.on('change', ({ item, prev }) => {
      if (prev && this.podNames.get(prev.value.name) === prev.value.id) this.podNames.delete(prev.value.name);
      if (item) this.podNames.set(item.value.name, item.value.id);
      const before = prev?.value.status.nodeId;
      if (before) this.podsByNode.get(before)?.delete(prev.value.id);
      const after = item?.value.status.nodeId;
      if (after && item) {
        let set = this.podsByNode.get(after);
        if (set === undefined) this.podsByNode.set(after, (set = new Set()));
        set.add(item.value.id);
      }
    });
  }

  /** The caches, for readiness. */
  get informers(): Informer<unknown>[] {
    return [this.nodes, this.heartbeats, this.pods, this.allocations] as Informer<unknown>[];
  }

  /** A node by id or unique name; NOT_FOUND otherwise. */
  node(idOrName: string): Versioned<NodeRecord> {
    return lookup(this.nodes, 'nodes', this.nodeNames, idOrName, 'node');
  }

  /** A pod by id or unique name; NOT_FOUND otherwise. */
  pod(idOrName: string): Versioned<PodRecord> {
    return lookup(this.pods, 'pods', this.podNames, idOrName, 'pod');
  }

  /** The heartbeat of a node, while its agent holds it. */
  heartbeat(nodeId: string): Versioned<HeartbeatRecord> | undefined {
    return this.heartbeats.get(keyOf('heartbeats', nodeId));
  }

  /** Pods bound to a node that still hold resources there. */
  activePods(nodeId: string): PodRecord[] {
    const ids = this.podsByNode.get(nodeId);
    if (ids === undefined) return [];
    const out: PodRecord[] = [];
    for (const id of ids) {
      const pod = this.pods.get(keyOf('pods', id))?.value;
      if (pod && !TERMINAL_PHASES.has(pod.status.phase)) out.push(pod);
    }
    return out;
  }

  /** The API's view of a node. */
  nodeView(node: NodeRecord): NodeView {
    const hb = this.heartbeat(node.id)?.value;
    const pods = this.activePods(node.id);
    // What the leader reserved (the scheduler's view), not a sum that may lag a binding.
    let cpuMillis = 0;
    let memoryMiB = 0;
    const reserved = this.allocations.get(keyOf('allocations', node.id))?.value.pods ?? {};
    for (const r of Object.values(reserved)) {
      cpuMillis += r.cpuMillis;
      memoryMiB += r.memoryMiB;
    }
    const allocated: Resources = { cpu: cpuMillis / 1000, memoryMiB };
    const conditions: NodeView['conditions'] = [
      { type: 'Heartbeat', status: hb !== undefined, message: hb ? `last report ${hb.reportedAt}` : 'no heartbeat: the agent\'s lease expired or it deregistered' },
    ];
    if (hb?.runtime) conditions.push({ type: 'RuntimeReady', status: hb.runtime.ready, message: hb.runtime.message });
    return { ...node, conditions, lastHeartbeat: hb?.reportedAt ?? null, usage: hb?.usage ?? null, allocated, pods: pods.map((p) => p.id), reservedPods: Object.keys(reserved) };
  }
}

/** Path parameters accept the id or the unique name (SPEC.md section 5). */
function lookup<T>(cache: Informer<T>, collection: 'nodes' | 'pods', names: Map<string, string>, idOrName: string, kind: string): Versioned<T> {
  const id = idOrName.includes('/') ? undefined : cache.get(keyOf(collection, idOrName)) ? idOrName : names.get(idOrName);
  const found = id === undefined ? undefined : cache.get(keyOf(collection, id));
  if (found === undefined) throw errors.notFound(kind, idOrName);
  return found;
}
