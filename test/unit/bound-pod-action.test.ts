import t from 'tap';
import { checkPodDelete, checkPodWrite, type NodeRecord, type PodRecord } from '@berth/core';
import { boundPodAction, unboundRecord, type BoundPodAction } from '@berth/controller';
import { podRecord } from '../helpers/pods.js';

// What the leader does with a bound pod, as a table of {pod, node, want}:
// leave a node that cannot run it, restart a finished pod through Pending,
// delete a marked pod only where no agent will (dead or removed node).
// Each decision is also checked against the pod write rules it must pass.

const T = '2026-12-01T12:00:00.000Z';
const node = (over: Partial<NodeRecord> = {}): NodeRecord => ({
  id: 'n1',
  name: 'node-1',
  labels: {},
  runtime: 'process',
  address: 'http://127.0.0.1:1',
  capacity: { cpu: 1, memoryMiB: 512 },
  status: 'Ready',
  reason: 'AgentRegistered',
  statusChangedAt: T,
  cordoned: false,
  draining: false,
  registeredAt: T,
  agent: { hostname: 'h', pid: 42, startedAt: T, version: '0.1.0' },
  ...over,
});
const pod = (phase: PodRecord['status']['phase'], over: Partial<PodRecord> = {}, status: Partial<PodRecord['status']> = {}): PodRecord =>
  podRecord({ createdAt: T, ...over, spec: { restartPolicy: 'Never' }, status: { phase, nodeId: 'n1', reason: '', startedAt: T, ...status } });
const marked = { deletionRequested: T };

const rows: Array<{ name: string; pod: PodRecord; node: NodeRecord | undefined; want: BoundPodAction | undefined }> = [
  { name: 'running on a Ready node: stays', pod: pod('Running'), node: node(), want: undefined },
  { name: 'running on a Dead node: unbound', pod: pod('Running'), node: node({ status: 'Dead' }), want: { kind: 'unbind', reason: 'NodeDead' } },
  { name: 'running on a NotReady node: stays (grace)', pod: pod('Running'), node: node({ status: 'NotReady' }), want: undefined },
  { name: 'running on a draining node: unbound', pod: pod('Running'), node: node({ draining: true }), want: { kind: 'unbind', reason: 'NodeDrained' } },
  { name: 'running on a deregistered node: unbound', pod: pod('Running'), node: node({ deregisteredAt: T }), want: { kind: 'unbind', reason: 'NodeDrained' } },
  { name: 'running, node record gone: unbound', pod: pod('Running'), node: undefined, want: { kind: 'unbind', reason: 'NodeRemoved' } },
  { name: 'marked, on a draining node: its agent deletes it', pod: pod('Running', marked), node: node({ draining: true }), want: undefined },
  { name: 'marked, on a Dead node: the leader deletes it', pod: pod('Running', marked), node: node({ status: 'Dead' }), want: { kind: 'forceDelete' } },
  { name: 'marked, node gone: the leader deletes it', pod: pod('Stopping', marked), node: undefined, want: { kind: 'forceDelete' } },
  { name: 'finished: stays where it finished', pod: pod('Succeeded'), node: node(), want: undefined },
  { name: 'finished on a Dead node: stays (holds nothing)', pod: pod('Failed'), node: node({ status: 'Dead' }), want: undefined },
  { name: 'finished, restart asked: back to Pending', pod: pod('Succeeded', { restartRequestedAt: T }), node: node(), want: { kind: 'unbind', reason: 'RestartRequested' } },
  { name: 'finished, restart already honoured by its last start: stays', pod: pod('Succeeded', { restartRequestedAt: T }, { restartHandled: T }), node: node(), want: undefined },
  { name: 'finished and marked on a Dead node: deleted, not restarted', pod: pod('Failed', { ...marked, restartRequestedAt: T }), node: node({ status: 'Dead' }), want: { kind: 'forceDelete' } },
  { name: 'finished and marked on a live node: its agent deletes it', pod: pod('Failed', { ...marked, restartRequestedAt: T }), node: node(), want: undefined },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const got = boundPodAction(row.pod, row.node);
    t.same(got, row.want);
    // The decision must be one the leader is allowed to write.
    if (got?.kind === 'unbind') t.doesNotThrow(() => checkPodWrite('leader', row.pod, unboundRecord(row.pod, got.reason)));
    if (got?.kind === 'forceDelete') t.doesNotThrow(() => checkPodDelete('leader', row.pod));
  });
}

t.test('a restart counts once and forgets the old node', async (t) => {
  const next = unboundRecord(pod('Succeeded', { restartRequestedAt: T }, { restarts: 2 }), 'RestartRequested');
  t.match(next.status, { phase: 'Pending', nodeId: null, reason: 'RestartRequested', restarts: 3, startedAt: null, message: 'was Succeeded on node n1' });
});
