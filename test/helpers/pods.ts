import type { Etcd3 } from 'etcd3';
import { prefixes, type PodRecord, type PodSpec, type PodStatus } from '@berth/core';
import { commit, putJson, type Fence } from '@berth/store';

/** What a test changes of a pod record: any top-level field, and parts of its spec and status. */
export type PodOverrides = Partial<Omit<PodRecord, 'spec' | 'status'>> & { spec?: Partial<PodSpec>; status?: Partial<PodStatus> };

/** A pod record as the API creates it (Pending, unbound, 0.5 core, 64 MiB), with `over` applied. */
export function podRecord(over: PodOverrides = {}): PodRecord {
  const { spec, status, ...top } = over;
  return {
    id: 'p1',
    name: 'web',
    desired: 'running',
    createdAt: '2026-12-01T00:00:00.000Z',
    ...top,
    spec: { env: {}, cpu: 0.5, memoryMiB: 64, ports: [], restartPolicy: 'Always', priority: 0, nodeSelector: {}, ...spec },
    status: { phase: 'Pending', nodeId: null, reason: 'Created', message: '', restarts: 0, startedAt: null, finishedAt: null, ...status },
  };
}

/**
 * A leader's fence without a campaign: an election key whose create
 * revision is the term, so fenced writes commit until the key is deleted.
 */
export async function testFence(client: Etcd3, name = 'test'): Promise<Fence> {
  const electionKey = `${prefixes.election}${name}`;
  const { revision: term } = await commit(client, [], [putJson(electionKey, { id: name })]);
  return { electionKey, term };
}
