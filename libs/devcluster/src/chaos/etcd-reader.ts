import type { AllocationRecord, HeartbeatRecord, LeaderRecord, NodeRecord, PodRecord, ReplicaInfo } from '@berth/core';
import { leaderRecordKey, prefixes } from '@berth/core';

/*
 * etcd as the chaos checker reads it: one read-only transaction over etcd's
 * JSON gateway (`/v3/kv/txn`), so pods, nodes, reservations, heartbeats and
 * election keys all come from one revision, through no code of Berth's (not
 * its etcd client, its watch caches or its repositories). A linearizable
 * read, tried on each member in turn, so one member down changes nothing.
 */

/** One key as read. */
export interface Kv<T> {
  key: string;
  value: T;
  createRevision: number;
  modRevision: number;
  version: number;
}

/** Everything the checker reads, at one revision. */
export interface EtcdSnapshot {
  revision: number;
  /** When the read was sent and answered (ms since the epoch). */
  sentAt: number;
  answeredAt: number;
  pods: Map<string, PodRecord>;
  nodes: Map<string, NodeRecord>;
  allocations: Map<string, AllocationRecord>;
  heartbeats: Map<string, HeartbeatRecord>;
  /** Election keys, oldest first: the first holds office. */
  election: Array<Kv<ReplicaInfo>>;
  leader: Kv<LeaderRecord> | undefined;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
/** The end of the range of every key with `prefix` (its last byte plus one). */
function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix, 'utf8');
  buf[buf.length - 1] = buf[buf.length - 1]! + 1;
  return buf.toString('base64');
}

interface RawKv {
  key: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
}

function decode<T>(raw: RawKv): Kv<T> {
  return {
    key: Buffer.from(raw.key, 'base64').toString('utf8'),
    value: JSON.parse(Buffer.from(raw.value ?? '', 'base64').toString('utf8')) as T,
    createRevision: Number(raw.create_revision ?? 0),
    modRevision: Number(raw.mod_revision ?? 0),
    version: Number(raw.version ?? 0),
  };
}

/** The ranges of one snapshot, in the order of the transaction. */
const RANGES = [prefixes.pods, prefixes.nodes, prefixes.allocations, prefixes.heartbeats, prefixes.election] as const;

/** Reads snapshots and member status from an etcd cluster's client URLs. */
export class EtcdReader {
  private preferred = 0;
  reads = 0;
  failures = 0;

  constructor(
    readonly endpoints: string[],
    private readonly timeoutMs = 2000,
  ) {}

  private async post<T>(p: string, body: unknown): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.preferred + i) % this.endpoints.length;
      try {
        const res = await fetch(`${this.endpoints[idx]}${p}`, {
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const json = (await res.json()) as T & { error?: string; message?: string };
        if (!res.ok) throw new Error(`etcd ${this.endpoints[idx]}${p}: ${res.status} ${json.message ?? json.error ?? ''}`);
        this.preferred = idx;
        return json;
      } catch (err) {
        last = err;
      }
    }
    throw last instanceof Error ? last : new Error(String(last));
  }

  /** One snapshot at one revision. */
  async snapshot(): Promise<EtcdSnapshot> {
    const sentAt = Date.now();
    this.reads += 1;
    type RangeRes = { response_range: { kvs?: RawKv[] } };
    let res: { header: { revision: string }; responses: RangeRes[] };
    try {
      res = await this.post('/v3/kv/txn', {
        success: [
          ...RANGES.map((p) => ({ request_range: { key: b64(p), range_end: prefixEnd(p) } })),
          { request_range: { key: b64(leaderRecordKey) } },
        ],
      });
    } catch (err) {
      this.failures += 1;
      throw err;
    }
    const answeredAt = Date.now();
    const kvs = (i: number) => (res.responses[i]?.response_range.kvs ?? []).map((kv) => decode<any>(kv));
    const byId = <T>(list: Array<Kv<T>>, prefix: string) => new Map(list.map((kv) => [kv.key.slice(prefix.length), kv.value]));
    const election = (kvs(4) as Array<Kv<ReplicaInfo>>).sort((a, b) => a.createRevision - b.createRevision);
    return {
      revision: Number(res.header.revision),
      sentAt,
      answeredAt,
      pods: byId<PodRecord>(kvs(0), prefixes.pods),
      nodes: byId<NodeRecord>(kvs(1), prefixes.nodes),
      allocations: byId<AllocationRecord>(kvs(2), prefixes.allocations),
      heartbeats: byId<HeartbeatRecord>(kvs(3), prefixes.heartbeats),
      election,
      leader: kvs(5)[0] as Kv<LeaderRecord> | undefined,
    };
  }

  /** The leader record alone (cheap; for measuring failovers). */
  async leaderRecord(): Promise<Kv<LeaderRecord> | undefined> {
    const res = await this.post<{ kvs?: RawKv[] }>('/v3/kv/range', { key: b64(leaderRecordKey) });
    const raw = res.kvs?.[0];
    return raw === undefined ? undefined : decode<LeaderRecord>(raw);
  }

  /** Pods alone (for measuring how fast pods run elsewhere). */
  async pods(): Promise<Map<string, PodRecord>> {
    const res = await this.post<{ kvs?: RawKv[] }>('/v3/kv/range', { key: b64(prefixes.pods), range_end: prefixEnd(prefixes.pods) });
    return new Map((res.kvs ?? []).map((raw) => decode<PodRecord>(raw)).map((kv) => [kv.value.id, kv.value]));
  }
}

/** Who holds office at a snapshot: the oldest election key, and whether its leader record (its first fenced write) is written. */
export function officeOf(s: EtcdSnapshot): { id: string; term: number; inOffice: boolean } | undefined {
  const first = s.election[0];
  if (first === undefined) return undefined;
  return { id: first.value.id, term: first.createRevision, inOffice: s.leader?.value.term === first.createRevision };
}
