import type { PodRecord, PodStatus } from '@berth/core';
import type { LocalPod } from './pod-actions.js';

type Sample = { cpuPercent: number; memoryMiB: number };

/** True when a sample differs notably from the usage last written: 5 CPU points, or 10% (at least 4 MiB) of memory. */
export function notableUsage(prev: PodStatus['usage'], s: Sample): boolean {
  return prev === undefined || Math.abs(s.cpuPercent - prev.cpuPercent) >= 5 || Math.abs(s.memoryMiB - prev.memoryMiB) >= Math.max(4, prev.memoryMiB * 0.1);
}

/**
 * Samples the running docker pods among `pods` (other runtimes report no
 * per-pod usage) and keeps a notable sample in `local.usage` for the next
 * sync to write; returns the pods that got one. Writing only notable
 * changes keeps a steady pod from rewriting its record every interval.
 */
export async function samplePodUsage(pods: Iterable<LocalPod>, record: (id: string) => PodRecord | undefined): Promise<LocalPod[]> {
  const changed: LocalPod[] = [];
  await Promise.all(
    [...pods].map(async (l) => {
      if (l.node.runtime.kind !== 'docker') return;
      const pod = record(l.id);
      if (pod?.status.phase !== 'Running') return;
      const s = await l.node.runtime.stats(l.id).catch(() => undefined);
      if (s === undefined || !notableUsage(pod.status.usage, s)) return;
      l.usage = { ...s, at: new Date().toISOString() };
      changed.push(l);
    }),
  );
  return changed;
}
