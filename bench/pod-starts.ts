/**
 * Create-to-Running of pods created through the REST API, shared by the
 * docker and process pod benchmarks: P pods are POSTed (a few in flight,
 * optionally paced), and per pod the time from the POST being sent to the
 * phase Running seen through a pods Informer in this process is measured,
 * with the time to the binding and to the agent's Starting on the way.
 */
import pino from 'pino';
import { prefixes, type NodeRecord, type PodRecord } from '@berth/core';
import { createEtcdClient, Informer } from '@berth/store';
import { waitFor, type ControllerProcess } from '@berth/devcluster';

/** Watch caches of the nodes and pods of the cluster at `endpoint`, started; `close` stops them. */
export async function watchNodesAndPods(endpoint: string) {
  const client = createEtcdClient(endpoint);
  const log = pino({ level: 'silent' });
  const nodes = new Informer<NodeRecord>(client, prefixes.nodes, log);
  const pods = new Informer<PodRecord>(client, prefixes.pods, log);
  await Promise.all([nodes.start(), pods.start()]);
  const close = async () => {
    await Promise.all([nodes.stop(), pods.stop()]);
    client.close();
  };
  return { nodes, pods, close };
}

export interface PodStartsOptions {
  leader: ControllerProcess;
  pods: Informer<PodRecord>;
  count: number;
  inFlight: number;
  /** Pods created per second (0: as fast as the in-flight limit allows, i.e. a burst). */
  rate: number;
  /** Name of the i-th pod. */
  name: (i: number) => string;
  /** POST body of a pod named `name`. */
  body: (name: string) => Record<string, unknown>;
}

export interface PodStarts {
  /** Per pod, ms from the POST to Running, to bound, to Starting, and from Starting to Running. */
  toRunning: number[];
  toBound: number[];
  toStarting: number[];
  startingToRunning: number[];
  /** First POST to last Running, ms. */
  wallMs: number;
}

/** Nearest-rank percentile. */
export function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
}

/** Creates the pods and resolves once every one of them is Running. */
export async function measurePodStarts(o: PodStartsOptions): Promise<PodStarts> {
  const sentAt = new Map<string, number>();
  const seen = { bound: new Map<string, number>(), starting: new Map<string, number>(), running: new Map<string, number>() };
  const onChange = ({ item }: { item?: { value: PodRecord } }) => {
    if (!item) return;
    const { name, status } = item.value;
    if (!sentAt.has(name)) return;
    const now = performance.now();
    if (status.phase !== 'Pending' && !seen.bound.has(name)) seen.bound.set(name, now);
    if ((status.phase === 'Starting' || status.phase === 'Running') && !seen.starting.has(name)) seen.starting.set(name, now);
    if (status.phase === 'Running' && !seen.running.has(name)) seen.running.set(name, now);
  };
  o.pods.on('change', onChange);
  try {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: o.inFlight }, async () => {
      while (next < o.count) {
        const i = next++;
        const name = o.name(i);
        // Paced creation, like Kubernetes' pod-startup SLO measurements, when a rate is given.
        if (o.rate > 0) await new Promise((r) => setTimeout(r, Math.max(0, t0 + (i * 1000) / o.rate - performance.now())));
        sentAt.set(name, performance.now());
        const res = await o.leader.request('POST', '/v1/pods', o.body(name));
        if (res.status !== 201) throw new Error(`POST /v1/pods ${name}: ${res.status} ${JSON.stringify(res.body)}`);
      }
    }));
    await waitFor(() => seen.running.size === o.count, { what: `${o.count} pods Running`, timeoutMs: 300_000, intervalMs: 50 });
  } finally {
    o.pods.off('change', onChange);
  }
  const since = (m: Map<string, number>) => [...m.entries()].map(([name, at]) => at - sentAt.get(name)!);
  return {
    toRunning: since(seen.running),
    toBound: since(seen.bound),
    toStarting: since(seen.starting),
    startingToRunning: [...seen.running.entries()].map(([name, at]) => at - seen.starting.get(name)!),
    wallMs: Math.max(...seen.running.values()) - Math.min(...sentAt.values()),
  };
}
