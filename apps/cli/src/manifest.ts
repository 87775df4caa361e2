import { LineCounter, isMap, isScalar, parseAllDocuments, type Document } from 'yaml';
import {
  RESTART_POLICIES,
  SCHEDULING_POLICIES,
  podSpecFromRequest,
  serviceSpec,
  templateHash,
  type CreatePodRequest,
  type CreateServiceRequest,
  type PatchServiceRequest,
  type PodSpec,
  type PodTemplate,
  type ServiceView,
} from '@berth/core';
import { parseCpu, parseMemory } from './units.js';

/**
 * `berth apply -f`: multi-document YAML of `kind: Pod` and `kind: Service`
 * manifests -> the bodies of `POST /v1/pods` and `POST /v1/services`, with
 * file:line:column in every error. Pure.
 *
 * ```yaml
 * kind: Pod
 * metadata: { name: web }
 * spec:
 *   command: [sh, -c, "exec python3 -m http.server $PORT"]
 *   cpu: 500m          # or 0.5
 *   memory: 256Mi      # or memoryMiB: 256
 *   ports: [8000]
 *   env: { GREETING: hi }   # or [{name: GREETING, value: hi}]
 * ---
 * kind: Service
 * metadata: { name: api }
 * spec:
 *   replicas: 3
 *   port: 8000         # optional: which of the template's ports requests go to (default: the first)
 *   template:          # a pod's spec, as above
 *     command: [node, server.js]
 *     cpu: 250m
 *     ports: [8000]
 *     healthCheck: { path: /healthz }
 * ```
 */

/** A manifest problem, located in the file. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  constructor(
    message: string,
    readonly line?: number,
    readonly col?: number,
  ) {
    super(message);
  }
}

/** One pod of a manifest file. */
export interface PodManifest {
  kind: 'Pod';
  request: CreatePodRequest;
  /** 1-based line of the document's start. */
  line: number;
}

/** One service of a manifest file. */
export interface ServiceManifest {
  kind: 'Service';
  request: CreateServiceRequest;
  line: number;
}

export type Manifest = PodManifest | ServiceManifest;

const SPEC_FIELDS = new Set([
  'image', 'command', 'args', 'env', 'cpu', 'memory', 'memoryMiB', 'ports', 'healthCheck', 'restartPolicy', 'priority', 'nodeSelector', 'policy',
]);

/** Parses every document; empty documents are skipped. Throws ManifestError with `file:line:col: message`. */
export function parseManifests(text: string, file = '<stdin>'): Manifest[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  if (!Array.isArray(docs)) {
    // An empty stream parses to an EmptyStream.
    return [];
  }
  const out: Manifest[] = [];
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err !== undefined) {
      const pos = err.linePos?.[0] ?? lineCounter.linePos(err.pos[0]);
      throw new ManifestError(`${file}:${pos.line}:${pos.col}: ${err.message.split('\n')[0]}`, pos.line, pos.col);
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    out.push(toManifest(doc, value, lineCounter, file));
  }
  return out;
}

type Path = readonly (string | number)[];
type Fail = (path: Path, message: string) => never;

