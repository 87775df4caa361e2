import fs from 'node:fs';

/** A live process of a process-runtime pod, found by the BERTH_POD_ID in its environment. */
export interface PodProcess {
  pid: number;
  /** Its process group: one per run of the pod. */
  pgid: number;
  /** argv joined by spaces. */
  cmdline: string;
}

/**
 * Every live (not zombie) process on this host whose environment names one of
 * `ids` as BERTH_POD_ID, by pod id: what an independent observer sees of the
 * pods, whatever the agent believes.
 */
export function podProcesses(ids: Iterable<string>): Map<string, PodProcess[]> {
  const wanted = new Set(ids);
  const found = new Map<string, PodProcess[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const id = /(?:^|\0)BERTH_POD_ID=([^\0]+)/.exec(fs.readFileSync(`/proc/${entry}/environ`, 'utf8'))?.[1];
      if (id === undefined || !wanted.has(id)) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' || state === 'X') continue;
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      const list = found.get(id) ?? [];
      list.push({ pid: Number(entry), pgid: Number(pgrp), cmdline });
      found.set(id, list);
    } catch {
      /* exited while we looked, or not ours to read */
    }
  }
  return found;
}

/** The process groups running each pod (one per run: more than one means the pod runs twice). */
export function podGroups(ids: Iterable<string>): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  for (const [id, procs] of podProcesses(ids)) groups.set(id, [...new Set(procs.map((p) => p.pgid))]);
  return groups;
}

/** SIGKILLs every process still running one of `ids`: a test's last resort at teardown. */
export function killPodProcesses(ids: Iterable<string>): void {
  for (const procs of podProcesses(ids).values()) {
    for (const p of procs) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/**
 * Removes the cgroups agents of node `node` left behind: an agent killed
 * before it removed them (a test's SIGKILL, or a SIGTERM whose grace ran
 * out) leaves them to its next start, which may never come. The agent nests
 * them under this process's own cgroups (it is a child of it): pod cgroups
 * in `berth/<node>` of each v1 hierarchy (or of the v2 root), then the
 * node's and the shared `berth` level once empty. Returns what could not be
 * removed.
 */
export function removeNodeCgroups(node: string): string[] {
  const own = new Map<string, string>();
  try {
    for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const m = /^\d+:([^:]*):(.*)$/.exec(line);
      if (m) for (const c of m[1]!.split(',')) own.set(c, m[2]!);
    }
  } catch {
    return [];
  }
  const nodeDirs = [...['memory', 'cpu', 'pids'].map((c) => `/sys/fs/cgroup/${c}${own.get(c) ?? ''}/berth/${node}`.replace('//', '/')), `/sys/fs/cgroup/berth/${node}`];
  const left: string[] = [];
  for (const dir of nodeDirs.filter((d) => fs.existsSync(d))) {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const pod = `${dir}/${e.name}`;
      for (const pid of fs.readFileSync(`${pod}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      try {
        fs.rmdirSync(pod);
      } catch {
        left.push(pod);
      }
    }
    for (const d of [dir, dir.slice(0, dir.lastIndexOf('/'))]) {
      try {
        fs.rmdirSync(d);
      } catch {
        if (d === dir) left.push(d);
        break;
      }
    }
  }
  return left;
}
