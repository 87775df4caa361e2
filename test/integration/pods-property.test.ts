import t from 'tap';
import fc from 'fast-check';
import type { AllocationRecord, NodeRecord, PodRecord } from '@berth/core';
import { prefixes } from '@berth/core';
import { AgentProcess, waitFor, type ControllerProcess } from '@berth/devcluster';
import { clientFor, clusterFor, tempDir } from '../helpers/fixtures.js';

/**
 * Property: whatever sequence of pod creates and deletes, node deaths and
 * restarts, and leader kills happens, etcd never holds a node reserved past its
 * capacity nor a pod reserved on two nodes, and every bound pod is reserved on
 * exactly its node. Checked continuously while the sequence runs, from etcd.
 */
type Cmd =
  | { kind: 'create'; cpu: number; priority: number }
  | { kind: 'delete'; pick: number }
  | { kind: 'killNode'; node: number }
  | { kind: 'restartNode'; node: number }
  | { kind: 'killLeader' };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('create' as const), cpu: fc.constantFrom(0.25, 0.5, 1, 1.5), priority: fc.constantFrom(0, 0, 5) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat(1000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('killNode' as const), node: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restartNode' as const), node: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'killLeader' as const }) },
);

t.test('no overcommit, no double binding under creates, deletes, node deaths and leader kills', async (t) => {
  const cluster = await clusterFor(t, { controllerArgs: ['--node-grace', '3'] });
  const client = clientFor(t, cluster.etcd.endpoint);
  const logDir = tempDir(t, 'berth-prop-');
  const agents = [0, 1, 2].map(
    (i) =>
      new AgentProcess({
        name: `p${i}`, etcd: cluster.etcd.endpoint, logDir, runtime: 'simulated', cpu: 2, memoryMiB: 4096,
        extraArgs: ['--heartbeat-ttl', '2', '--heartbeat-interval', '500'],
      }),
  );
  t.teardown(() => Promise.all(agents.map((a) => a.process.stop('SIGKILL'))));
  await Promise.all(agents.map((a) => a.start()));
  await cluster.waitForAgreedLeader();

  const violations: string[] = [];
  /** Checks that could not run (etcd stays up in this test, so any is a failure). */
  const checkErrors: string[] = [];
  let checks = 0;
  /** The values under `prefix` at `revision` (the store's current one when undefined), and that revision. */
  async function readAt<T>(prefix: string, revision?: number): Promise<{ revision: number; values: T[] }> {
    const range = client.getAll().prefix(prefix);
    const res = await (revision === undefined ? range : range.revision(revision)).exec();
    return { revision: Number(res.header.revision), values: res.kvs.map((kv) => JSON.parse(kv.value.toString()) as T) };
  }
  async function check(): Promise<void> {
    // One revision for all three reads: a binding writes its pod and its reservation in one transaction,
    // and reads at different revisions could see one without the other.
    const podsSnap = await readAt<PodRecord>(prefixes.pods);
    const [allocSnap, nodesSnap] = await Promise.all([
      readAt<AllocationRecord>(prefixes.allocations, podsSnap.revision),
      readAt<NodeRecord>(prefixes.nodes, podsSnap.revision),
    ]);
    const pods = podsSnap.values;
    const allocs = allocSnap.values;
    const nodes = new Map(nodesSnap.values.map((n) => [n.id, n]));
    const holders = new Map<string, string[]>();
    for (const a of allocs) {
      const cap = nodes.get(a.nodeId)?.capacity;
      const cpu = Object.values(a.pods).reduce((s, r) => s + r.cpuMillis, 0);
      const mem = Object.values(a.pods).reduce((s, r) => s + r.memoryMiB, 0);
      if (cap && (cpu > cap.cpu * 1000 || mem > cap.memoryMiB)) violations.push(`node ${a.nodeId} reserved ${cpu}m/${mem}Mi over ${cap.cpu}/${cap.memoryMiB}`);
      for (const id of Object.keys(a.pods)) holders.set(id, [...(holders.get(id) ?? []), a.nodeId]);
    }
    for (const [id, on] of holders) if (on.length > 1) violations.push(`pod ${id} reserved on ${on.join(' and ')}`);
    for (const p of pods) {
      if (p.status.nodeId === null || p.status.phase === 'Succeeded' || p.status.phase === 'Failed') continue;
      if (!(holders.get(p.id) ?? []).includes(p.status.nodeId)) violations.push(`pod ${p.name} bound to ${p.status.nodeId} without a reservation there`);
    }
    checks++;
  }

  // A checker running beside every sequence, reading etcd about every 50 ms. A check that throws
  // stops it and fails the test: an invariant that could not be checked is not a pass.
  let checking = true;
  const checker = (async () => {
    while (checking) {
      try {
        await check();
      } catch (err) {
        checkErrors.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  let seq = 0;
  const live = () => cluster.running[0] as ControllerProcess;
  async function post(path: string, body?: unknown, method = 'POST') {
    for (const c of cluster.running) {
      try {
        const res = await fetch(`${c.url}${path}`, { method, signal: AbortSignal.timeout(5000), ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
        return res.status;
      } catch {
        /* try the next replica */
      }
    }
    return 0;
  }

  try {
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 8, maxLength: 20 }), async (cmds) => {
        seq++;
        let n = 0;
        for (const cmd of cmds) {
          switch (cmd.kind) {
            case 'create':
              await post('/v1/pods', { name: `s${seq}-${n++}`, command: ['sleep', '1'], cpu: cmd.cpu, memoryMiB: 64, priority: cmd.priority });
              break;
            case 'delete': {
              const items = ((await (await fetch(`${live().url}/v1/pods`)).json()) as { items: PodRecord[] }).items;
              if (items.length > 0) await post(`/v1/pods/${items[cmd.pick % items.length]!.id}`, undefined, 'DELETE');
              break;
            }
            case 'killNode':
              agents[cmd.node]!.process.signal('SIGKILL');
              await agents[cmd.node]!.process.waitExit();
              break;
            case 'restartNode':
              if (!agents[cmd.node]!.process.running) await agents[cmd.node]!.start();
              break;
            case 'killLeader': {
              const leader = await cluster.waitForAgreedLeader();
              leader.process.signal('SIGKILL');
              await leader.process.waitExit();
              await cluster.waitForAgreedLeader({ excluding: leader.id });
              await leader.start();
              break;
            }
          }
        }
        // Settle: all nodes back, a leader, and every pod either bound or Pending with a reason.
        for (const a of agents) if (!a.process.running) await a.start();
        await cluster.waitForAgreedLeader();
        await waitFor(
          async () => {
            const items = ((await (await fetch(`${live().url}/v1/pods`)).json()) as { items: PodRecord[] }).items;
            return items.every((p) => p.status.nodeId !== null || p.status.reason === 'Unschedulable' || p.status.reason === 'Preempted');
          },
          { what: 'the scheduler to settle', timeoutMs: 20_000 },
        );
        await check();
        return violations.length === 0 && checkErrors.length === 0;
      }),
      { numRuns: 4, seed: Number(process.env.BERTH_PROPERTY_SEED ?? 4242), endOnFailure: true },
    );
  } finally {
    checking = false;
    await checker;
  }
  t.same(checkErrors, [], 'every check could read etcd');
  t.same(violations, [], `no violation in ${checks} checks of etcd`);
  t.ok(checks > 20, `the invariants were checked continuously (${checks} times)`);
});
