import fc from 'fast-check';

/**
 * fast-check arbitraries derived from the JSON Schemas of an OpenAPI
 * document: values meant to be valid, and values meant to break one rule of
 * the schema (a type, a bound, a pattern, a required or unknown property).
 * "Meant": whether a value really is valid is decided by Ajv afterwards, with
 * the server's own options (type coercion included), so an arbitrary that
 * misses never makes the fuzzer expect the wrong answer.
 */

/** The subset of JSON Schema the API's documents use. */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  propertyNames?: Schema;
  maxProperties?: number;
}

/** Looks a `$ref` up in the document. */
export type Resolve = (ref: string) => Schema;

/** How large generated collections get, unless a case asks for the edge. */
const SMALL = 4;

/** Strings of every kind: ASCII, any code point (lone surrogates included), and hostile ones. */
export const anyString = (maxLength = 24): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength }) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', '..', '/', '%', '%2F', '\u0000', '__proto__', 'constructor', '😀', '\uD800', 'a'.repeat(300), 'ß'.repeat(5000)) },
  );

function deref(schema: Schema, resolve: Resolve): Schema {
  return schema.$ref === undefined ? schema : deref(resolve(schema.$ref), resolve);
}

function typeOf(schema: Schema): string | undefined {
  if (schema.enum !== undefined) return 'enum';
  return Array.isArray(schema.type) ? schema.type[0] : schema.type;
}

/** A string the schema's pattern and lengths admit (most of the time: Ajv has the last word). */
function validString(s: Schema): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  const max = s.maxLength ?? 64;
  if (s.pattern !== undefined) {
    const re = new RegExp(s.pattern, 'u');
    const ok = (v: string) => v.length >= min && v.length <= max;
    // A pattern anchored at both ends describes the whole value; one anchored only at the start (`^/`) takes any tail.
    return fc.stringMatching(re, { size: 'small' }).filter(ok);
  }
  const short = fc.string({ minLength: min, maxLength: Math.min(max, Math.max(min, 24)) });
  if (max <= 24) return short;
  // Now and then the longest value the schema allows (limits are where bugs live), built by repetition: generating it char by char costs seconds.
  return fc.oneof({ weight: 8, arbitrary: short }, { weight: 2, arbitrary: longest(max) });
}

/** A string of exactly `max` code points, one of a few kinds of character repeated. */
const longest = (max: number): fc.Arbitrary<string> => fc.constantFrom('x', 'é', '😀', '"', '\\', '\u2028').map((ch) => ch.repeat(max));

function validNumber(s: Schema, integer: boolean): fc.Arbitrary<number> {
  const min = s.minimum ?? s.exclusiveMinimum ?? -1e9;
  const max = s.maximum ?? s.exclusiveMaximum ?? 1e9;
  if (integer) {
    const lo = Math.ceil(s.exclusiveMinimum !== undefined ? min + 1 : min);
    const hi = Math.floor(s.exclusiveMaximum !== undefined ? max - 1 : max);
    return fc.oneof(fc.integer({ min: lo, max: hi }), fc.constantFrom(lo, hi));
  }
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true, minExcluded: s.exclusiveMinimum !== undefined, maxExcluded: s.exclusiveMaximum !== undefined });
}

/** Values meant to be valid against `schema`. */
export function validValue(schema: Schema, resolve: Resolve, depth = 0): fc.Arbitrary<unknown> {
  const s = deref(schema, resolve);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives !== undefined) return fc.oneof(...alternatives.map((a) => validValue(a, resolve, depth + 1)));
  switch (typeOf(s)) {
    case 'enum':
      return fc.constantFrom(...s.enum!);
    case 'string':
      return validString(s);
    case 'integer':
      return validNumber(s, true);
    case 'number':
      return validNumber(s, false);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const item = validValue(s.items ?? {}, resolve, depth + 1);
      const min = s.minItems ?? 0;
      const max = s.maxItems ?? SMALL;
      const small = fc.array(item, { minLength: min, maxLength: Math.max(min, Math.min(max, SMALL)) });
      // The most items allowed: one generated item, repeated (cheap, and as long as any).
      return max > SMALL ? fc.oneof({ weight: 9, arbitrary: small }, { weight: 1, arbitrary: item.map((x) => Array.from({ length: max }, () => x)) }) : small;
    }
    case 'object':
      return validObject(s, resolve, depth);
    default:
      // `{}`: any JSON value (a job's body).
      return fc.jsonValue({ maxDepth: 3 });
  }
}

function validObject(s: Schema, resolve: Resolve, depth: number): fc.Arbitrary<unknown> {
  const props = s.properties ?? {};
  const required = s.required ?? [];
  const record = fc.record(
    Object.fromEntries(Object.entries(props).map(([k, v]) => [k, validValue(v, resolve, depth + 1)])),
    { requiredKeys: required.filter((k) => k in props) },
  );
  const extra = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
  if (extra === undefined) return record;
  // A map (`{KEY: value}`): keys from propertyNames, bounded by maxProperties.
  const key = s.propertyNames === undefined ? fc.string({ minLength: 1, maxLength: 16 }) : validString(deref(s.propertyNames, resolve));
  const maxKeys = s.maxProperties ?? SMALL;
  const small = fc.dictionary(key, validValue(extra, resolve, depth + 1), { maxKeys: Math.min(maxKeys, SMALL) });
  const full = validValue(extra, resolve, depth + 1).map((v) => Object.fromEntries(Array.from({ length: maxKeys }, (_, i) => [`K_${i}`, v])));
  const map = maxKeys > SMALL ? fc.oneof({ weight: 9, arbitrary: small }, { weight: 1, arbitrary: full }) : small;
  return fc.tuple(record, map).map(([r, m]) => ({ ...m, ...(r as object) }));
}

