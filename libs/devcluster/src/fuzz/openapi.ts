import { Ajv, type ValidateFunction } from 'ajv';
import type { Schema } from './schema-arbitrary.js';

/** One operation of an OpenAPI document, with what the fuzzer needs to call it and judge its answers. */
export interface Operation {
  /** `POST /v1/pods/{id}/stop`. */
  key: string;
  method: string;
  /** The path template, `{param}` style. */
  path: string;
  pathParams: Array<{ name: string; schema: Schema }>;
  queryParams: Array<{ name: string; schema: Schema; required: boolean }>;
  /** The JSON body schema, when the operation documents one. */
  body?: Schema;
  bodyRequired: boolean;
  /** Documented statuses, each with its JSON schema when it has one. */
  responses: Map<number, { json?: ValidateFunction; contentTypes: string[] }>;
  /** Does the input (path params, query as the server parses it, body) pass the documented schemas, as the server's Ajv sees it? */
  accepts(input: { params: Record<string, string>; query: Record<string, string | string[]>; body?: unknown }): boolean;
  /** The path parameters alone (the router refuses bad ones before it reads a body). */
  acceptsParams(params: Record<string, string>): boolean;
}

interface RawOperation {
  parameters?: Array<{ in: string; name: string; required?: boolean; schema: Schema }>;
  requestBody?: { required?: boolean; content?: Record<string, { schema: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, RawOperation>>;
  components?: { schemas?: Record<string, Schema> };
}

const HTTP_METHODS = new Set(['get', 'head', 'post', 'put', 'patch', 'delete', 'options']);

/** `#/components/schemas/X` -> `components#/components/schemas/X`, so schemas compiled alone resolve it. */
function rebase<T>(value: T): T {
  if (Array.isArray(value)) return value.map(rebase) as T;
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `components${v}` : rebase(v)]),
  ) as T;
}

/**
 * The operations of `doc`. Request schemas are checked with the options the
 * controller's Fastify uses (type coercion, defaults, no removal), on a copy.
 */
export function operationsOf(doc: OpenApiDocument): Operation[] {
  const ajv = new Ajv({ strict: false, coerceTypes: 'array', useDefaults: true, removeAdditional: false, allErrors: false });
  // The documents use date-time only; the server writes ISO strings.
  ajv.addFormat('date-time', (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)));
  ajv.addSchema(rebase({ $id: 'components', components: doc.components ?? {} }));
  // Many responses share a schema (every error answer): compile each one once.
  const compiled = new Map<string, ValidateFunction>();
  const compile = (schema: Schema) => {
    const key = JSON.stringify(schema);
    let fn = compiled.get(key);
    if (fn === undefined) compiled.set(key, (fn = ajv.compile(rebase(schema))));
    return fn;
  };
  const ops: Operation[] = [];
  for (const [p, methods] of Object.entries(doc.paths)) {
    for (const [m, raw] of Object.entries(methods)) {
      if (!HTTP_METHODS.has(m)) continue;
      const params = raw.parameters ?? [];
      const pathParams = params.filter((x) => x.in === 'path').map((x) => ({ name: x.name, schema: x.schema }));
      const queryParams = params.filter((x) => x.in === 'query').map((x) => ({ name: x.name, schema: x.schema, required: x.required === true }));
      const body = raw.requestBody?.content?.['application/json']?.schema;
      const responses = new Map<number, { json?: ValidateFunction; contentTypes: string[] }>();
      for (const [status, r] of Object.entries(raw.responses ?? {})) {
        const json = r.content?.['application/json']?.schema;
        responses.set(Number(status), { ...(json === undefined ? {} : { json: compile(json) }), contentTypes: Object.keys(r.content ?? {}) });
      }
      const checkParams = compile({ type: 'object', properties: Object.fromEntries(pathParams.map((x) => [x.name, x.schema])), required: pathParams.map((x) => x.name) });
      // The API's query schemas refuse unknown parameters; an operation with none ignores the query.
      const checkQuery =
        queryParams.length === 0
          ? () => true
          : compile({ type: 'object', properties: Object.fromEntries(queryParams.map((x) => [x.name, x.schema])), required: queryParams.filter((x) => x.required).map((x) => x.name), additionalProperties: false });
      const checkBody = body === undefined ? undefined : compile(body);
      ops.push({
        key: `${m.toUpperCase()} ${p}`,
        method: m.toUpperCase(),
        path: p,
        pathParams,
        queryParams,
        ...(body === undefined ? {} : { body }),
        bodyRequired: raw.requestBody?.required === true,
        responses,
        acceptsParams: (params) => checkParams(structuredClone(params)),
        accepts: (input) =>
          checkParams(structuredClone(input.params)) &&
          checkQuery(structuredClone(input.query)) &&
          // Fastify validates a missing body too (as undefined, which no object schema admits); an operation without a body schema ignores it.
          (checkBody === undefined || (input.body !== undefined && checkBody(structuredClone(input.body)))),
      });
    }
  }
  return ops;
}

/** Resolves a `#/components/schemas/X` reference in `doc`. */
export function resolverOf(doc: OpenApiDocument): (ref: string) => Schema {
  return (ref) => {
    const name = ref.replace(/^#\/components\/schemas\//, '');
    const found = doc.components?.schemas?.[name];
    if (found === undefined) throw new Error(`unresolved $ref ${ref}`);
    return found;
  };
}
