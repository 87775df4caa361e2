import fs from 'node:fs';
import type { NodeUsage } from '@berth/core';

/** CPU time counters from the first line of /proc/stat. */
interface CpuTimes {
  idle: number;
  total: number;
}

/** Parses the aggregate `cpu` line of /proc/stat (idle = idle + iowait; the rest is busy). */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('/proc/stat has no aggregate cpu line');
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const idleAll = idle + iowait;
  const busy = user + nice + system + irq + softirq + steal;
  return { idle: idleAll, total: idleAll + busy };
}

/** Used memory in MiB from /proc/meminfo (MemTotal - MemAvailable), and the total. */
export function parseMeminfo(text: string): { totalMiB: number; usedMiB: number } {
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    if (m === null) throw new Error(`/proc/meminfo has no ${field}`);
    return Number(m[1]);
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  return { totalMiB: Math.floor(total / 1024), usedMiB: Math.round((total - available) / 1024) };
}

/** The 1-minute load average from /proc/loadavg. */
export function parseLoadavg(text: string): number {
  const load1 = Number(text.trim().split(/\s+/)[0]);
  if (!Number.isFinite(load1)) throw new Error('/proc/loadavg is malformed');
  return load1;
}

/** CPU % between two samples: (total - idle) / total * 100 over the deltas. */
export function cpuPercent(prev: CpuTimes, next: CpuTimes): number {
  const total = next.total - prev.total;
  const idle = next.idle - prev.idle;
  if (total <= 0) return 0;
  return Math.round(((total - idle) / total) * 1000) / 10;
}

/** Samples the host's usage; CPU % is over the time since the previous sample. */
export class UsageSampler {
  private prev: CpuTimes;

  constructor(private readonly proc = '/proc') {
    this.prev = parseProcStat(fs.readFileSync(`${proc}/stat`, 'utf8'));
  }

  sample(): NodeUsage {
    const next = parseProcStat(fs.readFileSync(`${this.proc}/stat`, 'utf8'));
    const usage: NodeUsage = {
      cpuPercent: cpuPercent(this.prev, next),
      memoryMiB: parseMeminfo(fs.readFileSync(`${this.proc}/meminfo`, 'utf8')).usedMiB,
      load1: parseLoadavg(fs.readFileSync(`${this.proc}/loadavg`, 'utf8')),
    };
    this.prev = next;
    return usage;
  }

  /** Total memory of the host in MiB, for the default capacity. */
  static totalMemoryMiB(proc = '/proc'): number {
    return parseMeminfo(fs.readFileSync(`${proc}/meminfo`, 'utf8')).totalMiB;
  }
}
