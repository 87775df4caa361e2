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

/** Where pods run on a node (SPEC.md section 6). */
export const RUNTIMES = ['docker', 'process', 'simulated'] as const;
export type RuntimeKind = (typeof RUNTIMES)[number];

/** CPU in cores (decimal) and memory in MiB. */
export interface Resources {
  cpu: number;
  memoryMiB: number;
}

/** Node liveness as decided by the leader (SPEC.md section 4). */
export type NodeStatus = 'Ready' | 'NotReady' | 'Dead';

/** What an agent measured on its node (seeds/004: /proc/stat, /proc/meminfo, /proc/loadavg). */
export interface NodeUsage {
  cpuPercent: number;
  memoryMiB: number;
  load1: number;
}

/** How a node was provisioned through `POST /v1/nodes`, so any replica can remove it. */
export interface Provisioner {
  kind: 'docker' | 'process';
  /** Replica that started it. */
  by: string;
  /** Host the agent runs on (process kind: pids only mean something there). */
  host: string;
  containerId?: string;
  pid?: number;
  logFile?: string;
}

/**
 * `/berth/nodes/<id>`: the node's spec as its agent registered it, its
 * status as the leader decided it, and the operator's flags. Three writers,
 * all compare-and-swap on mod_revision.
 */
export interface NodeRecord {
  id: string;
  name: string;
  labels: Record<string, string>;
  runtime: RuntimeKind;
  /** Base URL of the agent's API (logs, node info). */
  address: string;
  capacity: Resources;
  /** Written by the leader only. */
  status: NodeStatus;
  /** Why the status is what it is (e.g. HeartbeatLost). */
  reason: string;
  /** When the status last changed (ISO). */
  statusChangedAt: string;
  cordoned: boolean;
  draining: boolean;
  registeredAt: string;
  /** Set when the agent shut down cleanly (SIGTERM); its pods are then treated as on a drained node. */
  deregisteredAt?: string;
  agent: { hostname: string; pid: number; startedAt: string; version: string };
  provisioner?: Provisioner;
}

/** `/berth/heartbeats/<id>`: bound to the agent's lease, so it vanishes when the agent stops renewing. */
export interface HeartbeatRecord {
  nodeId: string;
  /** When the agent last wrote a report (ISO); keepalives between reports do not change it. */
  reportedAt: string;
  usage: NodeUsage;
  /** Pod ids the node's runtime holds (the seeds' per-node pod array). */
  pods: string[];
  /** Identifies one agent process, so two agents never share a node unnoticed. */
  instance: string;
  /** Whether the node's runtime can run pods (e.g. its Docker engine answers). */
  runtime?: { ready: boolean; message: string };
}

/** Pod lifecycle phase (SPEC.md section 4). */
export type PodPhase = 'Pending' | 'Scheduled' | 'Starting' | 'Running' | 'Paused' | 'Stopping' | 'Stopped' | 'Succeeded' | 'Failed';

/** What a user wants a pod to be; agents converge to it. */
export type DesiredState = 'running' | 'paused' | 'stopped';

/** When a pod's container is started again after it exits (Kubernetes' semantics). */
export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

/** An HTTP health check the agent runs against the pod; failing `failureThreshold` times in a row restarts it. */
export interface HealthCheck {
  path: string;
  /** Port to probe; default the pod's allocated PORT. */
  port?: number;
  intervalSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

/** What a pod runs and needs (SPEC.md section 5). */
export interface PodSpec {
  /** Container image (docker runtime). */
  image?: string;
  /** argv; what runs for the process runtime. */
  command?: string[];
  env: Record<string, string>;
  /** Cores (decimal). */
  cpu: number;
  memoryMiB: number;
  /** Ports the pod listens on; the agent allocates a host port for the first and passes it as PORT. */
  ports: number[];
  healthCheck?: HealthCheck;
  restartPolicy: RestartPolicy;
  priority: number;
  nodeSelector: Record<string, string>;
  /** Scheduling policy for this pod (else the cluster's). */
  policy?: 'first-fit' | 'best-fit' | 'worst-fit' | 'spread' | 'binpack';
}

/** Where a pod is and how it got there. */
export interface PodStatus {
  phase: PodPhase;
  /** Bound node; null while Pending. */
  nodeId: string | null;
  /** Short CamelCase cause of the current phase (Unschedulable, NodeDead, Completed, ...). */
  reason: string;
  /** Human detail, e.g. "0/5 nodes: 3 insufficient cpu, 2 NotReady". */
  message: string;
  restarts: number;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode?: number;
  /** Host port the agent allocated (PORT), with host networking. */
  hostPort?: number;
  /** The container's latest usage sample while it runs (docker runtime), written only when it changed notably. */
  usage?: { cpuPercent: number; memoryMiB: number; at: string };
}

/**
 * `/berth/pods/<id>`. Users write `desired`, `deletionRequested` and
 * `restartRequestedAt`; the leader writes the binding (`status.nodeId`,
 * Pending <-> Scheduled); the node's agent writes the rest of `status`.
 * Every write is compare-and-swap and follows POD_TRANSITIONS.
 */
export interface PodRecord {
  id: string;
  name: string;
  /** The service that owns this pod, if any. */
  service?: string;
  spec: PodSpec;
  desired: DesiredState;
  status: PodStatus;
  createdAt: string;
  /** Set by DELETE; the agent removes the container, then the record. */
  deletionRequested?: string;
  /** Set by POST .../restart; the agent restarts when it differs from what it last applied. */
  restartRequestedAt?: string;
}

/**
 * `/berth/allocations/<nodeId>`: what the leader has reserved on a node. A
 * binding updates it in the same fenced transaction, guarded on its
 * mod_revision, so no race can reserve more than the node's capacity.
 * Reservations are released only after their pod is gone or terminal.
 */
export interface AllocationRecord {
  nodeId: string;
  /** podId -> reserved millicores and MiB. */
  pods: Record<string, { cpuMillis: number; memoryMiB: number }>;
}
