import type { NodeFence } from './fence-budget.js';
/**
 * Domain shapes shared by the controller, agents and CLI: the records kept in
 * etcd. What the API sends is defined by the schemas in `schemas.ts`, which
 * take their enum values from the lists here and are checked at compile time
 * to agree with these records.
 */

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

/** A replica's part in the election. */
export const REPLICA_ROLES = ['leader', 'follower'] as const;
export type ReplicaRole = (typeof REPLICA_ROLES)[number];

/** The record a leader writes, fenced, when it takes office. */
export interface LeaderRecord {
  leaderId: string;
  address: string;
  /** The leader's term: the create revision of its election key. */
  term: number;
  /** When it took office (ISO time). */
  since: string;
}

/** How a node runs its pods: Docker containers, host processes, or simulated ones that run nothing. */
export const RUNTIMES = ['docker', 'process', 'simulated'] as const;
export type RuntimeKind = (typeof RUNTIMES)[number];

/**
 * How a node enforces its pods' cpu and memory: per-pod cgroups (v1 or v2,
 * when the agent runs as root), rlimits (memory only, without root), the
 * Docker engine's own cgroups, or not at all.
 */
export const POD_LIMIT_ENFORCEMENTS = ['cgroup-v1', 'cgroup-v2', 'rlimit', 'docker', 'none'] as const;
export type PodLimitEnforcement = (typeof POD_LIMIT_ENFORCEMENTS)[number];

/** What keeps a node's pods from the host and from each other, as its agent reports it. */
export interface NodeIsolation {
  /**
   * Who pods run as: `per-pod` (each pod its own uid and gid from `uidRange`),
   * one user every pod shares (a name or `uid:gid`), or `image` (docker: the
   * image's user, in the container).
   */
  user: string;
  /** The uids pods get (`per-pod` only), `first-last`. */
  uidRange?: string;
  limits: PodLimitEnforcement;
}

/**
 * Linux capabilities a docker pod may ask for (`spec.capabilities`); every
 * other one is dropped.
 */
export const LINUX_CAPABILITIES = [
  'AUDIT_CONTROL', 'AUDIT_READ', 'AUDIT_WRITE', 'BLOCK_SUSPEND', 'BPF', 'CHECKPOINT_RESTORE', 'CHOWN', 'DAC_OVERRIDE',
  'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'IPC_LOCK', 'IPC_OWNER', 'KILL', 'LEASE', 'LINUX_IMMUTABLE', 'MAC_ADMIN',
  'MAC_OVERRIDE', 'MKNOD', 'NET_ADMIN', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_RAW', 'PERFMON', 'SETFCAP',
  'SETGID', 'SETPCAP', 'SETUID', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_CHROOT', 'SYS_MODULE', 'SYS_NICE', 'SYS_PACCT',
  'SYS_PTRACE', 'SYS_RAWIO', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'SYSLOG', 'WAKE_ALARM',
] as const;
export type LinuxCapability = (typeof LINUX_CAPABILITIES)[number];

