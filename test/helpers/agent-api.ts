import type { Etcd3 } from 'etcd3';
import { keyOf, type NodeRecord } from '@berth/core';

/** Calls one path of an agent's API. */
export type AgentCall = (path: string, init?: RequestInit) => Promise<Response>;

/**
 * Calls a node's agent API as a controller does: at the address in its node
 * record, with the node credential the agent published in etcd (both read
 * each time: a restarted agent listens elsewhere and has a new secret).
 */
export function agentCaller(client: Etcd3, nodeId: () => string): AgentCall {
  return async (path, init = {}) => {
    const id = nodeId();
    const node = JSON.parse((await client.get(keyOf('nodes', id)).string())!) as NodeRecord;
    const secret = (await client.get(keyOf('nodeCreds', id)).json()) as string | null;
    const headers = new Headers(init.headers);
    if (secret !== null) headers.set('authorization', `Bearer ${secret}`);
    return fetch(`${node.address}${path}`, { ...init, headers });
  };
}
