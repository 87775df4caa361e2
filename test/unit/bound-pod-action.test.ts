import t from 'tap';
import { checkPodDelete, checkPodWrite, type NodeRecord, type PodRecord } from '@berth/core';
import { boundPodAction, evictedRecord, overcommitVictims, unboundRecord, type BoundPodAction } from '@berth/controller';
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
const eviction = { reason: 'NodeDrained' as const, requestedAt: T };

const rows: Array<{ name: string; pod: PodRecord; node: NodeRecord | undefined; want: BoundPodAction | undefined }> = [
  { name: 'running on a Ready node: stays', pod: pod('Running'), node: node(), want: undefined },
  { name: 'running on a Dead node: unbound', pod: pod('Running'), node: node({ status: 'Dead' }), want: { kind: 'unbind', reason: 'NodeDead' } },
  { name: 'running on a NotReady node: stays (grace)', pod: pod('Running'), node: node({ status: 'NotReady' }), want: undefined },
  { name: 'running on a draining node: evicted (its agent stops it first)', pod: pod('Running'), node: node({ draining: true }), want: { kind: 'evict', reason: 'NodeDrained' } },
  { name: 'paused on a draining node: evicted', pod: pod('Paused'), node: node({ draining: true }), want: { kind: 'evict', reason: 'NodeDrained' } },
  { name: 'starting on a deregistered node: evicted', pod: pod('Starting'), node: node({ deregisteredAt: T }), want: { kind: 'evict', reason: 'NodeDrained' } },
  { name: 'evicted, still stopping: waits for its agent', pod: pod('Stopping', {}, { eviction }), node: node({ draining: true }), want: undefined },
  { name: 'evicted, running (agent not yet acted): waits', pod: pod('Running', {}, { eviction }), node: node({ draining: true }), want: undefined },
  { name: 'evicted and stopped by its agent: unbound', pod: pod('Stopped', {}, { eviction }), node: node({ draining: true }), want: { kind: 'unbind', reason: 'NodeDrained' } },
  { name: 'preempted and stopped, node Ready: unbound', pod: pod('Stopped', {}, { eviction: { reason: 'Preempted', requestedAt: T } }), node: node(), want: { kind: 'unbind', reason: 'Preempted' } },
  { name: 'evicted, node died meanwhile: unbound at once (fence budget passed)', pod: pod('Running', {}, { eviction }), node: node({ status: 'Dead' }), want: { kind: 'unbind', reason: 'NodeDead' } },
  { name: 'scheduled on a draining node (never started): unbound at once', pod: pod('Scheduled'), node: node({ draining: true }), want: { kind: 'unbind', reason: 'NodeDrained' } },
  { name: 'stopped on a draining node: unbound at once', pod: pod('Stopped'), node: node({ draining: true }), want: { kind: 'unbind', reason: 'NodeDrained' } },
  { name: 'running, node record gone: unbound (after the fence budget)', pod: pod('Running'), node: undefined, want: { kind: 'unbind', reason: 'NodeRemoved' } },
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
    if (got?.kind === 'evict') t.doesNotThrow(() => checkPodWrite('leader', row.pod, evictedRecord(row.pod, got.reason, Date.parse(T))));
  });
}

t.test('a restart counts once and forgets the old node', async (t) => {
  const next = unboundRecord(pod('Succeeded', { restartRequestedAt: T }, { restarts: 2 }), 'RestartRequested');
  t.match(next.status, { phase: 'Pending', nodeId: null, reason: 'RestartRequested', restarts: 3, startedAt: null, message: 'was Succeeded on node n1' });
});

t.test('an eviction mark changes nothing else, and the agent may neither set nor clear it', async (t) => {
  const running = pod('Running');
  const next = evictedRecord(running, 'Preempted', Date.parse(T));
  t.same(next.status.eviction, { reason: 'Preempted', requestedAt: T });
  t.same({ ...next, status: { ...next.status, eviction: undefined } }, { ...running, status: { ...running.status, eviction: undefined } });
  t.throws(() => checkPodWrite('agent', running, next), /may not change status.eviction/);
  t.throws(() => checkPodWrite('agent', next, running), /may not change status.eviction/);
  t.throws(() => checkPodWrite('leader', next, evictedRecord(running, 'NodeDrained', Date.parse(T))), /only binds, unbinds, evicts/, 'not marked twice');
  t.throws(() => checkPodWrite('leader', pod('Running', {}, { nodeId: null }), evictedRecord(pod('Running', {}, { nodeId: null }), 'Preempted', 0)), /only binds/, 'an unbound pod is not evicted');
  const unbound = unboundRecord(pod('Stopped', {}, { eviction }), 'NodeDrained');
  t.equal(unbound.status.eviction, undefined, 'unbinding clears the mark');
  t.doesNotThrow(() => checkPodWrite('leader', pod('Stopped', {}, { eviction }), unbound));
});

t.test('a node that re-joined smaller evicts its lowest-priority, newest pods until what stays fits', async (t) => {
  const small = node({ capacity: { cpu: 1, memoryMiB: 512 } });
  const p = (id: string, priority: number, createdAt: string, cpuMillis: number, status: Partial<PodRecord['status']> = {}) => ({
    rec: podRecord({ id, name: id, createdAt, spec: { priority, cpu: cpuMillis / 1000 }, status: { phase: 'Running', nodeId: 'n1', ...status } }),
    res: { cpuMillis, memoryMiB: 64 },
  });
  const pods = [
    p('old-low', 0, '2026-01-01T00:00:00.000Z', 500),
    p('new-low', 0, '2026-06-01T00:00:00.000Z', 500),
    p('high', 10, '2026-06-01T00:00:00.000Z', 500),
    p('leaving', 0, '2026-07-01T00:00:00.000Z', 500, { eviction: { reason: 'NodeDrained', requestedAt: T } }),
  ];
  const alloc = { nodeId: 'n1', pods: Object.fromEntries(pods.map((x) => [x.rec.id, x.res])) };
  // 2000m reserved on a 1000m node; 'leaving' already goes: evict 500m more, the newest of the lowest priority.
  t.same(overcommitVictims(small, alloc, pods.map((x) => x.rec)).map((v) => v.id), ['new-low']);
  t.same(overcommitVictims(node({ capacity: { cpu: 2, memoryMiB: 512 } }), alloc, pods.map((x) => x.rec)), [], 'fits: nothing evicted');
  t.same(overcommitVictims(small, undefined, pods.map((x) => x.rec)), [], 'nothing reserved');
});
