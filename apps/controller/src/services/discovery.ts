import { EventEmitter } from 'node:events';
import { endpointHost, keyOf, type NodeRecord, type PodRecord, type ServiceRecord } from '@berth/core';
import type { ClusterState } from '../cluster-state.js';

/** One pod of a service, as the router sees it. */
export interface ServiceEndpoint {
  podId: string;
  podName: string;
  nodeId: string | null;
  /** `host:port` to send requests to; null until the pod runs with a port. */
  address: string | null;
  /** Receives requests: Running, its check passes, its node Ready and heartbeating, not being removed. */
  ready: boolean;
  /** Made from the service's current template. */
  current: boolean;
}

/** What a service has to route to, computed once per change of the caches. */
export interface ServiceEndpoints {
  service: ServiceRecord | undefined;
  all: ServiceEndpoint[];
  ready: ServiceEndpoint[];
}

export interface DiscoveryEvents {
  /** A service's endpoints may have changed. */
  changed: [string];
}

/**
 * Every replica derives each service's endpoints from its watch caches: no
 * endpoint record is written, so a pod that turns ready, or a node that
 * misses its heartbeat, changes where requests go within one watch event on
 * every replica at once. Results are memoised per service until a pod of it,
 * a node, a heartbeat or the service itself changes.
 */
export class Discovery extends EventEmitter<DiscoveryEvents> {
  private readonly memo = new Map<string, ServiceEndpoints>();

  constructor(private readonly state: ClusterState) {
    super();
    this.setMaxListeners(0);
    state.pods.on('change', ({ item, prev }) => {
      for (const s of new Set([item?.value.service, prev?.value.service])) if (s !== undefined) this.invalidate(s);
    });
    state.services.on('change', ({ item, prev }) => this.invalidate((item ?? prev)!.value.name));
    // A node's readiness or its heartbeat's presence changes every service with a pod there.
    state.nodes.on('change', ({ item, prev }) => {
      if (item?.value.status !== prev?.value.status || item?.value.address !== prev?.value.address) this.invalidateAll();
    });
    // A heartbeat's periodic report changes nothing here; one appearing or going does.
    state.heartbeats.on('change', ({ type, prev }) => {
      if (type === 'delete' || prev === undefined) this.invalidateAll();
    });
  }

  /** The endpoints of `service` now. */
  of(service: string): ServiceEndpoints {
    let e = this.memo.get(service);
    if (e === undefined) {
      e = this.compute(service);
      this.memo.set(service, e);
    }
    return e;
  }

  private invalidate(service: string): void {
    this.memo.delete(service);
    this.emit('changed', service);
  }

  private invalidateAll(): void {
    const names = new Set([...this.memo.keys(), ...this.state.services.list().map((s) => s.value.name)]);
    this.memo.clear();
    for (const n of names) this.emit('changed', n);
  }

  private compute(name: string): ServiceEndpoints {
    const service = this.state.services.get(keyOf('services', name))?.value;
    const all: ServiceEndpoint[] = [];
    for (const { value: pod } of this.state.podsOf(name)) {
      const node = pod.status.nodeId === null ? undefined : this.state.nodes.get(keyOf('nodes', pod.status.nodeId))?.value;
      const address = endpointAddress(pod, node, service);
      const heartbeat = node !== undefined && this.state.heartbeat(node.id) !== undefined;
      all.push({
        podId: pod.id,
        podName: pod.name,
        nodeId: pod.status.nodeId,
        address,
        ready: address !== null && heartbeat && node?.status === 'Ready' && podReady(pod),
        current: service !== undefined && pod.templateHash === service.templateHash,
      });
    }
    all.sort((a, b) => (a.podName < b.podName ? -1 : 1));
    return { service, all, ready: all.filter((e) => e.ready) };
  }
}

/**
 * Whether the pod itself can take requests: Running, wanted running, not
 * being removed or evicted, and its agent says it is ready (`status.ready`:
 * its health check passes; a pod without a check is ready once Running).
 */
export function podReady(pod: PodRecord): boolean {
  const s = pod.status;
  if (s.phase !== 'Running' || pod.desired !== 'running' || pod.deletionRequested !== undefined || s.eviction !== undefined) return false;
  return s.ready === true;
}

/**
 * Where a pod of a service listens: its node's advertised host, and the
 * service's port: the pod's allocated PORT when the service routes to the
 * template's first port (pods use host networking, and only the first port
 * is allocated), else that port number itself.
 */
export function endpointAddress(pod: PodRecord, node: NodeRecord | undefined, service: ServiceRecord | undefined): string | null {
  const host = node === undefined ? '' : endpointHost(node);
  const first = pod.spec.ports[0];
  const port = service?.port === undefined || service.port === first ? pod.status.hostPort : service.port;
  return host === '' || port === undefined ? null : `${host}:${port}`;
}
