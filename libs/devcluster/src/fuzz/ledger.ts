import type { Etcd3 } from 'etcd3';
import { idOf, leaderRecordKey, prefixes, type JobRecord, type NodeRecord, type PodRecord, type ServiceRecord, type TokenRecord } from '@berth/core';

/** What 2xx answers created and deleted, to hold etcd to afterwards; plus names seen in lists, to aim path parameters at. */
export class Ledger {
  /** Pod id -> deleted by a 2xx DELETE. */
  readonly pods = new Map<string, boolean>();
  /** Service name -> deleted. */
  readonly services = new Map<string, boolean>();
  readonly jobs = new Set<string>();
  /** API token name -> deleted (revoked) by a 2xx DELETE. */
  readonly tokens = new Map<string, boolean>();
  /** Node id -> deleted; nodes the fuzzer provisioned. */
  readonly nodes = new Map<string, boolean>();
  /** Ids and names of everything seen, by collection: what `known` path parameters pick from. */
  private readonly seen = { pods: new Set<string>(), nodes: new Set<string>(), services: new Set<string>(), jobs: new Set<string>(), tokens: new Set<string>() };

  constructor(
    /** Nodes that were there before the run (the test's own agent), which the fuzzer must not delete. */
    readonly protectedNodes: ReadonlySet<string>,
  ) {
    for (const n of protectedNodes) this.seen.nodes.add(n);
  }

  see(collection: keyof Ledger['seen'], ...names: string[]): void {
    for (const n of names) this.seen[collection].add(n);
  }

  /** A name or id of `collection` the cluster holds (or held), chosen by `pick`. */
  known(collection: keyof Ledger['seen'], pick: number, forDelete = false): string | undefined {
    const all = [...this.seen[collection]].filter((n) => !(forDelete && this.protectedNodes.has(n)));
    return all.length === 0 ? undefined : all[pick % all.length];
  }
}

async function values<T>(client: Etcd3, prefix: string): Promise<Map<string, T>> {
  const kvs = await client.getAll().prefix(prefix).strings();
  return new Map(Object.entries(kvs).map(([k, v]) => [k, JSON.parse(v) as T]));
}

/**
 * Problems with what etcd holds against the ledger: a record no 2xx answer
 * created (a partial write of a refused request), one a 2xx created that is
 * missing, a deleted one still there, a name claim without its record or
 * the reverse, a key outside the collections. Pods a service made belong to
 * a service some 2xx created; a deleted pod may linger while its agent
 * stops it (deletionRequested set).
 */
