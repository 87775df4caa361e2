import { Type, type Static } from 'typebox';

/**
 * JSON Schemas of the REST API (SPEC.md section 5). One schema feeds request
 * validation, the TypeScript types and the OpenAPI document.
 */

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

const NullableString = Type.Union([Type.String(), Type.Null()]);

/** `GET /v1/leader`: the leader every replica agrees on (read from etcd, not a local belief). */
export const LeaderView = Type.Object(
  {
    leaderId: Type.Union([Type.String(), Type.Null()], { description: 'replica id of the leader; null while there is none' }),
    address: NullableString,
    term: Type.Union([Type.Integer(), Type.Null()], { description: "create revision of the leader's election key" }),
    since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'when the leader took office' }),
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
    startedAt: Type.String({ format: 'date-time' }),
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
    leader: Type.Ref('LeaderView'),
    self: Type.Object({
      id: Type.String(),
      role: Type.Union([Type.Literal('leader'), Type.Literal('follower')]),
      term: Type.Union([Type.Integer(), Type.Null()]),
      ready: Type.Boolean(),
      cacheRevision: Type.Integer({ description: 'highest etcd revision applied to this replica\'s caches' }),
    }),
    replicas: Type.Array(Type.Ref('ReplicaView')),
    leaseTtlSeconds: Type.Integer({ description: "TTL of the election lease: a leader that dies without resigning is replaced about this long (plus a second) later" }),
    etcd: Type.Object({ endpoints: Type.Array(Type.String()), reachable: Type.Boolean() }),
  },
  { $id: 'ClusterView' },
);
/** TypeBox types `$ref`s as unknown; the referenced shapes are spelled out here. */
export type ClusterView = Omit<Static<typeof ClusterView>, 'leader' | 'replicas'> & { leader: LeaderView; replicas: ReplicaView[] };

/** `GET /healthz` and `GET /readyz`. */
export const HealthView = Type.Object(
  { status: Type.String(), checks: Type.Optional(Type.Record(Type.String(), Type.String())) },
  { $id: 'HealthView' },
);

const Resources = Type.Object({ cpu: Type.Number({ description: 'cores' }), memoryMiB: Type.Number() });

