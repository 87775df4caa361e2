import { Type, type Static, type TSchema, type TSchemaOptions, type TUnsafe } from 'typebox';
import { DNS_LABEL } from './keys.js';
import { LIMITS } from './limits.js';
import {
  DESIRED_STATES,
  EVENT_TYPES,
  NODE_CONDITION_TYPES,
  NODE_STATUSES,
  POD_PHASES,
  PROVISIONER_KINDS,
  REPLICA_ROLES,
  RESTART_POLICIES,
  EVICTION_REASONS,
  LINUX_CAPABILITIES,
  POD_LIMIT_ENFORCEMENTS,
  RUNTIMES,
  SCHEDULING_POLICIES,
  type NodeRecord,
  type PodRecord,
} from './types.js';

/**
 * JSON Schemas of the REST API: the one definition of what crosses the wire.
 * Each schema feeds the server's request validation and response
 * serialisation, the OpenAPI document, and (through `Static`) the types the
 * CLI and the dashboard script compile against. Schemas with an `$id` are
 * registered once on the server and referenced by that id.
 */

/**
 * `{type: 'string', enum: values}`, typed as the union of `values`.
 * (`Type.String({ enum })` would be typed as any string.)
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: TSchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] });
}

/** `{$ref: id}` to a registered schema, typed as that schema (a bare `Type.Ref` is typed unknown). */
export function Ref<T extends TSchema>(schema: T): TUnsafe<Static<T>> {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== 'string') throw new Error('Ref: the schema has no $id');
  return Type.Unsafe<Static<T>>(Type.Ref(id));
}

/** True when A and B are the same type (each assignable to the other). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Fails to compile unless T is true: how a schema is held to the record it serves. */
type Assert<T extends true> = T;

export const NullableString = Type.Union([Type.String(), Type.Null()]);
export const DateTime = (options: TSchemaOptions = {}) => Type.String({ ...options, format: 'date-time' });
export const DnsLabel = (options: TSchemaOptions = {}) => Type.String({ ...options, pattern: DNS_LABEL.source });
/**
 * A name or id in a path or query (`/v1/pods/:id` takes either): names are
 * DNS-1123 labels and ids are [0-9a-z], so one pattern admits both and
 * refuses everything else before a lookup.
 */
export const NameOrId = (description: string) => DnsLabel({ minLength: 1, maxLength: LIMITS.nameLength, description });
/**
 * A bounded `{key: value}` map of strings whose keys match `keyPattern`.
 * Written with `propertyNames` rather than `Type.Record`'s patternProperties:
 * those let a key outside the pattern through unchecked unless
 * additionalProperties is false, and the OpenAPI generator drops both, so the
 * document would admit keys the server refuses.
 */
export const StringMap = (keyPattern: string, valueMaxLength: number, maxProperties: number, description: string, valuePattern?: string) =>
  Type.Unsafe<Record<string, string>>({
    type: 'object',
    propertyNames: { type: 'string', pattern: keyPattern },
    additionalProperties: { type: 'string', maxLength: valueMaxLength, ...(valuePattern === undefined ? {} : { pattern: valuePattern }) },
    maxProperties,
    description,
  });
/** No NUL: a value that reaches argv or the environment of a process must not hold one (spawn refuses it). */
const NO_NUL = '^[^\\x00]*$';
/** Label values as Kubernetes has them: empty, or alphanumerics with '-', '_', '.' inside; they reach agents' command lines. */
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
const Labels = StringMap('^[A-Za-z0-9][-A-Za-z0-9_./]{0,62}$', LIMITS.labelValueLength, LIMITS.labels, `at most ${LIMITS.labels} labels; keys and values of at most 63 characters`, LABEL_VALUE);

