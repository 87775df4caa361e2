import { createHash } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { podSpecFromRequest } from './pod-spec.js';
import { DateTime, DnsLabel, PodTemplate, Ref } from './schemas.js';
import type { PodSpec } from './types.js';

/**
 * Services: a name, a pod template and a replica count. The leader's service
 * controller keeps that many pods of the template (named `<service>-<suffix>`,
 * `service` set), every replica derives the service's endpoints from its
 * caches, and `/v1/services/:name/proxy/*` routes requests to them.
 */

/** `/berth/services/<name>`: what the user asked for. Written by users (compare-and-swap), read by everyone. */
export interface ServiceRecord {
  name: string;
  replicas: number;
  template: PodTemplate;
  /** Which of the template's ports requests go to (default: the first). */
  port?: number;
  /** `templateHash(template)`: pods made from another template are replaced one at a time. */
  templateHash: string;
  createdAt: string;
  updatedAt: string;
}

/**
 * A short, stable hash of the pod spec a template makes (defaults applied,
 * keys sorted), so a PATCH that changes nothing the pods run starts no rollout.
 */
export function templateHash(template: PodTemplate): string {
  const spec = podSpecFromRequest({ ...template, name: 'x' });
  return createHash('sha256').update(canonicalJson(spec)).digest('hex').slice(0, 10);
}

/** The spec a service's pods run. */
export function serviceSpec(template: PodTemplate): PodSpec {
  return podSpecFromRequest({ ...template, name: 'x' });
}

/** JSON with object keys sorted, so equal values hash equally whatever order they were written in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

// ---- schemas ----

const Replicas = Type.Integer({ minimum: 0, maximum: 1000, description: 'how many pods the service keeps' });
const Port = Type.Integer({ minimum: 1, maximum: 65535, description: "which of the template's ports requests go to (default: the first; the first port is the pod's PORT)" });

/** `POST /v1/services`. */
export const CreateServiceRequest = Type.Object(
  { name: DnsLabel({ minLength: 1, maxLength: 50, description: 'DNS-1123 label; pods are named <name>-<suffix>' }), replicas: Replicas, template: Ref(PodTemplate), port: Type.Optional(Port) },
  { $id: 'CreateServiceRequest', additionalProperties: false },
);
export type CreateServiceRequest = Static<typeof CreateServiceRequest>;

/** `PATCH /v1/services/:name`: a new replica count and/or template (a template change replaces pods one at a time). */
export const PatchServiceRequest = Type.Object(
  { replicas: Type.Optional(Replicas), template: Type.Optional(Ref(PodTemplate)), port: Type.Optional(Port) },
  { $id: 'PatchServiceRequest', additionalProperties: false, minProperties: 1 },
);
export type PatchServiceRequest = Static<typeof PatchServiceRequest>;

/** One pod of a service as the answering replica's router sees it. */
export const Endpoint = Type.Object({
  podId: Type.String(),
  podName: Type.String(),
  nodeId: Type.Union([Type.String(), Type.Null()]),
  address: Type.Union([Type.String(), Type.Null()], { description: 'host:port requests go to; null until the pod runs' }),
  ready: Type.Boolean({ description: 'Running, its health check passes, its node Ready, not being removed: it receives requests' }),
  inFlight: Type.Integer({ description: "requests this replica has outstanding on it" }),
  ejectedUntil: Type.Optional(DateTime({ description: "this replica skips it until then: it failed a request (passive outlier detection)" })),
});
export type Endpoint = Static<typeof Endpoint>;

/** `GET /v1/services/:name`: the record plus what the caches say. */
export const ServiceView = Type.Object(
  {
    name: Type.String(),
    replicas: Type.Integer(),
    template: Ref(PodTemplate),
    port: Type.Optional(Type.Integer()),
    templateHash: Type.String(),
    createdAt: DateTime(),
    updatedAt: DateTime(),
    status: Type.Object({
      currentReplicas: Type.Integer({ description: 'pods of the service that have not ended and are not being removed' }),
      readyReplicas: Type.Integer(),
      updatedReplicas: Type.Integer({ description: "pods made from the current template" }),
      endpoints: Type.Array(Endpoint),
    }),
  },
  { $id: 'Service' },
);
export type ServiceView = Static<typeof ServiceView>;

/** `GET /v1/services`. */
export const ServiceList = Type.Object({ items: Type.Array(Ref(ServiceView)) }, { $id: 'ServiceList' });
export type ServiceList = Static<typeof ServiceList>;
