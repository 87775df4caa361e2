import t from 'tap';
import { agentFenceProblem, controllerGraceProblem, deadAfterMs, FENCE_MARGIN_MS, FORCE_STOP_MS, type NodeFence, type NodeRecord } from '@berth/core';
import { decideNodeStatus, nodeDeadAt } from '@berth/controller';
import { Fencer, SimulatedRuntime, type FenceSubject } from '@berth/agent';
import pino from 'pino';

// The fence budget (ARCHITECTURE.md, "Agent self-fencing and the fence budget"):
// the leader's Dead deadline, the flags an agent or a controller refuses, and
// the agent's fence watchdog over a simulated runtime.

const DEFAULT_FENCE: NodeFence = { heartbeatTtlMs: 3000, fenceAfterMs: 3000, forceStopMs: FORCE_STOP_MS };

t.test('the leader waits the grace, or the node\'s own fence budget when that is longer', async (t) => {
  t.equal(deadAfterMs(5000, undefined), 5000, 'an older agent without a fence: the grace');
  t.equal(deadAfterMs(5000, DEFAULT_FENCE), 5000, 'defaults: 3 s + 5 s >= 3 s + 2 s + 1 s, the grace suffices');
  t.equal(deadAfterMs(3000, { heartbeatTtlMs: 1000, fenceAfterMs: 4000, forceStopMs: 2000 }), 6000, 'a long fence stretches the grace: 4 + 2 + 1 - 1 s');
  // Whatever the flags, the heartbeat's TTL plus the wait covers the fence, the kill and the margin.
  for (const ttl of [1000, 2000, 3000, 10_000]) {
    for (const after of [500, 1000, 3000, 9000, 30_000]) {
      for (const grace of [1000, 3000, 5000]) {
        const fence = { heartbeatTtlMs: ttl, fenceAfterMs: after, forceStopMs: FORCE_STOP_MS };
        t.ok(ttl + deadAfterMs(grace, fence) >= after + FORCE_STOP_MS + FENCE_MARGIN_MS, `ttl ${ttl}, fence-after ${after}, grace ${grace}`);
      }
    }
  }
});

t.test('decideNodeStatus declares Dead only after the node\'s budget', async (t) => {
  const T0 = Date.parse('2026-11-23T12:00:00.000Z');
  const node: NodeRecord = {
    id: 'n1', name: 'node-1', labels: {}, runtime: 'process', address: 'http://127.0.0.1:1', capacity: { cpu: 1, memoryMiB: 512 },
    status: 'NotReady', reason: 'HeartbeatLost', statusChangedAt: new Date(T0).toISOString(), cordoned: false, draining: false,
    registeredAt: new Date(T0).toISOString(), agent: { hostname: 'h', pid: 42, startedAt: new Date(T0).toISOString(), version: '0.1.0' },
    fence: { heartbeatTtlMs: 1000, fenceAfterMs: 4000, forceStopMs: 2000 },
  };
  t.same(decideNodeStatus(node, 7, false, 3000, T0 + 5999), { wakeAt: T0 + 6000 }, 'not at the grace (3 s): the fence needs 6 s');
  t.equal(decideNodeStatus(node, 7, false, 3000, T0 + 6000).transition?.to, 'Dead', 'Dead once the budget is over');
  t.equal(nodeDeadAt(node, 3000, T0 + 1000), T0 + 7000, 'counted from a later deletion of the heartbeat, when the leader saw one');
  const { fence: _older, ...older } = node;
  t.equal(decideNodeStatus(older, 7, false, 3000, T0 + 3000).transition?.to, 'Dead', 'a record without a fence: the grace alone');
});

