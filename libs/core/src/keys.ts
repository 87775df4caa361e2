/**
 * Every etcd key Berth reads or writes is built here, so
 * the layout an operator sees with etcdctl is defined in exactly one place.
 */

/** Root of everything Berth stores. */
export const ROOT = '/berth/';

/** Prefixes of each collection; each ends with a slash so a prefix never matches a sibling. */
export const prefixes = {
  election: `${ROOT}election/controller/`,
  nodes: `${ROOT}nodes/`,
  heartbeats: `${ROOT}heartbeats/`,
  pods: `${ROOT}pods/`,
  services: `${ROOT}services/`,
  jobs: `${ROOT}jobs/`,
  /** `/berth/jobclaims/<jobId>` -> replica id, on that replica's lease: which replica dispatches a job; gone when the replica dies. */
  jobClaims: `${ROOT}jobclaims/`,
  /** `/berth/jobkeys/<service>/<idempotency key>` -> job id: a resubmission with the same key answers the same job. */
  jobKeys: `${ROOT}jobkeys/`,
  events: `${ROOT}events/`,
  /** `/berth/tokens/<name>` -> API token record: the secret's sha-256, role, creation time (never the secret). */
  tokens: `${ROOT}tokens/`,
  /** `/berth/audit/<time>-<id>` -> one API mutation, allowed or refused, on a TTL lease. */
  audit: `${ROOT}audit/`,
  /** Leader-only reservations per node (see AllocationRecord). */
  allocations: `${ROOT}allocations/`,
  /** Unique-name index: `/berth/names/<collection>/<name>` -> id, so a name is claimed atomically. */
  names: `${ROOT}names/`,
  /**
   * `/berth/nodecreds/<nodeId>` -> the secret an agent's API requires of callers, on the node's heartbeat
   * lease. Agents may write it but not read it (etcd role berth-agent): only controllers learn other nodes' secrets.
   */
  nodeCreds: `${ROOT}nodecreds/`,
} as const;

/** Kinds of collection with a key per entity. */
export type Collection = keyof typeof prefixes;

/** The etcd election name; etcd3's Election puts its keys under `<namespace>election/<name>/`. */
export const ELECTION_NAME = 'controller';

/** The record the current leader writes (fenced) when it takes office: who, which term, since when. */
export const leaderRecordKey = `${ROOT}leader`;

/** Key of one entity in a collection. */
export function keyOf(collection: Collection, id: string): string {
  if (id.length === 0 || id.includes('/')) {
    throw new RangeError(`invalid ${collection} id ${JSON.stringify(id)}: must be non-empty and contain no "/"`);
  }
  return prefixes[collection] + id;
}

/** The id part of a key in a collection, or undefined when the key is not directly inside it. */
export function idOf(collection: Collection, key: string): string | undefined {
  const prefix = prefixes[collection];
  if (!key.startsWith(prefix)) return undefined;
  const id = key.slice(prefix.length);
  return id.length > 0 && !id.includes('/') ? id : undefined;
}

/** Events are keyed by ISO time then id, so `etcdctl get --prefix /berth/events/` lists them in order. */
export function eventKey(at: Date, id: string): string {
  return `${prefixes.events}${at.toISOString()}-${id}`;
}

/** Audit records are keyed by ISO time then id, like events, so a range from a time lists what came after it. */
export function auditKey(at: Date, id: string): string {
  return `${prefixes.audit}${at.toISOString()}-${id}`;
}

/** Key claiming a unique name in a collection (value: the id, as a JSON string). */
export function nameKey(collection: 'nodes' | 'pods' | 'services', name: string): string {
  return `${prefixes.names}${collection}/${name}`;
}

/** DNS-1123 label: what node and pod names must be. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Key claiming an idempotency key of a service's jobs (any characters: the key is URI-encoded). */
export function jobKeyKey(service: string, idempotencyKey: string): string {
  return `${prefixes.jobKeys}${service}/${encodeURIComponent(idempotencyKey)}`;
}
