import { spawn, type ChildProcess } from 'node:child_process';
import t, { type Test } from 'tap';
import { InvariantChecker, ProcessSampler, RUN_MARKER, type Ledger, waitFor } from '@berth/devcluster';

/*
 * The chaos checker's process-table side against real processes: a pod id
 * in two process groups is found and reported as running twice, groups are
 * attributed to the node whose agent started them, zombies and other runs'
 * pods are not counted, and the second group going away ends the episode.
 */

const noLedger: Ledger = { acked: () => [], deleteSentAt: () => undefined, duplicateAcks: () => [] };

/** A stand-in agent: a node process that starts `sleep` in a new process group with the pod's marker, as the process runtime does. */
function fakeAgent(t: Test, podId: string, run: string): ChildProcess {
  const script = `
    const { spawn } = require('node:child_process');
    const c = spawn('sleep', ['600'], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH, BERTH_POD_ID: ${JSON.stringify(podId)}, ${RUN_MARKER}: ${JSON.stringify(run)} } });
    process.stdout.write(String(c.pid) + '\\n');
    process.on('SIGTERM', () => { try { process.kill(-c.pid, 'SIGKILL'); } catch {} process.exit(0); });
    setInterval(() => {}, 1000);
  `;
  const p = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    p.kill('SIGTERM');
  });
  return p;
}

async function podPid(p: ChildProcess): Promise<number> {
  return new Promise((resolve) => p.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
}

t.test('a pod id in two process groups is reported as running in two places', async (t) => {
  const run = `test-${process.pid}-${Date.now()}`;
  const a = fakeAgent(t, 'pod-dup', run);
  const b = fakeAgent(t, 'pod-dup', run);
  const other = fakeAgent(t, 'pod-dup', `another-run-${process.pid}`);
  const [pa, pb] = await Promise.all([podPid(a), podPid(b), podPid(other)]);
  t.teardown(() => {
    for (const pid of [pa, pb]) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
  const nodes = new Map([
    [a.pid!, 'node-a'],
    [b.pid!, 'node-b'],
  ]);
  const sampler = new ProcessSampler(run, (pid) => nodes.get(pid));
  const checker = new InvariantChecker({ settleMs: 10_000, etcdIntervalMs: 1000 }, noLedger);

  const s = await waitFor(() => {
    const x = sampler.sample();
    return (x.groups.get('pod-dup')?.length ?? 0) >= 2 ? x : undefined;
  }, { what: 'both groups in the process table' });
  const groups = s.groups.get('pod-dup')!;
  t.same(groups.map((g) => g.pgid).sort(), [pa, pb].sort(), 'one group per copy, the other run ignored');
  t.same(groups.map((g) => g.node).sort(), ['node-a', 'node-b'], 'each group attributed to the agent that started it');
  checker.onProcSample(s);

  // One copy ends: the episode closes with a duration.
  process.kill(-pb, 'SIGKILL');
  await waitFor(() => {
    const x = sampler.sample();
    checker.onProcSample(x);
    return (x.groups.get('pod-dup')?.length ?? 0) === 1;
  }, { what: 'the second copy to be gone from the sample' });
  checker.finish(Date.now());
  const eps = checker.episodes.filter((e) => e.kind === 'double-run');
  t.equal(eps.length, 1, 'one double-run episode');
  t.match(eps[0]!.detail, /process groups \d+ on node-[ab], \d+ on node-[ab]/, eps[0]!.detail);
  t.ok(eps[0]!.durationMs > 0, `the episode lasted while both ran (${eps[0]!.durationMs} ms)`);
});