/** Every error answer: `{ error, message, details? }`. */
export const ErrorResponse = Type.Object(
  {
    error: Type.String({ description: 'stable error code, e.g. VALIDATION_FAILED' }),
    message: Type.String({ description: 'what went wrong, naming the field at fault' }),
    details: Type.Optional(Type.Unknown()),
  },
  { $id: 'ErrorResponse', description: 'An error; the HTTP status says which class.' },
);
export type ErrorResponse = Static<typeof ErrorResponse>;

// ---- leader and replicas ----

/** `GET /v1/leader`: the leader every replica agrees on (read from etcd, not a local belief). */
export const LeaderView = Type.Object(
  {
    leaderId: Type.Union([Type.String(), Type.Null()], { description: 'replica id of the leader; null while there is none' }),
    address: NullableString,
    term: Type.Union([Type.Integer(), Type.Null()], { description: "create revision of the leader's election key" }),
    since: Type.Union([DateTime(), Type.Null()], { description: 'when the leader took office' }),
  },
  { $id: 'LeaderView' },
);
export type LeaderView = Static<typeof LeaderView>;

/** One controller replica, as seen through its election key. */
export const ReplicaView = Type.Object(
  {
    id: Type.String(),
    address: Type.String(),
    pid: Type.Integer(),
    startedAt: DateTime(),
    leader: Type.Boolean(),
    electionKey: Type.String(),
    createRevision: Type.Integer(),
  },
  { $id: 'ReplicaView' },
);
export type ReplicaView = Static<typeof ReplicaView>;

/** `GET /v1/cluster`. */
export const ClusterView = Type.Object(
  {
    leader: Ref(LeaderView),
    self: Type.Object({
      id: Type.String(),
      role: StringEnum(REPLICA_ROLES),
      term: Type.Union([Type.Integer(), Type.Null()]),
      ready: Type.Boolean(),
      cacheRevision: Type.Integer({ description: "highest etcd revision applied to this replica's caches" }),
    }),
    replicas: Type.Array(Ref(ReplicaView)),
    leaseTtlSeconds: Type.Integer({ description: 'TTL of the election lease: a leader that dies without resigning is replaced about this long (plus a second) later' }),
    etcd: Type.Object({ endpoints: Type.Array(Type.String()), reachable: Type.Boolean() }),
  },
  { $id: 'ClusterView' },
);
export type ClusterView = Static<typeof ClusterView>;

/** `GET /healthz` and `GET /readyz`. */
export const HealthView = Type.Object(
  { status: Type.String(), checks: Type.Optional(Type.Record(Type.String(), Type.String())) },
  { $id: 'HealthView' },
);
export type HealthView = Static<typeof HealthView>;

// ---- nodes ----

const Resources = Type.Object({ cpu: Type.Number({ description: 'cores' }), memoryMiB: Type.Number() });