/** An audit event's kind, as in Kubernetes: `Warning` when something went wrong. */
export const EVENT_TYPES = ['Normal', 'Warning'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** CPU in cores (decimal) and memory in MiB. */
export interface Resources {
  cpu: number;
  memoryMiB: number;
}

/** Node liveness as decided by the leader from the agent's heartbeat lease. */
export const NODE_STATUSES = ['Ready', 'NotReady', 'Dead'] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

/** A node's conditions: Heartbeat (the agent holds its lease), RuntimeReady (its runtime, e.g. the Docker engine, answers). */
export const NODE_CONDITION_TYPES = ['Heartbeat', 'RuntimeReady'] as const;
export type NodeConditionType = (typeof NODE_CONDITION_TYPES)[number];

/** How `POST /v1/nodes` starts a node's agent: as a container, or as a process where no Docker engine is reachable. */
export const PROVISIONER_KINDS = ['docker', 'process'] as const;
export type ProvisionerKind = (typeof PROVISIONER_KINDS)[number];

/** What an agent measured on its node (from /proc/stat, /proc/meminfo and /proc/loadavg). */
export interface NodeUsage {
  cpuPercent: number;
  memoryMiB: number;
  load1: number;
}

/** How a node was provisioned through `POST /v1/nodes`, so any replica can remove it. */
export interface Provisioner {
  kind: ProvisionerKind;
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
  /** The agent's fence budget (absent in records of older agents): the leader waits it out before declaring the node Dead. */
  fence?: NodeFence;
  /** How the node isolates its pods (absent in records of older agents and simulated nodes). */
  isolation?: NodeIsolation;
  provisioner?: Provisioner;
}

/** `/berth/heartbeats/<id>`: bound to the agent's lease, so it vanishes when the agent stops renewing. */
export interface HeartbeatRecord {
  nodeId: string;
  /** When the agent last wrote a report (ISO); keepalives between reports do not change it. */
  reportedAt: string;
  usage: NodeUsage;
  /** Pod ids the node's runtime holds, as the agent last listed them. */
  pods: string[];
  /** Identifies one agent process, so two agents never share a node unnoticed. */
  instance: string;
  /** Whether the node's runtime can run pods (e.g. its Docker engine answers). */
  runtime?: { ready: boolean; message: string };
}

/** Pod lifecycle phases; which may follow which is the table in `pod-state.ts`. */
export const POD_PHASES = ['Pending', 'Scheduled', 'Starting', 'Running', 'Paused', 'Stopping', 'Stopped', 'Succeeded', 'Failed'] as const;
export type PodPhase = (typeof POD_PHASES)[number];

/** What a user wants a pod to be; agents converge to it. */
export const DESIRED_STATES = ['running', 'paused', 'stopped'] as const;
export type DesiredState = (typeof DESIRED_STATES)[number];

/** When a pod's container is started again after it exits (Kubernetes' semantics). */
export const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

/**
 * Why the leader evicts a pod from a node that still runs it (two-phase:
 * marked, stopped by its agent, then unbound): the node is draining or its
 * agent deregistered, a higher-priority pod needs the room, or the node came
 * back with less capacity than its pods reserve.
 */
export const EVICTION_REASONS = ['NodeDrained', 'Preempted', 'CapacityReduced'] as const;
export type EvictionReason = (typeof EVICTION_REASONS)[number];

/** How the scheduler picks among the nodes that fit (the policies themselves live in `@berth/scheduler`). */
export const SCHEDULING_POLICIES = ['first-fit', 'best-fit', 'worst-fit', 'spread', 'binpack'] as const;
export type SchedulingPolicy = (typeof SCHEDULING_POLICIES)[number];

/** An HTTP health check the agent runs against the pod; failing `failureThreshold` times in a row restarts it. */
export interface HealthCheck {
  path: string;
  /** Port to probe; default the pod's allocated PORT. */
  port?: number;
  intervalSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

/** What a pod runs and needs: a `POST /v1/pods` request with the API's defaults applied (`podSpecFromRequest`). */
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
  policy?: SchedulingPolicy;
  /** Capabilities a docker pod keeps (every other one is dropped). */
  capabilities?: LinuxCapability[];
  /** A docker pod's root file system is mounted read-only. */
  readOnlyRootFilesystem?: boolean;
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
  /**
   * Whether the pod takes requests, written by its agent: true while it is
   * Running and its health check passes (at once without one), false after
   * any single failed probe and in every other phase. A failing check
   * restarts the pod only after `failureThreshold` failures in a row.
   */
  ready?: boolean;
  /** The container's latest usage sample while it runs (docker runtime), written only when it changed notably. */
  usage?: { cpuPercent: number; memoryMiB: number; at: string };
  /**
   * The `restartRequestedAt` the latest start of the container honoured (the
   * agent writes it with every start): a request equal to it is done. The
   * agent after its own restart and the leader for a finished pod compare
   * these strings, never two machines' clocks.
   */
  restartHandled?: string;
  /**
   * Set by the leader when the pod must leave its node (drain, preemption,
   * a node that shrank): the first half of an eviction. The pod keeps its
   * node and reservation until its agent has stopped it (phase Stopped);
   * only then does the leader unbind it and release the reservation, so the
   * pod never runs in two places and nothing lands on capacity it still uses.
   */
  eviction?: PodEviction;
}

/** Why and since when the leader wants a pod off its node. */
export interface PodEviction {
  reason: EvictionReason;
  requestedAt: string;
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
  /** Hash of the service template the pod was made from (set with `service`); a rollout replaces pods whose hash is not the service's. */
  templateHash?: string;
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
