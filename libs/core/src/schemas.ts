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