/** `GET /v1/nodes/:id`: the node's record plus what its heartbeat, reservations and pods say. */
export const NodeView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    labels: Type.Record(Type.String(), Type.String()),
    runtime: StringEnum(RUNTIMES),
    address: Type.String({ description: 'agent API base URL' }),
    status: StringEnum(NODE_STATUSES),
    reason: Type.String({ description: 'why the status is what it is, e.g. HeartbeatLost' }),
    statusChangedAt: DateTime(),
    cordoned: Type.Boolean(),
    draining: Type.Boolean(),
    registeredAt: DateTime(),
    deregisteredAt: Type.Optional(DateTime()),
    capacity: Resources,
    allocated: Resources,
    usage: Type.Union([Type.Object({ cpuPercent: Type.Number(), memoryMiB: Type.Number(), load1: Type.Number() }), Type.Null()]),
    lastHeartbeat: Type.Union([DateTime(), Type.Null()], { description: "agent's last usage report; null without a heartbeat" }),
    conditions: Type.Array(Type.Object({ type: StringEnum(NODE_CONDITION_TYPES), status: Type.Boolean(), message: Type.String() }), {
      description: 'Heartbeat: the agent holds its lease; RuntimeReady: its runtime (e.g. the Docker engine) answers',
    }),
    pods: Type.Array(Type.String(), { description: 'ids of pods bound to the node (pods whose status names it)' }),
    reservedPods: Type.Array(Type.String(), {
      description: 'ids of pods the leader reserved capacity for on the node (its allocation record): a pod is bound once when it is reserved on exactly one node',
    }),
    agent: Type.Object({ hostname: Type.String(), pid: Type.Integer(), startedAt: Type.String(), version: Type.String() }),
    fence: Type.Optional(
      Type.Object(
        { heartbeatTtlMs: Type.Integer(), fenceAfterMs: Type.Integer(), forceStopMs: Type.Integer() },
        { description: "the agent's fence budget: it kills its pods after fenceAfterMs without an acknowledged keepalive (within forceStopMs); the leader declares the node Dead no sooner than that allows" },
      ),
    ),
    isolation: Type.Optional(
      Type.Object(
        {
          user: Type.String({ description: "who pods run as: 'per-pod' (each its own uid from uidRange), a user every pod shares, or 'image' (docker)" }),
          uidRange: Type.Optional(Type.String({ description: "the uids pods get ('per-pod' only), first-last" })),
          limits: StringEnum(POD_LIMIT_ENFORCEMENTS, { description: "how pods' cpu and memory are enforced" }),
        },
        { description: 'how the node isolates its pods from the host and from each other, as its agent reports it' },
      ),
    ),
    provisioner: Type.Optional(
      Type.Object({
        kind: StringEnum(PROVISIONER_KINDS),
        by: Type.String(),
        host: Type.String(),
        containerId: Type.Optional(Type.String()),
        pid: Type.Optional(Type.Integer()),
        logFile: Type.Optional(Type.String()),
      }),
    ),
  },
  { $id: 'Node' },
);
export type NodeView = Static<typeof NodeView>;
/** The view is the stored record plus these fields; the rest must match the record field for field. */
type NodeViewExtras = 'allocated' | 'usage' | 'lastHeartbeat' | 'conditions' | 'pods' | 'reservedPods';
type _NodeViewMatchesRecord = Assert<Same<Omit<NodeView, NodeViewExtras>, NodeRecord>>;

/** `POST /v1/nodes`: provision a node (a container, or a process where no Docker engine is reachable). */
export const ProvisionNodeRequest = Type.Object(
  {
    name: Type.Optional(DnsLabel({ description: 'DNS-1123 label; generated when omitted' })),
    cpu: Type.Number({ exclusiveMinimum: 0, maximum: 1024, description: 'CPU cores (decimal)' }),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 16, maximum: 4194304, description: 'memory in MiB (default 512)' })),
    runtime: Type.Optional(StringEnum(RUNTIMES, { description: 'how the node runs pods (default process)' })),
    labels: Type.Optional(Labels),
  },
  { $id: 'ProvisionNodeRequest', additionalProperties: false },
);
export type ProvisionNodeRequest = Static<typeof ProvisionNodeRequest>;

/** `POST /v1/nodes/:id/<action>`: what an operator can do to a node (a drain ends with uncordon). */
export const NODE_ACTIONS = ['cordon', 'uncordon', 'drain'] as const;
export type NodeAction = (typeof NODE_ACTIONS)[number];

/** A list answer: `{ items: [...] }`. */
export const NodeList = Type.Object({ items: Type.Array(Ref(NodeView)) }, { $id: 'NodeList' });
export type NodeList = Static<typeof NodeList>;

// ---- pods ----

