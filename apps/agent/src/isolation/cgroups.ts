import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Which cgroup file system the agent found usable. */
export type CgroupVersion = 'cgroup-v1' | 'cgroup-v2';

/** What a pod's cgroup enforces. */
export interface CgroupLimits {
  cpu: number;
  memoryMiB: number;
  pidsLimit: number;
}

const CFS_PERIOD_US = 100_000;
/** The smallest quota the kernel accepts is 1 ms per period. */
const MIN_QUOTA_US = 1000;

interface MountInfo {
  mountPoint: string;
  /** The hierarchy path the mount shows at its mount point (not "/" inside a container, sometimes). */
  root: string;
  fsType: string;
  superOptions: string[];
}

function mounts(): MountInfo[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((line) => {
      const [left, right = ''] = line.split(' - ');
      const f = left!.split(' ');
      const [fsType = '', , superOpts = ''] = right.split(' ');
      return { mountPoint: unescape(f[4] ?? ''), root: unescape(f[3] ?? '/'), fsType, superOptions: superOpts.split(',') };
    });
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** `/proc/self/cgroup`: hierarchy (controllers, or '' for v2) -> this process's path in it. */
function ownCgroups(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) for (const c of m[1]!.split(',')) out.set(c, m[2]!);
  }
  return out;
}

/** The directory of this process's own cgroup in a mounted hierarchy. */
function ownDir(mount: MountInfo, own: string): string {
  const rel = mount.root !== '/' && own.startsWith(mount.root) ? own.slice(mount.root.length) : own;
  return path.join(mount.mountPoint, rel);
}

/**
 * Per-pod cgroups under `<parent>/berth/<node>/<pod>`.
 *
 * v1 (one hierarchy per controller, as on this machine kind): memory, cpu and
 * (when mounted) pids, each nested under the agent's own cgroup of that
 * hierarchy, so pods stay inside whatever limits the agent itself runs under
 * (a systemd unit, a container). v2 (one unified hierarchy): under
 * `/sys/fs/cgroup/berth/<node>` at the root, since v2 allows controllers to be
 * enabled only for cgroups whose parent holds no process, and the agent's
 * own cgroup holds the agent.
 */
export class Cgroups {
  private constructor(
    readonly version: CgroupVersion,
    /** Per controller hierarchy (v1) or the one unified one (v2): the node's parent directory. */
    private readonly parents: Map<string, string>,
  ) {}

  /**
   * Finds a usable cgroup file system and makes the node's parent cgroups;
   * undefined (with why) when there is none or it cannot be written (not
   * root, a read-only mount in a container).
   */
  static open(node: string): { cgroups: Cgroups } | { why: string } {
    let all: MountInfo[];
    try {
      all = mounts();
    } catch (err) {
      return { why: `cannot read /proc/self/mountinfo: ${(err as Error).message}` };
    }
    const own = ownCgroups();
    const unified = all.find((m) => m.fsType === 'cgroup2' && readOr(path.join(m.mountPoint, 'cgroup.controllers')).split(' ').includes('memory'));
    try {
      if (unified !== undefined) {
        const wanted = ['memory', 'cpu', 'pids'].filter((c) => readOr(path.join(unified.mountPoint, 'cgroup.controllers')).split(/\s+/).includes(c));
        let dir = unified.mountPoint;
        for (const part of ['', 'berth', node]) {
          dir = path.join(dir, part);
          fs.mkdirSync(dir, { recursive: true });
          // Enabled below each level, down to the node's cgroup, whose children are the pods.
          fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
        }
        return { cgroups: new Cgroups('cgroup-v2', new Map([['unified', dir]])) };
      }
      const parents = new Map<string, string>();
      for (const controller of ['memory', 'cpu', 'pids']) {
        const m = all.find((x) => x.fsType === 'cgroup' && x.superOptions.includes(controller));
        if (m === undefined) {
          if (controller === 'pids') continue;
          return { why: `no cgroup v1 ${controller} hierarchy mounted (and no cgroup v2 with the memory controller)` };
        }
        const dir = path.join(ownDir(m, own.get(controller) ?? '/'), 'berth', node);
        fs.mkdirSync(dir, { recursive: true });
        parents.set(controller, dir);
      }
      return { cgroups: new Cgroups('cgroup-v1', parents) };
    } catch (err) {
      return { why: `cannot create the node's cgroups: ${(err as Error).message}` };
    }
  }

  private dirs(podId: string): Array<[controller: string, dir: string]> {
    return [...this.parents].map(([c, parent]) => [c, path.join(parent, podId)]);
  }