t.test('agent flags that break the budget are refused, naming the flags', async (t) => {
  const ok = { heartbeatTtlMs: 3000, heartbeatIntervalMs: 1000, fenceAfterMs: 3000, nodeGraceMs: 5000 };
  t.equal(agentFenceProblem(ok), undefined, 'the defaults keep it');
  t.equal(agentFenceProblem({ ...ok, fenceAfterMs: 5000 }), undefined, 'at the limit: 3 + 5 = 5 + 2 + 1');
  t.match(agentFenceProblem({ ...ok, fenceAfterMs: 5001 }), /--heartbeat-ttl \(3 s\) \+ --node-grace \(5 s\) = 8 s must be at least --fence-after \(5\.001 s\) \+ force-stop \(2 s\) \+ margin \(1 s\)/);
  t.match(agentFenceProblem({ ...ok, nodeGraceMs: 2000 }), /--node-grace must match the controllers' --node-grace/);
  t.equal(agentFenceProblem({ ...ok, fenceAfterMs: 2000 }), undefined, 'two heartbeat intervals are enough');
  t.match(agentFenceProblem({ ...ok, fenceAfterMs: 1999 }), /--fence-after \(1\.999 s\) must be at least 2 heartbeat intervals \(--heartbeat-interval 1000 ms\)/);
});

t.test('a controller refuses a --node-grace shorter than force-stop + margin', async (t) => {
  t.equal(controllerGraceProblem(FORCE_STOP_MS + FENCE_MARGIN_MS), undefined);
  t.match(controllerGraceProblem(2000), /--node-grace \(2 s\) must be at least force-stop \(2 s\) \+ margin \(1 s\) = 3 s/);
});

t.test('the fence watchdog kills a silent node\'s pods and lifts the fence only with a heartbeat again', async (t) => {
  const runtime = new SimulatedRuntime();
  for (const id of ['a', 'b', 'c']) await runtime.create({ id, name: id, cpu: 0.1, memoryMiB: 16 });
  await runtime.start('a');
  await runtime.start('b');
  await runtime.pause('b');
  let silent = 500;
  let heartbeat = true;
  let dead = false;
  const subject: FenceSubject = {
    opts: { name: 'n1', runtime },
    fenceableId: 'n1',
    silentMs: () => silent,
    holdsHeartbeat: () => heartbeat,
    get declaredDead() {
      return dead;
    },
  };
  const calls: string[] = [];
  let lifted: { stopped: string[]; why: string } | undefined;
  let allowLift = true;
  const fencer = new Fencer(() => [subject], {
    fence: (id) => calls.push(`fence ${id}`),
    unfence: async (id, stopped, why, stillClear) => {
      calls.push(`unfence ${id}`);
      lifted = { stopped: [...stopped].sort(), why };
      return allowLift && stillClear();
    },
  }, { fenceAfterMs: 3000, forceStopMs: FORCE_STOP_MS, log: pino({ level: 'silent' }) });
  /** The watchdog's kills and lifts run in the background: wait for their outcome. */
  const until = async (cond: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 5000;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error('the fence watchdog did not get there within 5 s');
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  const states = async () => (await runtime.list()).map((p) => `${p.id}:${p.state}`).join(' ');

  fencer.check();
  t.same(calls, [], 'a node heard from within --fence-after is left alone');
  silent = 3000;
  heartbeat = false;
  fencer.check();
  t.same(calls, ['fence n1'], 'fenced the moment the silence reaches --fence-after');
  t.same(fencer.fencedNodes, ['n1']);
  await until(async () => !/:(running|paused)/.test(await states()));
  t.equal(await states(), 'a:exited b:exited c:created', 'every live pod killed, paused ones too; nothing else touched');

  silent = 100;
  fencer.check();
  t.same(calls, ['fence n1'], 'an acknowledged keepalive alone does not lift the fence: the node must hold its heartbeat');
  heartbeat = true;
  allowLift = false;
  fencer.check();
  await until(() => calls.length === 2);
  t.same(fencer.fencedNodes, ['n1'], 'still fenced when lifting fails');
  allowLift = true;
  await until(() => {
    fencer.check();
    return fencer.fencedNodes.length === 0;
  });
  t.same(lifted?.stopped, ['a', 'b'], 'the reconciler is told which pods the fence killed');
  t.match(lifted?.why, /etcd acknowledged no keepalive for \d+\.\d s \(--fence-after 3 s\)/);

  // Heard from, but the leader declared the node Dead (its heartbeat vanished past the budget): fenced all the same.
  await runtime.start('c');
  dead = true;
  fencer.check();
  t.same(fencer.fencedNodes, ['n1'], 'a node its leader declared Dead is fenced though etcd answers');
  await until(async () => !/:(running|paused)/.test(await states()));
  t.match(await states(), /c:exited/, 'and its pods are killed');
  const before = calls.length;
  for (let i = 0; i < 3; i++) fencer.check();
  t.equal(calls.length, before, 'no lift while the record says Dead, heartbeat or not');
  dead = false;
  await until(() => {
    fencer.check();
    return fencer.fencedNodes.length === 0;
  });
  t.equal(lifted?.why, 'the leader declared the node Dead', 'lifted once Ready again, saying why it was fenced');
});