export async function etcdProblems(client: Etcd3, ledger: Ledger): Promise<string[]> {
  const problems: string[] = [];
  const pods = await values<PodRecord>(client, prefixes.pods);
  const services = await values<ServiceRecord>(client, prefixes.services);
  const jobs = await values<JobRecord>(client, prefixes.jobs);
  const nodes = await values<NodeRecord>(client, prefixes.nodes);
  const tokens = await values<TokenRecord>(client, prefixes.tokens);
  const podIds = new Set<string>();
  for (const [key, pod] of pods) {
    const id = idOf('pods', key);
    if (id === undefined || id !== pod.id) problems.push(`pod key ${key} holds pod ${pod.id}`);
    podIds.add(pod.id);
    if (pod.service !== undefined) {
      if (!ledger.services.has(pod.service)) problems.push(`pod ${pod.name} belongs to service ${pod.service}, which no 2xx created`);
    } else if (!ledger.pods.has(pod.id)) problems.push(`pod ${pod.name} (${pod.id}) is in etcd but no 2xx created it`);
    else if (ledger.pods.get(pod.id) === true && pod.deletionRequested === undefined) problems.push(`pod ${pod.name} was deleted (2xx) but is in etcd without deletionRequested`);
  }
  for (const [id, deleted] of ledger.pods) if (!deleted && !podIds.has(id)) problems.push(`pod ${id} was created (2xx) but is not in etcd`);
  const serviceNames = new Set([...services.values()].map((s) => s.name));
  for (const name of serviceNames) if (ledger.services.get(name) !== false) problems.push(`service ${name} is in etcd but ${ledger.services.has(name) ? 'was deleted (2xx)' : 'no 2xx created it'}`);
  for (const [name, deleted] of ledger.services) if (!deleted && !serviceNames.has(name)) problems.push(`service ${name} was created (2xx) but is not in etcd`);
  const jobIds = new Set([...jobs.values()].map((j) => j.id));
  for (const id of jobIds) if (!ledger.jobs.has(id)) problems.push(`job ${id} is in etcd but no 2xx created it`);
  for (const id of ledger.jobs) if (!jobIds.has(id)) problems.push(`job ${id} was accepted (2xx) but is not in etcd`);
  const tokenNames = new Set([...tokens.values()].map((x) => x.name));
  for (const name of tokenNames) if (ledger.tokens.get(name) !== false) problems.push(`token ${name} is in etcd but ${ledger.tokens.has(name) ? 'was revoked (2xx)' : 'no 2xx created it'}`);
  for (const [name, deleted] of ledger.tokens) if (!deleted && !tokenNames.has(name)) problems.push(`token ${name} was created (2xx) but is not in etcd`);
  for (const t of tokens.values()) if (JSON.stringify(t).includes('berth_')) problems.push(`token ${t.name} holds a secret in etcd`);
  const nodeIds = new Set([...nodes.values()].map((n) => n.id));
  for (const n of nodes.values()) {
    if (!ledger.protectedNodes.has(n.id) && ledger.nodes.get(n.id) !== false) problems.push(`node ${n.name} is in etcd but ${ledger.nodes.has(n.id) ? 'was deleted (2xx)' : 'no 2xx provisioned it'}`);
  }
  for (const [id, deleted] of ledger.nodes) if (!deleted && !nodeIds.has(id)) problems.push(`node ${id} was provisioned (2xx) but is not in etcd`);
  // Name claims and records agree.
  for (const [collection, records] of [['pods', pods], ['nodes', nodes]] as const) {
    const claims = await values<string>(client, `${prefixes.names}${collection}/`);
    const byId = new Map([...records.values()].map((r) => [r.id, r.name]));
    for (const [key, id] of claims) {
      const name = key.slice(key.lastIndexOf('/') + 1);
      if (byId.get(id) !== name) problems.push(`name claim ${key} names ${id}, which is not a ${collection.slice(0, -1)} of that name`);
    }
    const claimed = new Set([...claims.values()]);
    for (const [id, name] of byId) if (!claimed.has(id)) problems.push(`${collection.slice(0, -1)} ${name} (${id}) has no name claim`);
  }
  // Nothing outside the known collections.
  const jobKeys = await values<string>(client, prefixes.jobKeys);
  for (const [key, id] of jobKeys) if (!ledger.jobs.has(id)) problems.push(`idempotency key ${key} names job ${id}, which no 2xx accepted`);
  const known = [...Object.values(prefixes), leaderRecordKey];
  const keys = await client.getAll().prefix('/berth/').keys();
  for (const k of keys) {
    const key = k.toString();
    if (!known.some((p) => key.startsWith(p))) problems.push(`key ${JSON.stringify(key.slice(0, 100))} is outside every collection`);
  }
  return problems;
}

/**
 * Nodes the fuzzer provisioned run as detached agent processes: removes each
 * through the API at `apiUrl` (with `headers`), and kills the ones the API
 * could not remove.
 */
export async function removeProvisionedNodes(client: Etcd3, apiUrl: string, headers: Record<string, string> = {}): Promise<void> {
  const nodes = [...(await values<NodeRecord>(client, prefixes.nodes)).values()];
  for (const n of nodes.filter((n) => n.provisioner !== undefined)) {
    const res = await fetch(`${apiUrl}/v1/nodes/${n.id}`, { method: 'DELETE', headers, signal: AbortSignal.timeout(30_000) }).catch(() => undefined);
    if (res?.status !== 200 && n.provisioner?.pid !== undefined) {
      try {
        process.kill(n.provisioner.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
