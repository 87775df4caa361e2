/**
 * CPU time per process and for the whole machine, from /proc: on a 2-core
 * machine a benchmark is usually CPU-bound, and who spent the cores (and how
 * much went to other work on the host) says where the time goes.
 */
import fs from 'node:fs';

const TICK_HZ = 100; // USER_HZ: 100 on every Linux this runs on

/** User and system (kernel: syscalls, loopback TCP) CPU seconds of a process (0 once it is gone). */
export function cpuSeconds(pid: number): { user: number; sys: number } {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / TICK_HZ, sys: Number(f[12]) / TICK_HZ };
  } catch {
    return { user: 0, sys: 0 };
  }
}

type UserSys = { user: number; sys: number };
const sum = (pids: number[]): UserSys =>
  pids.map(cpuSeconds).reduce((a, b) => ({ user: a.user + b.user, sys: a.sys + b.sys }), { user: 0, sys: 0 });

/** Busy and total CPU seconds of the whole machine (all cores) since boot. */
export function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / TICK_HZ, total: total / TICK_HZ };
}

/** Processes whose environment names one of `ids` as BERTH_POD_ID (process-runtime pods), by pod id. */
export function podPids(ids: Iterable<string>): Map<string, number[]> {
  const wanted = new Set(ids);
  const found = new Map<string, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const id = /(?:^|\0)BERTH_POD_ID=([^\0]+)/.exec(fs.readFileSync(`/proc/${entry}/environ`, 'utf8'))?.[1];
      if (id === undefined || !wanted.has(id)) continue;
      found.set(id, [...(found.get(id) ?? []), Number(entry)]);
    } catch {
      /* exited while we looked, or not ours to read */
    }
  }
  return found;
}

/**
 * Samples CPU seconds of named groups of processes, and of the machine,
 * between `start()` and `stop()`: the result is CPU seconds per group, the
 * machine's busy seconds, and the wall time.
 */
export class CpuMeter {
  private before = new Map<string, UserSys>();
  private machineBefore = machineCpu();
  private t0 = performance.now();

  constructor(private readonly groups: () => Record<string, number[]>) {}

  start(): void {
    this.before = new Map(Object.entries(this.groups()).map(([k, pids]) => [k, sum(pids)]));
    this.machineBefore = machineCpu();
    this.t0 = performance.now();
  }

  stop(): { wallS: number; machineBusyS: number; cores: number; byGroup: Record<string, UserSys> } {
    const wallS = (performance.now() - this.t0) / 1000;
    const m = machineCpu();
    const byGroup: Record<string, UserSys> = {};
    for (const [k, pids] of Object.entries(this.groups())) {
      const now = sum(pids);
      const was = this.before.get(k) ?? { user: 0, sys: 0 };
      byGroup[k] = { user: now.user - was.user, sys: now.sys - was.sys };
    }
    const cores = (m.total - this.machineBefore.total) / wallS;
    return { wallS, machineBusyS: m.busy - this.machineBefore.busy, cores, byGroup };
  }
}

/**
 * "c1 1.2 s (sys 0.5; 310 us/req), etcd ..., other processes on the host 0.2 s"
 * for a CpuMeter result; `per` divides each group's CPU by a count of work
 * done (requests, jobs) to give its cost per unit.
 */
export function describeCpu(r: ReturnType<CpuMeter['stop']>, per?: { count: number; unit: string }): string {
  const ours = Object.values(r.byGroup).reduce((a, b) => a + b.user + b.sys, 0);
  const each = (s: number) => (per === undefined || per.count === 0 ? '' : `; ${((s / per.count) * 1e6).toFixed(0)} us/${per.unit}`);
  const parts = Object.entries(r.byGroup)
    .filter(([, s]) => s.user + s.sys >= 0.05)
    .map(([k, s]) => `${k} ${(s.user + s.sys).toFixed(1)} s (sys ${s.sys.toFixed(1)}${each(s.user + s.sys)})`);
  parts.push(`other processes on the host ${Math.max(0, r.machineBusyS - ours).toFixed(1)} s`);
  const capacity = r.wallS * Math.round(r.cores);
  return `${r.wallS.toFixed(1)} s wall x ${Math.round(r.cores)} cores = ${capacity.toFixed(1)} CPU-s, busy ${r.machineBusyS.toFixed(1)} (${((r.machineBusyS / capacity) * 100).toFixed(0)} %): ${parts.join(', ')}`;
}
