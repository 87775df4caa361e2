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
  type PodRecord,
  type Resources,
} from '@berth/core';
import { Informer, type Versioned } from '@berth/store';

/** A node as the API shows it: its record plus what heartbeats and pods say. */
export type NodeView = NodeRecord & {
  lastHeartbeat: string | null;
  usage: NodeUsage | null;
  allocated: Resources;
  pods: string[];
};


/**
 * The watch caches every replica keeps of the cluster (nodes, heartbeats,
 * pods) and the derived indexes the API needs: name -> node id and
 * node id -> bound pods. Reads never go to etcd.
 */
export class ClusterState {
  readonly nodes: Informer<NodeRecord>;
  readonly heartbeats: Informer<HeartbeatRecord>;
  readonly pods: Informer<PodRecord>;
  private readonly nodeNames = new Map<string, string>();
  private readonly podsByNode = new Map<string, Set<string>>();

  constructor(client: Etcd3, log: Logger) {
    const l = log.child({ component: 'informer' });
    this.nodes = new Informer<NodeRecord>(client, prefixes.nodes, l);
    this.heartbeats = new Informer<HeartbeatRecord>(client, prefixes.heartbeats, l);
    this.pods = new Informer<PodRecord>(client, prefixes.pods, l);
    this.nodes.on('change', ({ item, prev }) => {
      if (prev && this.nodeNames.get(prev.value.name) === prev.value.id) this.nodeNames.delete(prev.value.name);
      if (item) this.nodeNames.set(item.value.name, item.value.id);
    });
    this.pods.on('change', ({ item, prev }) => {
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
    return [this.nodes, this.heartbeats, this.pods] as Informer<unknown>[];
  }

  /** A node by id or unique name; NOT_FOUND otherwise. */
  node(idOrName: string): Versioned<NodeRecord> {
    const byId = idOrName.includes('/') ? undefined : this.nodes.get(keyOf('nodes', idOrName));
    const id = byId ? idOrName : this.nodeNames.get(idOrName);
    const found = id === undefined ? undefined : this.nodes.get(keyOf('nodes', id));
    if (found === undefined) throw errors.notFound('node', idOrName);
    return found;
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
    const allocated = pods.reduce<Resources>((a, p) => ({ cpu: a.cpu + p.spec.cpu, memoryMiB: a.memoryMiB + p.spec.memoryMiB }), { cpu: 0, memoryMiB: 0 });
    allocated.cpu = Math.round(allocated.cpu * 1000) / 1000;
    return { ...node, lastHeartbeat: hb?.reportedAt ?? null, usage: hb?.usage ?? null, allocated, pods: pods.map((p) => p.id) };
  }
}
