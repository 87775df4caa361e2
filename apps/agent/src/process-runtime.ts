import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UnknownPodError, type PodSpecForRuntime, type Runtime, type RuntimePodState } from './runtime.js';

interface ProcPod {
  spec: PodSpecForRuntime;
  state: RuntimePodState['state'];
  child?: ChildProcess;
  exitCode?: number;
  exited?: Promise<void>;
  cpuSample?: { at: number; ticks: number };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * Pods as host processes (SPEC.md section 6): each in its own process group,
 * stdout and stderr appended to files under the agent's data dir, pause =
 * SIGSTOP/SIGCONT of the group, stop = SIGTERM then SIGKILL after a timeout.
 */
export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private readonly pods = new Map<string, ProcPod>();

  constructor(private readonly dataDir: string) {}

  private get(id: string): ProcPod {
    const pod = this.pods.get(id);
    if (pod === undefined) throw new UnknownPodError(id);
    return pod;
  }

  private logFile(id: string): string {
    return path.join(this.dataDir, 'pods', id, 'output.log');
  }

  async create(spec: PodSpecForRuntime): Promise<void> {
    if (this.pods.has(spec.id)) return;
    if (spec.command === undefined || spec.command.length === 0) throw new Error('the process runtime needs a command (argv array)');
    fs.mkdirSync(path.dirname(this.logFile(spec.id)), { recursive: true });
    this.pods.set(spec.id, { spec, state: 'created' });
  }

  async start(id: string): Promise<void> {
    const pod = this.get(id);
    if (pod.state === 'running' || pod.state === 'paused') return;
    const [cmd, ...args] = pod.spec.command ?? [];
    const out = fs.openSync(this.logFile(id), 'a');
    const child = spawn(cmd!, args, {
      detached: true,
      stdio: ['ignore', out, out],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...pod.spec.env },
    });
    fs.closeSync(out);
    pod.child = child;
    pod.state = 'running';
    delete pod.exitCode;
    pod.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        fs.appendFileSync(this.logFile(id), `berth: cannot start ${cmd}: ${err.message}\n`);
        pod.state = 'exited';
        pod.exitCode = 127;
        resolve();
      });
      child.once('exit', (code, signal) => {
        pod.state = 'exited';
        pod.exitCode = code ?? 128 + (signal ? (osSignals[signal] ?? 9) : 9);
        resolve();
      });
    });
  }

  async stop(id: string, timeoutMs: number): Promise<{ forced: boolean }> {
    const pod = this.get(id);
    if (pod.state !== 'running' && pod.state !== 'paused') return { forced: false };
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

  async pause(id: string): Promise<void> {
    const pod = this.get(id);
    if (pod.state !== 'running') return;
    this.signalGroup(pod, 'SIGSTOP');
    pod.state = 'paused';
  }

  async resume(id: string): Promise<void> {
    const pod = this.get(id);
    if (pod.state !== 'paused') return;
    this.signalGroup(pod, 'SIGCONT');
    pod.state = 'running';
  }

  async remove(id: string): Promise<void> {
    const pod = this.pods.get(id);
    if (pod === undefined) return;
    if (pod.state === 'running' || pod.state === 'paused') await this.stop(id, 0);
    this.pods.delete(id);
    fs.rmSync(path.dirname(this.logFile(id)), { recursive: true, force: true });
  }

  async logs(id: string, opts: { tail?: number }): Promise<string> {
    this.get(id);
    const text = fs.existsSync(this.logFile(id)) ? fs.readFileSync(this.logFile(id), 'utf8') : '';
    if (opts.tail === undefined) return text;
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-opts.tail).join('\n') + (lines.length > 0 ? '\n' : '');
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
    return [...this.pods.entries()].map(([id, p]) => ({ id, state: p.state, ...(p.exitCode === undefined ? {} : { exitCode: p.exitCode }) }));
  }

  /** Stops every pod (agent shutdown without deregistration leaves them running; this is for removal). */
  async stopAll(timeoutMs: number): Promise<void> {
    await Promise.all([...this.pods.keys()].map((id) => this.stop(id, timeoutMs)));
  }

  private signalGroup(pod: ProcPod, sig: NodeJS.Signals): void {
    const pid = pod.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      /* the group is gone */
    }
  }
}

const osSignals: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
