import type { Etcd3 } from 'etcd3';
import { keyOf, nameKey, newId, prefixes, type BerthEvent, type PodRecord, type PodSpec } from '@berth/core';
import { absent, commit, putJson, Repository } from '@berth/store';
import { waitFor } from '@berth/devcluster';

/**
 * Plays the API and the leader for agent tests that run no controller: it
 * creates pod records with their name claim and binds them to the agent's
 * node, with the same compare-and-swap writes the controller makes.
 */
export class LeaderStandIn {
  private readonly pods: Repository<PodRecord>;

  constructor(
    private readonly client: Etcd3,
    /** The node pods are bound to (known once the agent registered). */
    private readonly nodeId: () => string,
    /** Spec fields every created pod gets unless overridden. */
    private readonly defaults: Partial<PodSpec>,
  ) {
    this.pods = new Repository<PodRecord>(client, 'pods', 'pod');
  }

  async get(id: string): Promise<PodRecord | undefined> {
    return (await this.pods.get(id))?.value;
  }

  /** Compare-and-swap change of a pod record, retried on conflicts, as the API or the leader would make it. */
  async change(id: string, fn: (p: PodRecord) => PodRecord): Promise<number> {
    for (;;) {
      const cur = await this.pods.get(id);
      if (cur === undefined) throw new Error(`pod ${id} is gone`);
      try {
        return await this.pods.update(id, fn(cur.value), cur.modRevision);
      } catch (err) {
        if ((err as { code?: string }).code !== 'CONFLICT') throw err;
      }
    }
  }

  /** Creates a Pending pod with its name claim, then binds it to the node. */
  async createPod(name: string, spec: Partial<PodSpec>): Promise<string> {
    const id = newId();
    const pod: PodRecord = {
      id,
      name,
      spec: { env: {}, cpu: 0.1, memoryMiB: 64, ports: [], restartPolicy: 'Always', priority: 0, nodeSelector: {}, ...this.defaults, ...spec },
      desired: 'running',
      status: { phase: 'Pending', nodeId: null, reason: 'Created', message: '', restarts: 0, startedAt: null, finishedAt: null },
      createdAt: new Date().toISOString(),
    };
    const res = await commit(this.client, [absent(keyOf('pods', id)), absent(nameKey('pods', name))], [putJson(nameKey('pods', name), id), putJson(keyOf('pods', id), pod)]);
    if (!res.succeeded) throw new Error(`pod ${name} exists`);
    const nodeId = this.nodeId();
    await this.change(id, (p) => ({ ...p, status: { ...p.status, phase: 'Scheduled', nodeId, reason: 'Scheduled' } }));
    return id;
  }

  /** The pod's events, oldest first. */
  async eventsOf(id: string): Promise<BerthEvent[]> {
    return Object.entries(await this.client.getAll().prefix(prefixes.events).strings())
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, v]) => JSON.parse(v) as BerthEvent)
      .filter((e) => e.involved.kind === 'pod' && e.involved.id === id);
  }

  /** Events are written right after the status they describe: wait for one rather than read once. */
  eventSeen(id: string, pred: (e: BerthEvent) => boolean, what: string): Promise<true> {
    return waitFor(async () => (await this.eventsOf(id)).some(pred) || undefined, { what });
  }

  /** Waits until the pod satisfies `pred`, and returns it. */
  waitPod(id: string, what: string, pred: (p: PodRecord) => boolean, timeoutMs = 15_000): Promise<PodRecord> {
    return waitFor(async () => {
      const p = await this.get(id);
      return p !== undefined && pred(p) ? p : undefined;
    }, { what: `pod ${id} ${what}`, timeoutMs });
  }
}
