
export { machineSummary } from '@berth/devcluster';

/** Median, p95 and max of a sample (nearest-rank). */
export function summarize(values: number[]): { n: number; median: number; p95: number; max: number; min: number } {
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return { n: s.length, median: rank(0.5), p95: rank(0.95), max: s[s.length - 1] ?? NaN, min: s[0] ?? NaN };
}
