import type { Logger } from 'pino';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errors, type NodeIsolation } from '@berth/core';
import type { PodIsolation } from './isolation/pod-isolation.js';
import { killGroup, leftoverOf, processAlive, signalProcess, spawnTied, waitGroupsGone } from './pod-supervisor.js';
import { followFile, readTail } from './log-file.js';
import { UnknownPodError, type ExitListener, type PodSpecForRuntime, type Runtime, type RuntimePodState } from './runtime.js';

interface ProcPod {
  spec: PodSpecForRuntime;
  state: RuntimePodState['state'];
  child?: ChildProcess;
  /** The supervisor's watcher process, continued after each pause so it can still end the group. */
  watcherPid?: number;
  exitCode?: number;
  /** The kernel's OOM killer ended the last run (its cgroup counted a kill). */
  oomKilled?: boolean;
  exited?: Promise<void>;
  cpuSample?: { at: number; ticks: number };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux
/** How long recover() waits for a killed leftover group to vanish, so its ports are free before the pod restarts. */
const LEFTOVER_GONE_MS = 3000;
/** How long an exited pod waits for the rest of its process group to be gone after SIGKILL. */
const GROUP_GONE_MS = 2000;
/** A pod's PATH unless it declares one: the agent's own environment is never passed on. */
export const DEFAULT_POD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Pods as host processes: each in its own process group,
 * stdout and stderr appended to `<dataDir>/pods/<id>/output.log`, pause =
 * SIGSTOP/SIGCONT of the group, stop = SIGTERM then SIGKILL after a timeout.
 *
 * A pod's group dies with the agent process, however the agent ends (a
 * supervisor in the group kills it when the agent's end of a socketpair
 * closes, see pod-supervisor.ts): a pod whose agent is gone must not keep
 * running while the cluster runs it elsewhere. Nothing is adopted after a
 * restart. The pid of each running group is still written to
 * `<dataDir>/pods/<id>/pid`, so a new agent instance ends whatever did
 * survive (a group still dying, one whose supervisor was killed on its own,
 * or one started by an agent without supervisors) before running the pods
 * again (`recover`).
 *
 * Isolation: a pod gets only its declared environment plus BERTH_POD_ID,
 * BERTH_POD_NAME (and PORT when it has one), and its own working directory
 * `<dataDir>/pods/<id>/work` (mode 0700, owned by the pod's user; made afresh
 * whenever a runtime takes the pod on). Its output and pid files stay in
 * `<dataDir>/pods/<id>`, which only the agent may write to: a pod that could
 * replace them (with a symlink, say) would make the agent write where it
 * points. With a `PodIsolation` the pod also runs as its own user and inside
 * its cgroup (see isolation/pod-isolation.ts).
 */