const HealthCheckRequest = Type.Object(
  {
    path: Type.String({ pattern: '^/', maxLength: LIMITS.healthPathLength }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    // Floors, not just > 0: a probe every 1e-300 s is a probe every millisecond, and a timeout under 50 ms fails every probe.
    intervalSeconds: Type.Optional(Type.Number({ minimum: 0.1, maximum: 3600 })),
    timeoutSeconds: Type.Optional(Type.Number({ minimum: 0.05, maximum: 600 })),
    failureThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  },
  { additionalProperties: false },
);

/** What a pod runs and needs: every field of `POST /v1/pods` but the name (a service's template has these). */
const podFields = {
  image: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.imageLength, pattern: NO_NUL, description: 'container image (docker runtime)' })),
  command: Type.Optional(
    Type.Array(Type.String({ maxLength: LIMITS.commandArgLength, pattern: NO_NUL }), { minItems: 1, maxItems: LIMITS.commandArgs, description: 'argv (what runs for the process runtime)' }),
  ),
  env: Type.Optional(StringMap(`^[A-Za-z_][A-Za-z0-9_]{0,${LIMITS.envNameLength - 1}}$`, LIMITS.envValueLength, LIMITS.env, `at most ${LIMITS.env} variables`, NO_NUL)),
  cpu: Type.Number({ exclusiveMinimum: 0, maximum: 1024, description: 'CPU cores (decimal, e.g. 0.5)' }),
  memoryMiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 4194304, description: 'memory in MiB (default 128)' })),
  ports: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: LIMITS.ports })),
  healthCheck: Type.Optional(HealthCheckRequest),
  restartPolicy: Type.Optional(StringEnum(RESTART_POLICIES)),
  priority: Type.Optional(Type.Integer({ minimum: -1000000, maximum: 1000000 })),
  nodeSelector: Type.Optional(Labels),
  policy: Type.Optional(StringEnum(SCHEDULING_POLICIES)),
  capabilities: Type.Optional(
    Type.Array(StringEnum(LINUX_CAPABILITIES), { maxItems: LINUX_CAPABILITIES.length, uniqueItems: true, description: 'Linux capabilities a docker pod keeps (without CAP_); every other one is dropped' }),
  ),
  readOnlyRootFilesystem: Type.Optional(Type.Boolean({ description: "mount a docker pod's root file system read-only" })),
};

/** `POST /v1/pods`. */
export const CreatePodRequest = Type.Object(
  { name: DnsLabel({ minLength: 1, maxLength: 63 }), ...podFields },
  { $id: 'CreatePodRequest', additionalProperties: false },
);
export type CreatePodRequest = Static<typeof CreatePodRequest>;

/** A service's pod template: a `POST /v1/pods` body without the name (each pod is named `<service>-<suffix>`). */
export const PodTemplate = Type.Object(podFields, { $id: 'PodTemplate', additionalProperties: false });
export type PodTemplate = Static<typeof PodTemplate>;

/** A stored spec: the request with the API's defaults applied (`podSpecFromRequest`). */
const PodSpecView = Type.Object({
  image: Type.Optional(Type.String()),
  command: Type.Optional(Type.Array(Type.String())),
  env: Type.Record(Type.String(), Type.String()),
  cpu: Type.Number({ description: 'cores' }),
  memoryMiB: Type.Integer(),
  ports: Type.Array(Type.Integer()),
  healthCheck: Type.Optional(
    Type.Object({
      path: Type.String(),
      port: Type.Optional(Type.Integer({ description: "default: the pod's allocated PORT" })),
      intervalSeconds: Type.Number(),
      timeoutSeconds: Type.Number(),
      failureThreshold: Type.Integer(),
    }),
  ),
  restartPolicy: StringEnum(RESTART_POLICIES),
  priority: Type.Integer(),
  nodeSelector: Type.Record(Type.String(), Type.String()),
  policy: Type.Optional(StringEnum(SCHEDULING_POLICIES, { description: "scheduling policy for this pod (else the cluster's)" })),
  capabilities: Type.Optional(Type.Array(StringEnum(LINUX_CAPABILITIES), { description: 'Linux capabilities a docker pod keeps' })),
  readOnlyRootFilesystem: Type.Optional(Type.Boolean()),
});

