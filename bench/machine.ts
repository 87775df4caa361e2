import os from 'node:os';
import { execFileSync } from 'node:child_process';

/** One line describing the machine a benchmark ran on, for the docs. */
export function machineSummary(): string {
  const cpus = os.cpus();
  let etcd = 'etcd ?';
  try {
    etcd = execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? etcd;
  } catch {
    /* reported as unknown */
  }
  return `${cpus.length} x ${cpus[0]?.model.trim() ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}, ${etcd}`;
}

/** Median, p95 and max of a sample (nearest-rank). */
export function summarize(values: number[]): { n: number; median: number; p95: number; max: number; min: number } {
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return { n: s.length, median: rank(0.5), p95: rank(0.95), max: s[s.length - 1] ?? NaN, min: s[0] ?? NaN };
}
