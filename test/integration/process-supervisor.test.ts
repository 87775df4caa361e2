import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import type { PodRecord } from '@berth/core';
import { waitFor } from '@berth/devcluster';
import { podGroups, podProcesses, type PodProcess } from '../helpers/pod-processes.js';
import { processAgent } from '../helpers/process-agent.js';

// Process-runtime pods die with their agent, however it dies: a real agent process against a real
// etcd (the test binds pods itself, as the leader would), observed through the host's process table.

const NODE = 'tied1';
/** How soon after the agent's SIGKILL every process of its pods must be gone (the watchers need a few ms). */
const GONE_WITHIN_MS = 2000;

/** Ignores SIGTERM, like a pod that does not stop when asked. */
const STUBBORN = ['sh', '-c', 'trap "" TERM; echo up; while :; do sleep 1; done'];
/** Has children of its own, one of which ignores SIGTERM too. */
const FAMILY = ['sh', '-c', 'sleep 1000 & sh -c \'trap "" TERM; while :; do sleep 1; done\' & echo up; wait'];

t.test('process-runtime pods do not outlive their agent', async (t) => {
  const { dataDir, agent, stand, agentApi, pidOf, ...a } = await processAgent(t, NODE, ['--restart-backoff-max', '1000']);
  const createPod = (name: string, command: string[], extra: Partial<PodRecord['spec']> = {}) => a.createPod(name, { command, ...extra });
  const waitPod = (id: string, what: string, pred: (p: PodRecord) => boolean) => stand.waitPod(id, what, pred);
  const logsOf = async (id: string) => (await agentApi(`/v1/pods/${id}/logs`)).text();
  /** The supervisor's watcher: the one process of the pod's group still running the supervisor script. */
  const watcherOf = (procs: PodProcess[]) => procs.find((p) => p.pid !== p.pgid && p.cmdline.includes(' berth-pod '));
  /** Each pod runs as exactly one process group, led by the pid the agent reports, with its watcher in it. */
  const runningOnce = async (id: string): Promise<PodProcess[] | undefined> => {
    const pid = await pidOf(id);
    const procs = podProcesses([id]).get(id) ?? [];
    const groups = new Set(procs.map((p) => p.pgid));
    return pid !== undefined && groups.size === 1 && groups.has(pid) && watcherOf(procs) !== undefined ? procs : undefined;
  };

  const stubborn = await createPod('stubborn', STUBBORN);
  const family = await createPod('family', FAMILY);
  const paused = await createPod('paused', STUBBORN);
  const pods = [stubborn, family, paused];
  for (const id of pods) {
    await waitPod(id, 'Running', (p) => p.status.phase === 'Running');
    await waitFor(async () => (await logsOf(id)).includes('up'), { what: `pod ${id} to be up` });
  }
  await stand.change(paused, (p) => ({ ...p, desired: 'paused' }));
  await waitPod(paused, 'Paused', (p) => p.status.phase === 'Paused');

  t.test('each pod is one process group with its watcher; no pod process holds an end of a tether', async (t) => {
    // A pod's short-lived child may exit between the listing of its processes and this read: a
    // process that is gone (ENOENT for its fd directory or one fd) holds no socket.
    const socketsOf = (pid: number) => {
      let fds: string[];
      try {
        fds = fs.readdirSync(`/proc/${pid}/fd`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
      return fds.flatMap((fd) => {
        try {
          const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
          return link.startsWith('socket:') ? [link] : [];
        } catch {
          return [];
        }
      });
    };
    // The agent's ends of every tether, and the watchers' ends (their fd 3).
    const tethers = new Set(socketsOf(agent.process.pid));
    for (const id of pods) {
      const procs = await waitFor(() => runningOnce(id), { what: `pod ${id} to run once with its watcher` });
      const watcher = watcherOf(procs)!;
      tethers.add(fs.readlinkSync(`/proc/${watcher.pid}/fd/3`));
    }
    for (const id of pods) {
      const procs = podProcesses([id]).get(id)!;
      const main = procs.find((p) => p.pid === p.pgid)!;
      t.notMatch(main.cmdline, /berth-pod/, 'the main process is the command itself (exec)');
      for (const p of procs) {
        if (p === watcherOf(procs)) continue;
        t.same(socketsOf(p.pid).filter((s) => tethers.has(s)), [], `process ${p.pid} (${p.cmdline}) holds no tether`);
      }
    }
    await waitFor(() => ((podProcesses([family]).get(family)?.length ?? 0) >= 4 ? true : undefined), { what: 'the family pod to have its children' });
    t.equal(podGroups([family]).get(family)?.length, 1, 'the family pod runs its children in its own one group');
    const pausedProcs = podProcesses([paused]).get(paused)!;
    const stateOf = (pid: number) => {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat[stat.lastIndexOf(')') + 2]; // the command name may hold ") "
    };
    t.equal(stateOf(pausedProcs.find((p) => p.pid === p.pgid)!.pid), 'T', 'the paused pod is stopped');
    t.not(stateOf(watcherOf(pausedProcs)!.pid), 'T', 'but its watcher is not: it can still end the group');
  });

  t.test('SIGKILL the agent: every process of every pod is gone at once; a restarted agent runs each pod once again', async (t) => {
    const before = new Map<string, PodRecord>();
    for (const id of pods) before.set(id, (await stand.get(id))!);
    const oldGroups = podGroups(pods);
    t.equal(oldGroups.size, pods.length, 'every pod has processes before the kill');
    const killedAt = Date.now();
    agent.process.signal('SIGKILL');
    await waitFor(() => podProcesses(pods).size === 0, { what: 'every pod process to be gone', intervalMs: 25, timeoutMs: 10_000 });
    const goneMs = Date.now() - killedAt;
    t.comment(`every pod process gone ${goneMs} ms after the agent's SIGKILL`);
    t.ok(goneMs < GONE_WITHIN_MS, `gone within ${GONE_WITHIN_MS} ms (took ${goneMs} ms)`);
    await agent.process.waitExit();
    for (const id of pods) t.ok(fs.existsSync(path.join(dataDir, 'pods', id, 'pid')), 'the dead agent left its pid file behind');

    await agent.start();
    for (const id of pods) {
      const want = before.get(id)!;
      const after = await waitPod(id, 'running again, restarted once', (p) => p.status.restarts === want.status.restarts + 1 && p.status.phase === want.status.phase);
      t.equal(after.status.reason, id === paused ? 'Paused' : 'Restarted', `${after.name} ran again (and paused again if it was)`);
      const procs = await waitFor(() => runningOnce(id), { what: `pod ${id} to run once again` });
      const group = procs[0]!.pgid;
      t.notOk(oldGroups.get(id)!.includes(group), 'in a new process group');
      const pidFile = JSON.parse(fs.readFileSync(path.join(dataDir, 'pods', id, 'pid'), 'utf8')) as { pid: number };
      t.equal(pidFile.pid, group, 'the stale pid file was replaced, not adopted');
    }
    const events = await stand.eventsOf(stubborn);
    t.ok(events.some((e) => e.reason === 'Restarted' && /agent restarted/.test(e.message)), 'the restart says why');
  });

  t.test('a pod that exits on its own reports its exit code (127: no such command), and its watcher goes with it', async (t) => {
    const id = await createPod('quitter', ['sh', '-c', 'echo bye; exit 3'], { restartPolicy: 'Never' });
    const p = await waitPod(id, 'Failed', (p) => p.status.phase === 'Failed');
    t.equal(p.status.exitCode, 3, 'the exit code is the command\'s');
    t.match(await logsOf(id), /bye/, 'its output is captured');
    await waitFor(() => !podProcesses([id]).has(id), { what: 'no process of the exited pod' });
    t.pass('nothing of it is left');
    const missing = await createPod('missing', ['no-such-command-for-berth'], { restartPolicy: 'Never' });
    const m = await waitPod(missing, 'Failed', (p) => p.status.phase === 'Failed');
    t.equal(m.status.exitCode, 127, 'a command that does not exist exits 127');
    // The shell says "not found"; setpriv (pods running as their own user) "No such file or directory".
      t.match(await logsOf(missing), /no-such-command-for-berth: (not found|No such file or directory)/, 'and its log says so');
  });

  t.test('stop: SIGTERM to the group, SIGKILL after the stop timeout; nothing is left', async (t) => {
    await stand.change(stubborn, (p) => ({ ...p, desired: 'stopped' }));
    const p = await waitPod(stubborn, 'Stopped', (p) => p.status.phase === 'Stopped');
    t.equal(p.status.exitCode, 137, 'it ignored SIGTERM, so it was killed');
    await waitFor(() => !podProcesses([stubborn]).has(stubborn), { what: 'no process of the stopped pod' });
    t.pass('the whole group is gone, watcher included');
  });

  t.test('a pod whose watcher is killed on its own is ended (it could outlive the agent) and runs again', async (t) => {
    const before = (await stand.get(family))!;
    const procs = (await waitFor(() => runningOnce(family), { what: 'the family pod to run' }))!;
    process.kill(watcherOf(procs)!.pid, 'SIGKILL');
    const after = await waitPod(family, 'running again', (p) => p.status.phase === 'Running' && p.status.restarts === before.status.restarts + 1);
    t.ok((await stand.eventsOf(family)).some((e) => e.reason === 'BackOff' && /exited with code 137/.test(e.message)), 'it was killed (137)');
    const again = await waitFor(() => runningOnce(family), { what: 'the family pod to run once again' });
    t.not(again[0]!.pgid, procs[0]!.pgid, 'in a new group');
    t.match(await logsOf(family), /supervisor process ended/, 'the log says why');
  });
});