function toManifest(doc: Document, value: unknown, lc: LineCounter, file: string): Manifest {
  const docStart = doc.range?.[0] ?? 0;
  const start = lc.linePos(docStart);
  const at = (path: Path): string => {
    // Point at the key of a mapping entry (the field at fault), else at the value.
    const parent = path.length > 0 ? doc.getIn(path.slice(0, -1), true) : undefined;
    const pair = isMap(parent) ? parent.items.find((i) => isScalar(i.key) && i.key.value === path[path.length - 1]) : undefined;
    const node = ((pair !== undefined && isScalar(pair.key) ? pair.key : undefined) ?? doc.getIn(path, true)) as { range?: [number, number, number] } | undefined;
    const offset = node?.range?.[0] ?? (path.length > 1 ? undefined : docStart);
    if (offset === undefined) return at(path.slice(0, -1));
    const p = lc.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  const fail: Fail = (path, message) => {
    throw new ManifestError(`${at(path)}: ${message}`);
  };
  if (typeof value !== 'object' || Array.isArray(value)) fail([], 'a manifest must be a mapping with kind, metadata and spec');
  const m = value as Record<string, unknown>;
  if (m.kind !== 'Pod' && m.kind !== 'Service') fail(['kind'], `kind ${JSON.stringify(m.kind ?? null)} is not supported: use kind: Pod or kind: Service`);
  const meta = m.metadata as Record<string, unknown> | undefined;
  if (meta === undefined || meta === null || typeof meta !== 'object' || typeof meta.name !== 'string' || meta.name === '') {
    fail(['metadata'], 'metadata.name is required');
  }
  const name = (meta as { name: string }).name;
  const spec = mapping(m.spec, ['spec'], fail);
  if (m.kind === 'Pod') return { kind: 'Pod', request: { name, ...podFields(spec, ['spec'], fail) }, line: start.line };
  for (const key of Object.keys(spec)) {
    if (!SERVICE_FIELDS.has(key)) fail(['spec', key], `spec.${key} is not a known field of a service (known: ${[...SERVICE_FIELDS].join(', ')})`);
  }
  if (spec.replicas === undefined) fail(['spec'], 'spec.replicas is required (how many pods the service keeps)');
  const replicas = field(['spec', 'replicas'], fail, () => int(spec.replicas));
  const template = podFields(mapping(spec.template, ['spec', 'template'], fail), ['spec', 'template'], fail);
  const request: CreateServiceRequest = { name, replicas, template };
  if (spec.port !== undefined) request.port = field(['spec', 'port'], fail, () => portsOf([spec.port])[0]!);
  return { kind: 'Service', request, line: start.line };
}

const SERVICE_FIELDS = new Set(['replicas', 'port', 'template']);

/** A mapping at `path`, or a located error. */
function mapping(v: unknown, path: Path, fail: Fail): Record<string, unknown> {
  const dotted = path.join('.');
  if (v === undefined || v === null || typeof v !== 'object' || Array.isArray(v)) return fail(path.length > 1 ? path : [], `${dotted} is required and must be a mapping`);
  return v as Record<string, unknown>;
}

/** Runs a field's parser; its error is located at the field and names it. */
function field<T>(path: Path, fail: Fail, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    return fail(path, `${path.join('.')}: ${(err as Error).message}`);
  }
}

/** What a pod runs and needs (a pod's `spec`, a service's `spec.template`): the fields of `POST /v1/pods` but the name. */
function podFields(s: Record<string, unknown>, base: Path, fail: Fail): PodTemplate {
  const where = base.join('.');
  for (const key of Object.keys(s)) {
    if (!SPEC_FIELDS.has(key)) fail([...base, key], `${where}.${key} is not a known field (known: ${[...SPEC_FIELDS].join(', ')})`);
  }
  const req: Record<string, unknown> = {};
  const wrap = <T>(key: string, fn: () => T): T => field([...base, key], fail, fn);
  if (s.image !== undefined) req.image = wrap('image', () => str(s.image));
  if (s.command !== undefined || s.args !== undefined) {
    const cmd = s.command === undefined ? [] : wrap('command', () => argv(s.command));
    const args = s.args === undefined ? [] : wrap('args', () => argv(s.args));
    req.command = [...cmd, ...args];
  }
  if (s.env !== undefined) req.env = wrap('env', () => envOf(s.env));
  if (s.cpu === undefined) fail(base, `${where}.cpu is required (cores like 0.5 or millicores like 500m)`);
  req.cpu = wrap('cpu', () => parseCpu(s.cpu as string | number));
  if (s.memory !== undefined && s.memoryMiB !== undefined) fail([...base, 'memoryMiB'], `give ${where}.memory or ${where}.memoryMiB, not both`);
  if (s.memory !== undefined) req.memoryMiB = wrap('memory', () => parseMemory(s.memory as string | number));
  if (s.memoryMiB !== undefined) req.memoryMiB = wrap('memoryMiB', () => int(s.memoryMiB));
  if (s.ports !== undefined) req.ports = wrap('ports', () => portsOf(s.ports));
  if (s.healthCheck !== undefined) req.healthCheck = s.healthCheck;
  if (s.restartPolicy !== undefined) req.restartPolicy = wrap('restartPolicy', () => oneOf(s.restartPolicy, RESTART_POLICIES));
  if (s.priority !== undefined) req.priority = wrap('priority', () => int(s.priority));
  if (s.nodeSelector !== undefined) req.nodeSelector = wrap('nodeSelector', () => strMap(s.nodeSelector));
  if (s.policy !== undefined) req.policy = wrap('policy', () => oneOf(s.policy, SCHEDULING_POLICIES));
  return req as unknown as PodTemplate;
}