export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private readonly pods = new Map<string, ProcPod>();
  private readonly exitListeners: ExitListener[] = [];

  constructor(
    private readonly dataDir: string,
    private readonly log?: Logger,
    private readonly isolation?: PodIsolation,
  ) {
    if (isolation !== undefined) isolation.prepareDataDir(dataDir);
    else fs.mkdirSync(path.join(dataDir, 'pods'), { recursive: true });
  }

  /** What keeps this runtime's pods apart (the node record's `isolation`). */
  isolationReport(): NodeIsolation | undefined {
    return this.isolation?.describe();
  }

  /** The agent stops: what the runtime made for the node (its cgroups) goes, where no pod still uses it. */
  close(): void {
    this.isolation?.close();
  }

  private get(id: string): ProcPod {
    const pod = this.pods.get(id);
    if (pod === undefined) throw new UnknownPodError(id);
    return pod;
  }

  private podDir(id: string): string {
    return path.join(this.dataDir, 'pods', id);
  }

  /** Where a pod's output goes. */
  logFile(id: string): string {
    return path.join(this.podDir(id), 'output.log');
  }

  /** The pod's own working directory (its user's; everything else in podDir is the agent's). */
  workDir(id: string): string {
    return path.join(this.podDir(id), 'work');
  }

  private pidFile(id: string): string {
    return path.join(this.podDir(id), 'pid');
  }

  async create(spec: PodSpecForRuntime): Promise<void> {
    if (this.pods.has(spec.id)) return;
    if (spec.command === undefined || spec.command.length === 0) {
      throw errors.validation(`pod ${spec.name}: the process runtime needs a command (argv array)`, { field: 'spec.command' });
    }
    this.makeDirs(spec.id, true);
    this.pods.set(spec.id, { spec, state: 'created' });
  }

  async start(id: string): Promise<void> {
    const pod = this.get(id);
    if (pod.state === 'running' || pod.state === 'paused') return;
    // A previous run's group may still be dying (its exit is reported once it is gone): never two at once.
    await pod.exited;
    const command = pod.spec.command ?? [];
    this.makeDirs(id, false);
    const plan = this.isolation?.plan(id, { cpu: pod.spec.cpu, memoryMiB: pod.spec.memoryMiB }) ?? { prelude: '', prefix: [] };
    const out = fs.openSync(this.logFile(id), 'a', 0o600);
    let tied: ReturnType<typeof spawnTied>;
    try {
      tied = spawnTied(command, {
        output: out,
        cwd: this.workDir(id),
        prelude: plan.prelude,
        prefix: plan.prefix,
        ...(plan.spawnAs === undefined ? {} : { uid: plan.spawnAs.uid, gid: plan.spawnAs.gid }),
        // BERTH_POD_ID also lets a later agent instance recognise the group as this pod's (see recover).
        env: { PATH: DEFAULT_POD_PATH, ...pod.spec.env, BERTH_POD_ID: id, BERTH_POD_NAME: pod.spec.name },
      });
    } catch (err) {
      await this.isolation?.endRun(id);
      throw err;
    } finally {
      fs.closeSync(out);
    }
    const { child, tether } = tied;
    pod.child = child;
    pod.state = 'running';
    delete pod.exitCode;
    delete pod.oomKilled;
    delete pod.cpuSample;
    delete pod.watcherPid;
    if (child.pid !== undefined) fs.writeFileSync(this.pidFile(id), JSON.stringify({ pid: child.pid, startedAt: new Date().toISOString() }));
    pod.exited = new Promise((resolve) => {
      let finished = false;
      const done = (code: number) => {
        // 'error' and 'exit' can both arrive for one child; a newer start owns the pod.
        if (finished) return;
        finished = true;
        // This agent's end of the tether (see pod-supervisor.ts): the watcher is ended with the group below.
        tether?.destroy();
        if (pod.child !== child) return resolve();
        pod.state = 'exited';
        pod.exitCode = code;
        // Read before the cgroup goes (below), and before anyone can see the pod exited without it.
        if (code !== 0 && this.isolation?.oomKilled(id)) pod.oomKilled = true;
        // Like a container whose init died: whatever the main process left in its group goes too (the watcher
        // included). The pod has exited only once its group is gone: a restart must not start a new group while
        // the old one's members still run (the chaos run saw both for one sample).
        const pgid = child.pid;
        if (pgid !== undefined) killGroup(pgid, 'SIGKILL');
        fs.rmSync(this.pidFile(id), { force: true });
        void (async () => {
          if (pgid !== undefined && !(await waitGroupsGone([pgid], GROUP_GONE_MS))) {
            this.log?.warn({ pod: id, pgid }, `members of the pod's process group outlived SIGKILL by ${GROUP_GONE_MS} ms`);
          }
          // Members that left the process group (setsid) are still in the cgroup: they end here.
          await this.isolation?.endRun(id);
          resolve();
          for (const l of this.exitListeners) {
            try {
              l(id, code);
            } catch (err) {
              this.log?.error({ err, pod: id }, 'a pod exit listener failed');
            }
          }
        })();
      };
      child.once('error', (err) => {
        fs.appendFileSync(this.logFile(id), `berth: cannot start ${command[0]}: ${err.message}\n`);
        done(127);
      });
      child.once('exit', (code, signal) => done(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 9) : 9)));
    });
    // The watcher is gone while the pod still runs (killed on its own): nothing would end the group with
    // the agent any more, so end it now; the pod exits (137) and runs again per its restartPolicy.
    tether?.once('close', () => {
      const live = pod.child === child && (pod.state === 'running' || pod.state === 'paused');
      if (!live || child.pid === undefined || !processAlive(child.pid)) return;
      fs.appendFileSync(this.logFile(id), 'berth: the pod\'s supervisor process ended; killing the pod, which must not outlive its agent\n');
      killGroup(child.pid, 'SIGKILL');
    });
    // Once start resolves the pod is tied to the agent, and a pause can spare the watcher.
    const watcherPid = await tied.watcher;
    if (watcherPid !== undefined && pod.child === child) pod.watcherPid = watcherPid;
  }

  async stop(id: string, timeoutMs: number): Promise<{ forced: boolean }> {
    const pod = this.get(id);
    if (pod.state !== 'running' && pod.state !== 'paused') return { forced: false };
    // A stopped (paused) group would not act on SIGTERM before it is continued.
    this.signalGroup(pod, 'SIGCONT');
    this.signalGroup(pod, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      pod.exited!.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.signalGroup(pod, 'SIGKILL');
      await pod.exited;
    }
    return { forced: timedOut };
  }

  async kill(id: string, waitMs: number): Promise<boolean> {
    const pod = this.pods.get(id);
    if (pod === undefined || (pod.state !== 'running' && pod.state !== 'paused')) return true;
    this.signalGroup(pod, 'SIGKILL'); // reaches a stopped (paused) group too
    return Promise.race([pod.exited!.then(() => true), sleep(waitMs, false, { ref: false })]);
  }

  async pause(id: string): Promise<void> {
    const pod = this.get(id);
    if (pod.state !== 'running') return;
    this.signalGroup(pod, 'SIGSTOP');
    // A stopped watcher could not end the group should the agent die while the pod is paused.
    if (pod.watcherPid !== undefined) signalProcess(pod.watcherPid, 'SIGCONT');
    pod.state = 'paused';
    // Paused is reported once the process is stopped, not when the signal is sent: a pod held back by its cpu quota takes the stop only when it next runs.
    await untilState(pod.child?.pid, (state) => state === 'T');
  }

  async resume(id: string): Promise<void> {
    const pod = this.get(id);
    if (pod.state !== 'paused') return;
    this.signalGroup(pod, 'SIGCONT');
    pod.state = 'running';
    await untilState(pod.child?.pid, (state) => state !== 'T');
  }

  /** Kills the pod (at once) and deletes its directory with its logs; also for pods known only from disk. */
  async remove(id: string): Promise<void> {
    const pod = this.pods.get(id);
    if (pod !== undefined && (pod.state === 'running' || pod.state === 'paused')) await this.stop(id, 0);
    this.pods.delete(id);
    this.isolation?.release(id);
    fs.rmSync(this.podDir(id), { recursive: true, force: true });
  }

  /** Logs survive the agent: a pod known only from its directory (e.g. Failed before a restart) still has them. */
  async logs(id: string, opts: { tail?: number }): Promise<string> {
    this.assertKnown(id);
    return readTail(this.logFile(id), opts.tail);
  }

  followLogs(id: string, opts: { tail?: number }, signal: AbortSignal): AsyncIterable<string> {
    this.assertKnown(id);
    return followFile(this.logFile(id), opts.tail, () => this.pods.has(id), signal);
  }

  async stats(id: string): Promise<{ cpuPercent: number; memoryMiB: number } | undefined> {
    const pod = this.get(id);
    const pid = pod.child?.pid;
    if (pid === undefined || pod.state === 'exited' || pod.state === 'created') return undefined;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      const now = Date.now();
      const prev = pod.cpuSample;
      pod.cpuSample = { at: now, ticks };
      const cpuPercent = prev && now > prev.at ? Math.round((((ticks - prev.ticks) / CLOCK_TICKS) / ((now - prev.at) / 1000)) * 1000) / 10 : 0;
      return { cpuPercent, memoryMiB: Math.round(rssKb / 102.4) / 10 };
    } catch {
      return undefined;
    }
  }

  async list(): Promise<RuntimePodState[]> {
    return [...this.pods.keys()].map((id) => this.view(id));
  }

  async inspect(id: string): Promise<RuntimePodState | undefined> {
    return this.pods.has(id) ? this.view(id) : undefined;
  }

  onExit(listener: ExitListener): void {
    this.exitListeners.push(listener);
  }

  /**
   * Kills every process group a previous agent instance left running (found
   * through the pid files it could not delete when it died), waits until they
   * are gone, and returns the ids of all pods with a directory here. Normally
   * nothing is left (the groups die with their agent) but a group may still be
   * dying, or have lost its supervisor; nothing is adopted either way. A
   * group is only killed when its leader's environment names the pod, so a
   * recycled pid never hits a stranger.
   */
  async recover(): Promise<string[]> {
    const root = path.join(this.dataDir, 'pods');
    let ids: string[];
    try {
      ids = fs.readdirSync(root).filter((id) => !this.pods.has(id));
    } catch {
      return [];
    }
    const killed: number[] = [];
    for (const id of ids) {
      let pid: number;
      try {
        pid = (JSON.parse(fs.readFileSync(this.pidFile(id), 'utf8')) as { pid: number }).pid;
      } catch {
        continue; // no pid file: nothing was running
      }
      if (leftoverOf(pid, id)) {
        killGroup(pid, 'SIGKILL');
        killed.push(pid);
      }
      fs.rmSync(this.pidFile(id), { force: true });
    }
    await waitGroupsGone(killed, LEFTOVER_GONE_MS);
    await this.isolation?.sweep();
    return ids;
  }

  private view(id: string): RuntimePodState {
    const p = this.get(id);
    const live = p.state === 'running' || p.state === 'paused';
    return {
      id,
      state: p.state,
      ...(p.exitCode === undefined ? {} : { exitCode: p.exitCode }),
      ...(p.oomKilled === true && p.state === 'exited' ? { oomKilled: true } : {}),
      ...(live && p.child?.pid !== undefined ? { pid: p.child.pid } : {}),
    };
  }

  /**
   * The pod's directory (the agent's: passable by the pod's user, not
   * writable) and its working directory, made afresh when `fresh` (a new
   * pod for this runtime: what an earlier holder left, maybe owned by another
   * uid, is gone).
   */
  private makeDirs(id: string, fresh: boolean): void {
    const dir = this.podDir(id);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const user = this.isolation?.userOf(id);
    fs.chmodSync(dir, user === undefined ? 0o700 : 0o711);
    const work = this.workDir(id);
    if (fresh) fs.rmSync(work, { recursive: true, force: true });
    fs.mkdirSync(work, { recursive: true, mode: 0o700 });
    if (user !== undefined) fs.chownSync(work, user.uid, user.gid);
    fs.chmodSync(work, 0o700);
  }

  private assertKnown(id: string): void {
    if (!this.pods.has(id) && !fs.existsSync(this.podDir(id))) throw new UnknownPodError(id);
  }

  private signalGroup(pod: ProcPod, sig: NodeJS.Signals): void {
    const pid = pod.child?.pid;
    if (pid !== undefined) killGroup(pid, sig);
  }
}

/**
 * Waits (up to `timeoutMs`) until process `pid`'s state letter in
 * /proc/<pid>/stat (R, S, T, ...) satisfies `ok`, or the process is gone.
 */
async function untilState(pid: number | undefined, ok: (state: string) => boolean, timeoutMs = 5000): Promise<void> {
  if (pid === undefined) return;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let state: string;
    try {
      // The state follows the command name, which is in parentheses and may itself hold spaces or parentheses.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return;
    }
    if (ok(state)) return;
    await sleep(10);
  }
}
