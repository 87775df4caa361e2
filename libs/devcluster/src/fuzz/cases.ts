import fc from 'fast-check';
import type { Operation } from './openapi.js';
import { anyString, invalidValue, validValue, type Resolve, type Schema } from './schema-arbitrary.js';

/** A path parameter: one the cluster holds (an index into what the ledger knows), or a generated value. */
export type ParamChoice = { kind: 'known'; pick: number } | { kind: 'value'; value: string };

/** What a case sends as its body. */
export type BodyChoice =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown }
  /** Text under a content type: broken JSON, or a type the route does not take. */
  | { kind: 'raw'; contentType: string; text: string }
  /** JSON one byte to a few KB over the body limit. */
  | { kind: 'oversize'; extra: number }
  /** Arrays nested this deep. */
  | { kind: 'deep'; depth: number };

/** One request against one operation, as generated (ledger references are resolved when it is sent). */
export interface FuzzCase {
  op: number;
  params: Record<string, ParamChoice>;
  /** Query pairs, or a raw query string. */
  query: Array<[string, string]> | { raw: string };
  body: BodyChoice;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A generated value as the text of a path or query parameter. */
function asText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function paramArb(schema: Schema, resolve: Resolve): fc.Arbitrary<ParamChoice> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.nat(1000).map((pick): ParamChoice => ({ kind: 'known', pick })) },
    { weight: 3, arbitrary: validValue(schema, resolve).map((v): ParamChoice => ({ kind: 'value', value: asText(v) })) },
    { weight: 2, arbitrary: fc.oneof(invalidValue(schema, resolve), anyString(40)).map((v): ParamChoice => ({ kind: 'value', value: asText(v) })) },
  );
}

function queryArb(op: Operation, resolve: Resolve): fc.Arbitrary<FuzzCase['query']> {
  const pairsOf = (obj: Record<string, unknown>): Array<[string, string]> =>
    Object.entries(obj).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x): [string, string] => [k, asText(x)]) : [[k, asText(v)] as [string, string]]));
  const raw = fc.oneof(fc.constantFrom('%', 'a=%ZZ', '&&=&', '=x', 'watch=1&watch=0', `x=${'y'.repeat(5000)}`), anyString(60)).map((r) => ({ raw: r }));
  const unknown = fc.tuple(anyString(20), anyString(20)).map(([k, v]): Array<[string, string]> => [[k, v]]);
  if (op.queryParams.length === 0) return fc.oneof({ weight: 8, arbitrary: fc.constant<Array<[string, string]>>([]) }, { weight: 1, arbitrary: unknown }, { weight: 1, arbitrary: raw });
  const valid = fc.record(Object.fromEntries(op.queryParams.map((q) => [q.name, validValue(q.schema, resolve)])), {
    requiredKeys: op.queryParams.filter((q) => q.required).map((q) => q.name),
  });
  const oneBad = fc
    .tuple(valid, fc.constantFrom(...op.queryParams))
    .chain(([obj, q]) => invalidValue(q.schema, resolve).map((bad) => ({ ...(obj as object), [q.name]: bad })));
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((o) => pairsOf(o as Record<string, unknown>)) },
    { weight: 3, arbitrary: oneBad.map((o) => pairsOf(o)) },
    { weight: 1, arbitrary: fc.tuple(valid, unknown).map(([o, u]) => [...pairsOf(o as Record<string, unknown>), ...u]) },
    { weight: 1, arbitrary: raw },
  );
}

const otherContent = fc.record({
  contentType: fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'application/octet-stream', 'application/json; charset=latin1', 'application/json', 'multipart/form-data; boundary=x', 'nonsense'),
  text: fc.oneof(anyString(200), fc.constantFrom('', '{', '{"a":', '[1,2', 'null', 'true', '"x"', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '\u0000', '\uFEFF{}')),
});

function bodyArb(op: Operation, resolve: Resolve): fc.Arbitrary<BodyChoice> {
  const raw = otherContent.map((r): BodyChoice => ({ kind: 'raw', ...r }));
  const oversize = fc.integer({ min: 1, max: 4096 }).map((extra): BodyChoice => ({ kind: 'oversize', extra }));
  const deep = fc.constantFrom(65, 1000, 100_000).map((depth): BodyChoice => ({ kind: 'deep', depth }));
  if (op.body !== undefined) {
    return fc.oneof(
      { weight: 12, arbitrary: validValue(op.body, resolve).map((value): BodyChoice => ({ kind: 'json', value })) },
      { weight: 8, arbitrary: invalidValue(op.body, resolve).map((value): BodyChoice => ({ kind: 'json', value })) },
      { weight: 2, arbitrary: raw },
      { weight: 1, arbitrary: fc.constant<BodyChoice>({ kind: 'none' }) },
      { weight: 1, arbitrary: oversize },
      { weight: 1, arbitrary: deep },
    );
  }
  if (!BODY_METHODS.has(op.method)) return fc.constant({ kind: 'none' });
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant<BodyChoice>({ kind: 'none' }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((value): BodyChoice => ({ kind: 'json', value })) },
    { weight: 1, arbitrary: raw },
    { weight: 1, arbitrary: oversize },
    { weight: 1, arbitrary: deep },
  );
}

/** Cases for every operation of `ops`, each operation equally likely. */
export function caseArbitrary(ops: Operation[], resolve: Resolve): fc.Arbitrary<FuzzCase> {
  const perOp = ops.map((op, i) =>
    fc.record({
      op: fc.constant(i),
      params: fc.record(Object.fromEntries(op.pathParams.map((p) => [p.name, paramArb(p.schema, resolve)]))) as fc.Arbitrary<Record<string, ParamChoice>>,
      query: queryArb(op, resolve),
      body: bodyArb(op, resolve),
    }),
  );
  return fc.oneof(...perOp);
}