  /**
   * Makes a pod's cgroup with its limits (a fresh one: one per run, so its
   * OOM counter counts this run only) and returns the `cgroup.procs` files
   * the pod's first process writes itself into before it runs the command.
   */
  create(podId: string, limits: CgroupLimits): string[] {
    this.removeNow(podId);
    const quota = Math.max(MIN_QUOTA_US, Math.round(limits.cpu * CFS_PERIOD_US));
    const bytes = Math.round(limits.memoryMiB * 1024 * 1024);
    for (const [c, dir] of this.dirs(podId)) {
      fs.mkdirSync(dir, { recursive: true });
      if (this.version === 'cgroup-v2') {
        write(dir, 'memory.max', String(bytes));
        // No swap: past its limit the pod is OOM-killed rather than swapped out.
        write(dir, 'memory.swap.max', '0', true);
        write(dir, 'cpu.max', `${quota} ${CFS_PERIOD_US}`, true);
        write(dir, 'pids.max', String(limits.pidsLimit), true);
      } else if (c === 'memory') {
        write(dir, 'memory.limit_in_bytes', String(bytes));
        // memory+swap may not be below memory; without swap accounting the file is absent.
        write(dir, 'memory.memsw.limit_in_bytes', String(bytes), true);
      } else if (c === 'cpu') {
        write(dir, 'cpu.cfs_period_us', String(CFS_PERIOD_US));
        write(dir, 'cpu.cfs_quota_us', String(quota));
      } else if (c === 'pids') {
        write(dir, 'pids.max', String(limits.pidsLimit));
      }
    }
    return this.dirs(podId).map(([, dir]) => path.join(dir, 'cgroup.procs'));
  }

  /** How many processes of the pod's cgroup the kernel's OOM killer has killed (for its memory limit) since it was made. */
  oomKills(podId: string): number {
    const memory = this.dirs(podId).find(([c]) => c === 'memory' || c === 'unified')?.[1];
    if (memory === undefined) return 0;
    const file = this.version === 'cgroup-v2' ? 'memory.events' : 'memory.oom_control';
    const m = /^oom_kill (\d+)$/m.exec(readOr(path.join(memory, file)));
    return m ? Number(m[1]) : 0;
  }

  /** Pids in a pod's cgroup (including any that left its process group). */
  pids(podId: string): number[] {
    const out = new Set<number>();
    for (const [, dir] of this.dirs(podId)) {
      for (const p of readOr(path.join(dir, 'cgroup.procs')).split('\n')) if (/^\d+$/.test(p)) out.add(Number(p));
    }
    return [...out];
  }

  /**
   * SIGKILLs whatever still runs in a pod's cgroup and removes it, waiting up
   * to `timeoutMs` for it to empty; false if some part could not be removed.
   */
  async remove(podId: string, timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.removeNow(podId)) return true;
      if (Date.now() >= deadline) return false;
      await sleep(20, undefined, { ref: false });
    }
  }

  /** Pod ids that have a cgroup under this node (a previous agent instance's leftovers, after a crash). */
  podIds(): string[] {
    const out = new Set<string>();
    for (const parent of this.parents.values()) {
      try {
        for (const e of fs.readdirSync(parent, { withFileTypes: true })) if (e.isDirectory()) out.add(e.name);
      } catch {
        /* gone */
      }
    }
    return [...out];
  }

  /** Removes the node's own cgroups (and the shared `berth` level when no other node uses it); those not empty stay. */
  close(): void {
    for (const dir of this.parents.values()) {
      for (const d of [dir, path.dirname(dir)]) {
        try {
          fs.rmdirSync(d);
        } catch {
          break; // pods (or other nodes) still in it
        }
      }
    }
  }

  /** One pass: kill the members, try rmdir; true once no directory of the pod is left. */
  private removeNow(podId: string): boolean {
    let left = false;
    for (const [, dir] of this.dirs(podId)) {
      if (!fs.existsSync(dir)) continue;
      if (this.version === 'cgroup-v2' && fs.existsSync(path.join(dir, 'cgroup.kill'))) write(dir, 'cgroup.kill', '1', true);
      for (const p of readOr(path.join(dir, 'cgroup.procs')).split('\n')) {
        if (!/^\d+$/.test(p)) continue;
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left = true; // EBUSY until its members are gone
      }
    }
    return !left;
  }
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function write(dir: string, file: string, value: string, optional = false): void {
  try {
    fs.writeFileSync(path.join(dir, file), value);
  } catch (err) {
    if (optional && ['ENOENT', 'EACCES', 'EINVAL', 'EOPNOTSUPP'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
    throw new Error(`cannot write ${value} to ${path.join(dir, file)}: ${(err as Error).message}`);
  }
}
