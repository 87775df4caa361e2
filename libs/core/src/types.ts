/** Domain shapes shared by the controller, agents and CLI (SPEC.md section 5). */

/** What a controller replica puts as the value of its election key. */
export interface ReplicaInfo {
  /** Replica id (`--id`). */
  id: string;
  /** Base URL of its REST API. */
  address: string;
  /** Process id, for local demos that `kill -9` the leader. */
  pid: number;
  /** When the replica started campaigning (ISO time). */
  startedAt: string;
}

/** The record a leader writes, fenced, when it takes office. */
export interface LeaderRecord {
  leaderId: string;
  address: string;
  /** The leader's term: the create revision of its election key. */
  term: number;
  /** When it took office (ISO time). */
  since: string;
}

/** An audit event (`/berth/events/<time>-<id>`), kept on a TTL lease. */
export interface BerthEvent {
  id: string;
  /** ISO time. */
  time: string;
  /** `Normal` or `Warning`, as in Kubernetes. */
  type: 'Normal' | 'Warning';
  /** Short CamelCase reason, e.g. `LeaderElected`. */
  reason: string;
  message: string;
  /** What it is about, e.g. `{kind: 'controller', id: 'c1'}`. */
  involved: { kind: string; id: string };
  /** Which replica or agent recorded it. */
  source: string;
  /** Term of the leader that recorded it, for leader-only (fenced) events. */
  term?: number;
}
