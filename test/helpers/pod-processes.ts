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
