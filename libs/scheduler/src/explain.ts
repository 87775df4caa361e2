import type { Decision } from './types.js';

/** Count descending, then reason name (code-unit order, not locale, so it never varies by host). */
function byCountThenName([ra, ca]: [string, number], [rb, cb]: [string, number]): number {
  if (ca !== cb) return cb - ca;
  return ra < rb ? -1 : ra > rb ? 1 : 0;
}

/**
 * The Pending reason an operator reads, "0/5 nodes: 3 insufficient cpu, 2
 * NotReady": reasons by count descending, then by name, so the same
 * rejections always print the same message.
 */
export function formatUnschedulable(total: number, reasons: Record<string, number>): string {
  if (total === 0) return '0/0 nodes: no nodes in the cluster';
  const parts = Object.entries(reasons)
    .sort(byCountThenName)
    .map(([reason, count]) => `${count} ${reason}`);
  return `0/${total} nodes: ${parts.join(', ')}`;
}

/** The decision for a pod no node passed, from the count of rejected nodes per reason (out of `total`). */
export function unschedulable(podId: string, total: number, counts: ReadonlyMap<string, number>): Extract<Decision, { kind: 'unschedulable' }> {
  // Keys in message order, so equal decisions serialise equally whatever the node order was.
  const reasons: Record<string, number> = {};
  for (const [reason, count] of [...counts].sort(byCountThenName)) reasons[reason] = count;
  return { kind: 'unschedulable', podId, reasons, message: formatUnschedulable(total, reasons) };
}
