import type { NodeRecord, PodRecord } from './types.js';

/*
 * Where a pod is reached from any host: pods share their node's network and
 * listen on their host port (`status.hostPort`, which they get as PORT) on
 * every interface, so a pod's endpoint is the host its node advertises (the
 * host of the node's agent URL, chosen by the agent's --advertise-address or
 * --advertise-host) with that port.
 */

/**
 * The host part of a node's advertised address, ready for a URL (IPv6 in
 * brackets), e.g. `10.0.0.7` for a node at `http://10.0.0.7:41000`; '' when
 * the node has no address (a provisioned node whose agent has not registered).
 */
export function endpointHost(node: Pick<NodeRecord, 'address'>): string {
  if (node.address === '') return '';
  try {
    return new URL(node.address).hostname;
  } catch {
    return '';
  }
}

/** `host:port` where other hosts reach the pod, or undefined while it has no host port or its node no address. */
export function podEndpoint(node: Pick<NodeRecord, 'address'>, pod: Pick<PodRecord, 'status'>): string | undefined {
  const host = endpointHost(node);
  const port = pod.status.hostPort;
  return host === '' || port === undefined ? undefined : `${host}:${port}`;
}
