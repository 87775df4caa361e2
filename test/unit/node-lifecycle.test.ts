import t from 'tap';
import type { NodeRecord } from '@berth/core';
import { decideNodeStatus } from '@berth/controller';

// The leader's node lifecycle decision (ARCHITECTURE.md, "Nodes") as a table: every
// status x heartbeat present/absent x grace elapsed or not, plus the cases
// that must not transition (provisioning, a new leader's own grace).

const GRACE = 5000;
const T0 = Date.parse('2026-11-23T12:00:00.000Z');
const node = (over: Partial<NodeRecord>): NodeRecord => ({
  id: 'n1',
  name: 'node-1',
  labels: {},
  runtime: 'simulated',
  address: 'http://127.0.0.1:1',
  capacity: { cpu: 1, memoryMiB: 512 },
  status: 'Ready',
  reason: 'AgentRegistered',
  statusChangedAt: new Date(T0).toISOString(),
  cordoned: false,
  draining: false,
  registeredAt: new Date(T0).toISOString(),
  agent: { hostname: 'h', pid: 42, startedAt: new Date(T0).toISOString(), version: '0.1.0' },
  ...over,
});

const cases: Array<{ name: string; node: Partial<NodeRecord>; heartbeat: boolean; now: number; termStart?: number; to?: string; reason?: string; wakeAt?: number }> = [
  { name: 'Ready with a heartbeat stays Ready', node: {}, heartbeat: true, now: T0 + 60_000 },
  { name: 'Ready without a heartbeat -> NotReady (HeartbeatLost)', node: {}, heartbeat: false, now: T0 + 1, to: 'NotReady', reason: 'HeartbeatLost' },
  { name: 'Ready, deregistered -> NotReady (AgentDeregistered)', node: { deregisteredAt: new Date(T0).toISOString() }, heartbeat: false, now: T0 + 1, to: 'NotReady', reason: 'AgentDeregistered' },
  { name: 'NotReady within the grace waits until it ends', node: { status: 'NotReady', reason: 'HeartbeatLost' }, heartbeat: false, now: T0 + GRACE - 1, wakeAt: T0 + GRACE },
  { name: 'NotReady past the grace -> Dead', node: { status: 'NotReady', reason: 'HeartbeatLost' }, heartbeat: false, now: T0 + GRACE, to: 'Dead', reason: 'GracePeriodExpired' },
  {
    name: 'a new leader observes a full grace of its own',
    node: { status: 'NotReady', reason: 'HeartbeatLost' },
    heartbeat: false,
    now: T0 + GRACE + 10,
    termStart: T0 + GRACE,
    wakeAt: T0 + 2 * GRACE,
  },
  { name: 'NotReady with a heartbeat again -> Ready (HeartbeatResumed)', node: { status: 'NotReady', reason: 'HeartbeatLost' }, heartbeat: true, now: T0 + 1, to: 'Ready', reason: 'HeartbeatResumed' },
  { name: 'Dead with a heartbeat again -> Ready (HeartbeatResumed)', node: { status: 'Dead', reason: 'GracePeriodExpired' }, heartbeat: true, now: T0 + 1, to: 'Ready', reason: 'HeartbeatResumed' },
  { name: 'Dead without a heartbeat stays Dead', node: { status: 'Dead', reason: 'GracePeriodExpired' }, heartbeat: false, now: T0 + 3_600_000 },
  { name: 'registering with its first heartbeat -> Ready (AgentRegistered)', node: { status: 'NotReady', reason: 'Registering' }, heartbeat: true, now: T0 + 1, to: 'Ready', reason: 'AgentRegistered' },
  { name: 'provisioning with no agent yet is left to the provisioner', node: { status: 'NotReady', reason: 'Provisioning', agent: { hostname: '', pid: 0, startedAt: '', version: '' } }, heartbeat: false, now: T0 + 3_600_000 },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const d = decideNodeStatus(node(c.node), 7, c.heartbeat, GRACE, c.now, c.termStart ?? 0);
    t.equal(d.transition?.to, c.to, 'target status');
    t.equal(d.transition?.reason, c.reason, 'reason');
    t.equal(d.wakeAt, c.wakeAt, 'when to look again');
    if (d.transition) {
      t.equal(d.transition.record.status, c.to, 'the record written carries the new status');
      t.equal(d.transition.record.statusChangedAt, new Date(c.now).toISOString(), 'and when it changed');
      // Fenced write guarded on the record it read and on the heartbeat being as seen.
      t.same(d.transition.guards[0], { key: '/berth/nodes/n1', target: 'Mod', cmp: '==', value: 7 }, 'guard: the node record is unchanged');
      t.same(d.transition.guards[1], { key: '/berth/heartbeats/n1', target: 'Create', cmp: c.heartbeat ? '>' : '==', value: 0 }, 'guard: the heartbeat is as seen');
    }
  });
}
