import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { NodeIsolation, PodLimitEnforcement } from '@berth/core';
import { Cgroups } from './cgroups.js';
import type { PodUidAllocator, RunAs } from './users.js';

/** `--pod-limits`: how cpu and memory are enforced (`auto`: cgroups when usable, else rlimits). */
export const POD_LIMIT_MODES = ['auto', 'cgroup', 'rlimit', 'none'] as const;
export type PodLimitMode = (typeof POD_LIMIT_MODES)[number];

/** Where setpriv (util-linux) is looked for: it switches the user after the pod has joined its cgroup. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'];

export interface PodIsolationOptions {
  node: string;
  runAs: RunAs;
  /** Every node of an agent process shares one (per-pod users only). */
  uids?: PodUidAllocator;
  limits: PodLimitMode;
  pidsLimit: number;
  log?: Logger;
  /** setpriv's path; default: found in SETPRIV; null: switch users through spawn's uid/gid only. */
  setpriv?: string | null;
}

/** How one run of a pod is started: as whom, and what its first process does before it execs the command. */
export interface RunPlan {
  /** The user the pod runs as; undefined: the agent's own. */
  user?: { uid: number; gid: number };
  /** The user is switched by spawn itself (no setpriv on the host, and no cgroup to join first). */
  spawnAs?: { uid: number; gid: number };
  /** Shell commands the supervisor shell runs first (join the cgroup, set rlimits). */
  prelude: string;
  /** argv put before the pod's command (the user switch). */
  prefix: string[];
}

/**
 * What keeps a node's process-runtime pods from the host and from each
 * other, beside the environment and working directory the runtime gives
 * them: the user each runs as, and how its cpu and memory are enforced.
 *
 * The user is switched by setpriv, not by spawn's uid/gid options: the pod's
 * first process (the supervisor shell, still root) must first write itself
 * into the pod's cgroup, which an unprivileged process may not, so that the
 * pod's command and everything it forks start inside the limits. Writing the
 * pid from the agent after spawn would race with the pod's first forks,
 * which would stay outside. setpriv also sets no_new_privs (setuid binaries
 * cannot give a pod root back) and clears supplementary groups.
 */
export class PodIsolation {
  private readonly cgroups: Cgroups | undefined;
  readonly enforcement: PodLimitEnforcement;
  private readonly setpriv: string | undefined;

  constructor(private readonly opts: PodIsolationOptions) {
    if (opts.runAs.kind !== 'agent') this.setpriv = opts.setpriv === null ? undefined : (opts.setpriv ?? SETPRIV.find((p) => fs.existsSync(p)));
    let cgroups: Cgroups | undefined;
    if (opts.limits === 'auto' || opts.limits === 'cgroup') {
      const opened = (process.getuid?.() ?? 1) === 0 ? Cgroups.open(opts.node) : { why: 'the agent does not run as root' };
      if ('cgroups' in opened) cgroups = opened.cgroups;
      else if (opts.limits === 'cgroup') throw new Error(`--pod-limits cgroup: ${opened.why}`);
      else opts.log?.warn({ why: opened.why }, "no usable cgroups: pods' memory is limited by rlimit (RLIMIT_DATA) only, and cpu not at all");
    }
    if (cgroups !== undefined && this.switchesUser && this.setpriv === undefined) {
      // Without setpriv the user must be switched by spawn, and an unprivileged first process cannot join its cgroup.
      const why = `switching users with cgroup limits needs setpriv (util-linux), not found in ${SETPRIV.join(', ')}`;
      cgroups.close();
      if (opts.limits === 'cgroup') throw new Error(`--pod-limits cgroup: ${why}; install it, or pass --run-as-user root`);
      opts.log?.warn({ why }, "pods' memory is limited by rlimit (RLIMIT_DATA) only, and cpu not at all");
      cgroups = undefined;
    }
    if (this.switchesUser && this.setpriv === undefined) opts.log?.warn('no setpriv: pods switch users through spawn, without no_new_privs');
    this.cgroups = cgroups;
    this.enforcement = cgroups !== undefined ? cgroups.version : opts.limits === 'none' ? 'none' : 'rlimit';
    if (opts.runAs.kind === 'shared') opts.log?.warn({ user: opts.runAs.label }, 'every pod runs as one user: pods are kept from the host, not from each other (see --run-as-user per-pod)');
  }