/** A JSON value of another type than `type` (Ajv may still coerce it: a number for a string is valid). */
function wrongType(type: string | undefined): fc.Arbitrary<unknown> {
  const all: Array<[string, fc.Arbitrary<unknown>]> = [
    ['string', anyString()],
    ['number', fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(-1, 0, 1e308, -1e308, 2 ** 53))],
    ['boolean', fc.boolean()],
    ['null', fc.constant(null)],
    ['array', fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 })],
    ['object', fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })],
  ];
  const others = all.filter(([t]) => t !== type && !(type === 'integer' && t === 'number')).map(([, a]) => a);
  return fc.oneof(...others);
}

/** Values meant to break exactly one rule of `schema`, or to be of the wrong type altogether. */
export function invalidValue(schema: Schema, resolve: Resolve, depth = 0): fc.Arbitrary<unknown> {
  const s = deref(schema, resolve);
  const type = typeOf(s);
  const options: Array<fc.Arbitrary<unknown>> = [wrongType(type === 'enum' ? 'string' : type)];
  switch (type) {
    case 'enum':
      options.push(anyString());
      break;
    case 'string': {
      const max = s.maxLength;
      if (max !== undefined) options.push(fc.integer({ min: 1, max: 3 }).map((n) => 'x'.repeat(n === 3 ? Math.max(max * 4, 10_000) : max + n)));
      if ((s.minLength ?? 0) > 0) options.push(fc.constant(''));
      if (s.pattern !== undefined) options.push(anyString(80).filter((v) => !new RegExp(s.pattern!, 'u').test(v)));
      break;
    }
    case 'integer':
    case 'number': {
      if (s.maximum !== undefined) options.push(fc.constantFrom(s.maximum + 1, s.maximum * 1000 + 1, 1e308));
      if (s.minimum !== undefined) options.push(fc.constantFrom(s.minimum - 1, -1e308));
      if (s.exclusiveMinimum !== undefined) options.push(fc.constant(s.exclusiveMinimum));
      if (type === 'integer') options.push(fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((n) => !Number.isInteger(n)));
      break;
    }
    case 'array': {
      const item = s.items ?? {};
      if (s.maxItems !== undefined) options.push(validValue(item, resolve, depth + 1).map((x) => Array.from({ length: s.maxItems! + 1 }, () => x)));
      if ((s.minItems ?? 0) > 0) options.push(fc.constant([]));
      if (depth < 4) options.push(fc.tuple(fc.array(validValue(item, resolve, depth + 1), { maxLength: 2 }), invalidValue(item, resolve, depth + 1)).map(([ok, bad]) => [...ok, bad]));
      break;
    }
    case 'object':
      if (depth < 4) options.push(invalidObject(s, resolve, depth));
      break;
    default:
      break;
  }
  return fc.oneof(...options);
}

function invalidObject(s: Schema, resolve: Resolve, depth: number): fc.Arbitrary<unknown> {
  const base = validObject(s, resolve, depth) as fc.Arbitrary<Record<string, unknown>>;
  const props = Object.entries(s.properties ?? {});
  const options: Array<fc.Arbitrary<unknown>> = [];
  // One property broken.
  if (props.length > 0) {
    options.push(fc.tuple(base, fc.constantFrom(...props)).chain(([obj, [k, sub]]) => invalidValue(sub, resolve, depth + 1).map((bad) => ({ ...obj, [k]: bad }))));
  }
  // A required property missing.
  for (const k of s.required ?? []) options.push(base.map((obj) => Object.fromEntries(Object.entries(obj).filter(([key]) => key !== k))));
  const extra = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
  if (extra === undefined) {
    // An unknown property.
    options.push(fc.tuple(base, anyString(40).filter((k) => !(k in (s.properties ?? {}))), fc.jsonValue({ maxDepth: 1 })).map(([obj, k, v]) => ({ ...obj, [k]: v })));
  } else {
    // A map: a key outside its pattern, a bad value, or one entry too many.
    if (s.propertyNames?.pattern !== undefined) {
      const re = new RegExp(s.propertyNames.pattern, 'u');
      options.push(fc.tuple(base, anyString(300).filter((k) => !re.test(k))).map(([obj, k]) => ({ ...obj, [k]: 'v' })));
    }
    options.push(fc.tuple(base, fc.string({ minLength: 1, maxLength: 8 }), invalidValue(extra, resolve, depth + 1)).map(([obj, k, v]) => ({ ...obj, [`K${k.replace(/\W/g, '_')}`]: v })));
    if (s.maxProperties !== undefined) {
      const n = s.maxProperties + 1;
      options.push(base.map((obj) => ({ ...obj, ...Object.fromEntries(Array.from({ length: n }, (_, i) => [`K_${i}`, 'v'])) })));
    }
  }
  return fc.oneof(...options);
}