/** A pod as the API shows it: its stored record. */
export const PodView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    service: Type.Optional(Type.String({ description: 'the service that owns this pod' })),
    templateHash: Type.Optional(Type.String({ description: "hash of the service template the pod was made from: a pod whose hash differs from its service's is replaced" })),
    spec: PodSpecView,
    desired: StringEnum(DESIRED_STATES),
    status: Type.Object({
      phase: StringEnum(POD_PHASES),
      nodeId: Type.Union([Type.String(), Type.Null()], { description: 'bound node; null while Pending' }),
      reason: Type.String({ description: 'short CamelCase cause of the phase, e.g. Unschedulable' }),
      message: Type.String({ description: 'detail, e.g. "0/5 nodes: 3 insufficient cpu, 2 NotReady"' }),
      restarts: Type.Integer(),
      startedAt: NullableString,
      finishedAt: NullableString,
      exitCode: Type.Optional(Type.Integer()),
      hostPort: Type.Optional(Type.Integer({ description: 'host port the agent allocated (PORT)' })),
      ready: Type.Optional(Type.Boolean({ description: 'takes requests: Running and its health check passes (at once without one); false after any failed probe and in every other phase' })),
      usage: Type.Optional(Type.Object({ cpuPercent: Type.Number(), memoryMiB: Type.Number(), at: Type.String() })),
      restartHandled: Type.Optional(Type.String({ description: 'the restartRequestedAt the latest start honoured' })),
      eviction: Type.Optional(
        Type.Object(
          { reason: StringEnum(EVICTION_REASONS), requestedAt: DateTime() },
          { description: 'the leader wants the pod off its node: its agent stops it (phase Stopped), then the leader unbinds it and releases its reservation' },
        ),
      ),
    }),
    createdAt: DateTime(),
    deletionRequested: Type.Optional(Type.String({ description: 'set by DELETE; the agent removes the container, then the record' })),
    restartRequestedAt: Type.Optional(Type.String({ description: 'set by POST .../restart' })),
  },
  { $id: 'Pod' },
);
export type PodView = Static<typeof PodView>;
/** The API serves pod records as stored: the schema cannot drift from the record. */
type _PodViewMatchesRecord = Assert<Same<PodView, PodRecord>>;

/** `POST /v1/pods/:id/<action>`: each sets what the user wants; the node's agent converges. */
export const POD_ACTIONS = ['stop', 'start', 'pause', 'resume', 'restart'] as const;
export type PodAction = (typeof POD_ACTIONS)[number];

/** `GET /v1/pods`. */
export const PodList = Type.Object({ items: Type.Array(Ref(PodView)) }, { $id: 'PodList' });
export type PodList = Static<typeof PodList>;

// ---- events and the live stream ----

/** An audit event (`/berth/events/<time>-<id>`), kept on a TTL lease. */
export const BerthEvent = Type.Object(
  {
    id: Type.String(),
    time: DateTime(),
    type: StringEnum(EVENT_TYPES),
    reason: Type.String({ description: 'short CamelCase cause, e.g. LeaderElected' }),
    message: Type.String(),
    involved: Type.Object({ kind: Type.String(), id: Type.String() }, { description: "what it is about, e.g. {kind: 'controller', id: 'c1'}" }),
    source: Type.String({ description: 'replica or node that recorded it' }),
    term: Type.Optional(Type.Integer({ description: 'term of the leader that recorded it (fenced events)' })),
  },
  { $id: 'Event' },
);
export type BerthEvent = Static<typeof BerthEvent>;

/** `GET /v1/events`. */
export const EventList = Type.Object({ items: Type.Array(Ref(BerthEvent)) }, { $id: 'EventList' });
export type EventList = Static<typeof EventList>;

/** Whether the answering replica reaches etcd; while it does not, what it streams is its last known state. */
export const EtcdStatus = Type.Object({ reachable: Type.Boolean(), message: Type.Union([Type.String(), Type.Null()], { description: 'why not, while it is not' }) });
export type EtcdStatus = Static<typeof EtcdStatus>;

// The live stream's messages (`WatchSnapshot`, `WatchMessages`) are in watch.ts: they carry services and jobs, whose schemas build on these.