/** `GET /v1/nodes/:id`. */
export const NodeView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    labels: Type.Record(Type.String(), Type.String()),
    runtime: Type.String({ enum: ['docker', 'process', 'simulated'] }),
    address: Type.String({ description: "agent API base URL" }),
    status: Type.String({ enum: ['Ready', 'NotReady', 'Dead'] }),
    reason: Type.String({ description: 'why the status is what it is, e.g. HeartbeatLost' }),
    statusChangedAt: Type.String({ format: 'date-time' }),
    cordoned: Type.Boolean(),
    draining: Type.Boolean(),
    registeredAt: Type.String({ format: 'date-time' }),
    deregisteredAt: Type.Optional(Type.String({ format: 'date-time' })),
    capacity: Resources,
    allocated: Resources,
    usage: Type.Union([Type.Object({ cpuPercent: Type.Number(), memoryMiB: Type.Number(), load1: Type.Number() }), Type.Null()]),
    lastHeartbeat: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: "agent's last usage report; null without a heartbeat" }),
    conditions: Type.Array(
      Type.Object({ type: Type.String({ enum: ['Heartbeat', 'RuntimeReady'] }), status: Type.Boolean(), message: Type.String() }),
      { description: 'Heartbeat: the agent holds its lease; RuntimeReady: its runtime (e.g. the Docker engine) answers' },
    ),
    pods: Type.Array(Type.String(), { description: 'ids of pods bound to the node (pods whose status names it)' }),
    reservedPods: Type.Array(Type.String(), {
      description: "ids of pods the leader reserved capacity for on the node (its allocation record): a pod is bound once when it is reserved on exactly one node",
    }),
    agent: Type.Object({ hostname: Type.String(), pid: Type.Integer(), startedAt: Type.String(), version: Type.String() }),
    provisioner: Type.Optional(
      Type.Object({
        kind: Type.String({ enum: ['docker', 'process'] }),
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

/** `POST /v1/nodes`: provision a node (a container, or a process where no Docker engine is reachable). */
export const ProvisionNodeRequest = Type.Object(
  {
    name: Type.Optional(Type.String({ pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$', description: 'DNS-1123 label; generated when omitted' })),
    cpu: Type.Number({ exclusiveMinimum: 0, maximum: 1024, description: 'CPU cores (decimal)' }),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 16, maximum: 4194304, description: 'memory in MiB (default 512)' })),
    runtime: Type.Optional(Type.String({ enum: ['docker', 'process', 'simulated'], description: 'how the node runs pods (default process)' })),
    labels: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9][-A-Za-z0-9_./]{0,62}$' }), Type.String({ maxLength: 63 }))),
  },
  { $id: 'ProvisionNodeRequest', additionalProperties: false },
);
export type ProvisionNodeRequest = Static<typeof ProvisionNodeRequest>;

/** A list answer: `{ items: [...] }`. */
export const NodeList = Type.Object({ items: Type.Array(Type.Ref('Node')) }, { $id: 'NodeList' });

const DnsLabel = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$', minLength: 1, maxLength: 63 });
const Labels = Type.Record(Type.String({ pattern: '^[A-Za-z0-9][-A-Za-z0-9_./]{0,62}$' }), Type.String({ maxLength: 63 }));
const PolicyName = Type.String({ enum: ['first-fit', 'best-fit', 'worst-fit', 'spread', 'binpack'] });
const HealthCheckSchema = Type.Object(
  {
    path: Type.String({ pattern: '^/', maxLength: 1024 }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    intervalSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 3600 })),
    timeoutSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 600 })),
    failureThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  },
  { additionalProperties: false },
);

/** `POST /v1/pods`. */
export const CreatePodRequest = Type.Object(
  {
    name: DnsLabel,
    image: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'container image (docker runtime)' })),
    command: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 256, description: 'argv (what runs for the process runtime)' })),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String({ maxLength: 32768 }))),
    cpu: Type.Number({ exclusiveMinimum: 0, maximum: 1024, description: 'CPU cores (decimal, e.g. 0.5)' }),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 4194304, description: 'memory in MiB (default 128)' })),
    ports: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 16 })),
    healthCheck: Type.Optional(HealthCheckSchema),
    restartPolicy: Type.Optional(Type.String({ enum: ['Always', 'OnFailure', 'Never'] })),
    priority: Type.Optional(Type.Integer({ minimum: -1000000, maximum: 1000000 })),
    nodeSelector: Type.Optional(Labels),
    policy: Type.Optional(PolicyName),
  },
  { $id: 'CreatePodRequest', additionalProperties: false },
);
export type CreatePodRequest = Static<typeof CreatePodRequest>;

/** A pod as the API shows it. */
export const PodView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    service: Type.Optional(Type.String()),
    spec: Type.Object({}, { additionalProperties: true }),
    desired: Type.String({ enum: ['running', 'paused', 'stopped'] }),
    status: Type.Object(
      {
        phase: Type.String(),
        nodeId: Type.Union([Type.String(), Type.Null()]),
        reason: Type.String(),
        message: Type.String(),
        restarts: Type.Integer(),
        startedAt: Type.Union([Type.String(), Type.Null()]),
        finishedAt: Type.Union([Type.String(), Type.Null()]),
      },
      { additionalProperties: true },
    ),
    createdAt: Type.String({ format: 'date-time' }),
    deletionRequested: Type.Optional(Type.String()),
    restartRequestedAt: Type.Optional(Type.String()),
  },
  { $id: 'Pod' },
);

/** `GET /v1/pods`. */
export const PodList = Type.Object({ items: Type.Array(Type.Ref('Pod')) }, { $id: 'PodList' });