  /** Whether pods run as another user than the agent (their directories must then be reachable by that user). */
  get switchesUser(): boolean {
    return this.opts.runAs.kind !== 'agent';
  }

  describe(): NodeIsolation {
    const r = this.opts.runAs;
    if (r.kind === 'per-pod') return { user: 'per-pod', uidRange: `${r.first}-${r.last}`, limits: this.enforcement };
    return { user: r.label, limits: this.enforcement };
  }

  /** The user a pod runs as (claimed for as long as the runtime holds the pod); undefined: the agent's own. */
  userOf(podId: string): { uid: number; gid: number } | undefined {
    const r = this.opts.runAs;
    if (r.kind === 'shared') return { uid: r.uid, gid: r.gid };
    if (r.kind === 'per-pod') {
      const uid = this.opts.uids!.claim(podId);
      return { uid, gid: uid };
    }
    return undefined;
  }

  /** The pod left the runtime: its uid may go to another pod. */
  release(podId: string): void {
    this.opts.uids?.release(podId);
  }

  /** Prepares one run of a pod: its cgroup (made afresh), and how its first process joins it and drops privileges. */
  plan(podId: string, limits: { cpu: number; memoryMiB: number }): RunPlan {
    const user = this.userOf(podId);
    let prelude = '';
    if (this.cgroups !== undefined) {
      const procs = this.cgroups.create(podId, { ...limits, pidsLimit: this.opts.pidsLimit });
      const join = procs.map((f) => `echo $$ > ${shellQuote(f)}`).join(' && ');
      prelude = `{ ${join}; } || { echo 'berth: the pod could not join its cgroup' >&2; exit 125; }; `;
    } else if (this.enforcement === 'rlimit') {
      // RLIMIT_DATA (private writable memory, since Linux 4.7), not RLIMIT_AS: runtimes such as V8 and Go
      // reserve far more address space than they use, and would not start under an address-space limit.
      const kib = Math.max(1024, Math.round(limits.memoryMiB * 1024));
      prelude = `ulimit -d ${kib} 2>/dev/null || echo 'berth: could not set the memory rlimit' >&2; `;
    }
    if (user === undefined) return { prelude, prefix: [] };
    // (spawn's uid/gid also drops supplementary groups: libuv calls setgroups(0) when it switches.)
    if (this.setpriv === undefined) return { user, spawnAs: user, prelude, prefix: [] };
    return { user, prelude, prefix: [this.setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--no-new-privs', '--'] };
  }

  /** True when the kernel's OOM killer killed a process of the pod's current run (read before `endRun`). */
  oomKilled(podId: string): boolean {
    return this.cgroups !== undefined && this.cgroups.oomKills(podId) > 0;
  }

  /** After a run: kills what is left in its cgroup (members that left the process group too) and removes it. */
  async endRun(podId: string): Promise<void> {
    if (this.cgroups === undefined) return;
    if (!(await this.cgroups.remove(podId))) this.opts.log?.warn({ pod: podId, pids: this.cgroups.pids(podId) }, "the pod's cgroup could not be removed: processes in it outlived SIGKILL");
  }

  /** After an agent restart: removes every pod cgroup a previous instance left (killing what runs in them). */
  async sweep(): Promise<void> {
    if (this.cgroups === undefined) return;
    await Promise.all(this.cgroups.podIds().map((id) => this.endRun(id)));
  }

  /** The agent stops: the node's cgroups go once empty. */
  close(): void {
    this.cgroups?.close();
  }

  /**
   * Makes `dir` (the runtime's data directory) and checks every directory
   * above it can be passed through by other users, so a pod running as its
   * own user reaches its working directory inside.
   */
  prepareDataDir(dir: string): void {
    fs.mkdirSync(path.join(dir, 'pods'), { recursive: true });
    if (!this.switchesUser) return;
    fs.chmodSync(dir, 0o711);
    fs.chmodSync(path.join(dir, 'pods'), 0o711);
    for (let d = path.dirname(path.resolve(dir)); ; d = path.dirname(d)) {
      if ((fs.statSync(d).mode & 0o001) === 0) {
        throw new Error(`--data-dir ${dir}: ${d} cannot be passed through by other users (mode ${(fs.statSync(d).mode & 0o777).toString(8)}), so pods running as their own user could not reach their working directories; chmod o+x it or choose another --data-dir`);
      }
      if (d === path.dirname(d)) break;
    }
  }
}

/** One shell word. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