function str(v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new Error('expected a non-empty string');
  return v;
}
function int(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error('expected a whole number');
  return v;
}
function oneOf<T extends string>(v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new Error(`expected one of ${allowed.join(', ')}`);
  return v as T;
}
function argv(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) throw new Error('expected a list of strings');
  return v.map((x) => (typeof x === 'number' || typeof x === 'boolean' ? String(x) : str(x)));
}
function strMap(v: unknown): Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a mapping of strings');
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, typeof x === 'string' ? x : String(x)]));
}
function envOf(v: unknown): Record<string, string> {
  if (!Array.isArray(v)) return strMap(v);
  // kubectl style: [{name, value}]
  const out: Record<string, string> = {};
  for (const e of v) {
    if (e === null || typeof e !== 'object' || typeof (e as { name?: unknown }).name !== 'string') throw new Error('expected {name, value} entries');
    const { name, value } = e as { name: string; value?: unknown };
    out[name] = value === undefined || value === null ? '' : String(value);
  }
  return out;
}
function portsOf(v: unknown): number[] {
  if (!Array.isArray(v)) throw new Error('expected a list of ports');
  return v.map((p) => {
    const n = typeof p === 'object' && p !== null ? (p as { containerPort?: unknown }).containerPort : p;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new Error('ports must be whole numbers 1-65535 (or {containerPort})');
    return n;
  });
}

/** The spec the controller stores for a request (its defaults applied), so apply can compare. */
export function normalizedSpec(req: CreatePodRequest): Partial<PodSpec> {
  return podSpecFromRequest(req);
}

const COMPARED: ReadonlyArray<keyof PodSpec> = [
  'image', 'command', 'env', 'cpu', 'memoryMiB', 'ports', 'healthCheck', 'restartPolicy', 'priority', 'nodeSelector', 'policy',
];

/** Key-order-insensitive JSON, for comparing specs. */
function canonical(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
}

/** Fields where the wanted spec differs from the existing one, as `field: old -> new`; empty when unchanged. */
export function specDiff(existing: Partial<PodSpec>, wanted: Partial<PodSpec>): string[] {
  const out: string[] = [];
  for (const k of COMPARED) {
    const a = canonical(existing[k]);
    const b = canonical(wanted[k]);
    if (a !== b) out.push(`${k}: ${a === 'undefined' ? '<unset>' : a} -> ${b === 'undefined' ? '<unset>' : b}`);
  }
  return out;
}

/**
 * What applying `wanted` to the existing service changes: the PATCH body (none
 * when nothing changes) and each change as `field: old -> new`. The template
 * is compared by the hash the server keeps (defaults applied), so a manifest
 * that spells a default out is unchanged; the port by where requests go.
 */
export function serviceChanges(existing: ServiceView, wanted: CreateServiceRequest): { patch?: PatchServiceRequest; changes: string[] } {
  const patch: PatchServiceRequest = {};
  const changes: string[] = [];
  if (existing.replicas !== wanted.replicas) {
    patch.replicas = wanted.replicas;
    changes.push(`replicas: ${existing.replicas} -> ${wanted.replicas}`);
  }
  if (templateHash(wanted.template) !== existing.templateHash) {
    patch.template = wanted.template;
    const diff = specDiff(serviceSpec(existing.template), serviceSpec(wanted.template)).map((d) => `template.${d}`);
    changes.push(...(diff.length > 0 ? diff : ['template']));
  }
  // A service without a port routes to its template's first: compare where requests go once the template is applied.
  const first = wanted.template.ports?.[0];
  const after = existing.port ?? first;
  const want = wanted.port ?? first;
  if (want !== undefined && after !== want) {
    patch.port = want;
    changes.push(`port: ${after ?? '<unset>'} -> ${want}`);
  }
  return changes.length === 0 ? { changes } : { patch, changes };
}
