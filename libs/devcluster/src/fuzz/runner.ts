import fc from 'fast-check';
import { caseArbitrary, type BodyChoice, type FuzzCase } from './cases.js';
import { Ledger } from './ledger.js';
import { operationsOf, resolverOf, type OpenApiDocument, type Operation } from './openapi.js';

/**
 * Drives every operation of a live controller's `/openapi.json` with
 * generated requests and judges each answer against the document itself:
 * its status is documented for the operation, its JSON body validates
 * against the documented schema, no 5xx but the documented upstream
 * outcomes of the service proxy, an error repeats no long piece of the
 * input, input the schemas refuse is never answered 2xx and input they
 * admit is never refused by schema validation.
 */

export interface FuzzOptions {
  baseUrl: string;
  cases: number;
  seed: number;
  /** Requests in flight at once. */
  concurrency?: number;
  /** The controller's `--body-limit-bytes`. */
  bodyLimit: number;
  ledger: Ledger;
  /** Valid `POST /v1/nodes` bodies sent as such (each starts an agent); the rest are made invalid. */
  provisionBudget?: number;
  /** What pods run: valid pod bodies get one of these as their command (generated argv never runs). */
  safeCommands: string[][];
  requestTimeoutMs?: number;
}

export interface FuzzFailure {
  operation: string;
  status: number;
  problem: string;
  request: string;
}

export interface FuzzReport {
  cases: number;
  /** Operation -> status -> count (status 0: the request failed without an answer). */
  byOperation: Map<string, Map<number, number>>;
  /** Operation -> milliseconds spent on its requests, summed. */
  msByOperation: Map<string, number>;
  /** Requests whose path no route matched (an empty or dot-segment parameter), answered 404 "no route". */
  unrouted: number;
  failures: FuzzFailure[];
  failureCount: number;
  durationMs: number;
}

/**
 * The 5xx answers that report the world rather than a fault: the proxy's pods
 * (which run `sleep` here) refuse or there is none; a pod's agent did not
 * answer its logs request (the fuzzer deletes the nodes it provisioned: their
 * agent stops a moment before their record goes).
 */
function expected5xx(op: Operation, status: number, code: string | undefined): boolean {
  if (op.path.endsWith('/logs')) return status === 502 && code === 'AGENT_UNREACHABLE';
  if (!op.path.includes('/proxy')) return false;
  // A HEAD answer has no body to name its code.
  if (op.method === 'HEAD') return status === 502 || status === 503;
  return (status === 502 && code === 'UPSTREAM_UNREACHABLE') || (status === 503 && code === 'NO_ENDPOINTS');
}

const COLLECTION: Array<[RegExp, 'pods' | 'nodes' | 'services' | 'jobs' | 'tokens']> = [
  [/^\/v1\/tokens/, 'tokens'],
  [/^\/v1\/pods/, 'pods'],
  [/^\/v1\/nodes/, 'nodes'],
  [/^\/v1\/services/, 'services'],
  [/^\/v1\/jobs/, 'jobs'],
];
const collectionOf = (path: string) => COLLECTION.find(([re]) => re.test(path))?.[1];

/** A param that makes the URL parser drop or merge a segment: the request cannot reach the operation. */
const unroutable = (v: string) => v === '' || v === '.' || v === '..' || /^(%2e|\.){1,2}$/i.test(v);

/** Runs the fuzz; never throws for what the server answers (that goes into the report). */
export async function fuzzApi(opts: FuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const doc = (await (await fetch(`${opts.baseUrl}/openapi.json`)).json()) as OpenApiDocument;
  const ops = operationsOf(doc);
  const arb = caseArbitrary(ops, resolverOf(doc));
  const report: FuzzReport = { cases: 0, byOperation: new Map(ops.map((o) => [o.key, new Map()])), msByOperation: new Map(), unrouted: 0, failures: [], failureCount: 0, durationMs: 0 };
  let budget = opts.provisionBudget ?? 1;
  const fail = (f: FuzzFailure) => {
    report.failureCount++;
    if (report.failures.length < 50) report.failures.push(f);
  };
  let next = 0;
  const BATCH = 100;
  let batch: FuzzCase[] = [];
  let batchStart = 0;
  const take = (): FuzzCase | undefined => {
    if (next >= opts.cases) return undefined;
    if (next - batchStart >= batch.length) {
      batchStart = next;
      batch = fc.sample(arb, { seed: opts.seed + next, numRuns: Math.min(BATCH, opts.cases - next) });
    }
    return batch[next++ - batchStart];
  };
  const worker = async () => {
    for (let c = take(); c !== undefined; c = take()) {
      const op = ops[c.op]!;
      const tame = op.key === 'POST /v1/nodes' ? () => budget-- > 0 : () => true;
      await runCase(op, c, opts, tame, fail, report);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  report.durationMs = Date.now() - started;
  return report;
}

interface Sent {
  url: string;
  params: Record<string, string>;
  body?: string;
  contentType?: string;
  /** The path was shortened to stay under Node's limit on a request line (its parameters are not what was generated). */
  cut: boolean;
  /** The JSON value sent, when the case sends JSON. */
  json?: unknown;
  /** Whether the schemas admit the input; undefined when the case is not judged (a raw query or body). */
  valid?: boolean;
}

async function runCase(op: Operation, c: FuzzCase, opts: FuzzOptions, provisionAllowed: () => boolean, fail: (f: FuzzFailure) => void, report: FuzzReport): Promise<void> {
  const sent = build(op, c, opts, provisionAllowed);
  if (sent === undefined) return;
  report.cases++;
  const describe = () => `${op.method} ${sent.url.slice(opts.baseUrl.length, opts.baseUrl.length + 160)} body=${c.body.kind}${sent.body === undefined ? '' : ` ${sent.body.slice(0, 160)}`}`;
  const t0 = Date.now();
  const count = (status: number) => {
    report.msByOperation.set(op.key, (report.msByOperation.get(op.key) ?? 0) + Date.now() - t0);
    const m = report.byOperation.get(op.key)!;
    m.set(status, (m.get(status) ?? 0) + 1);
  };
  let status = 0;
  let text = '';
  let contentType = '';
  try {
    const res = await fetch(sent.url, {
      method: op.method,
      headers: sent.contentType === undefined ? {} : { 'content-type': sent.contentType },
      ...(sent.body === undefined ? {} : { body: sent.body }),
      signal: AbortSignal.timeout(opts.requestTimeoutMs ?? 40_000),
    });
    status = res.status;
    contentType = res.headers.get('content-type') ?? '';
    text = await readCapped(res);
  } catch (err) {
    // A body over the limit may be cut off by the server's early 413 while it is still being sent.
    if (sent.body !== undefined && Buffer.byteLength(sent.body) > opts.bodyLimit) {
      count(413);
      return;
    }
    count(0);
    const cause = (err as Error).cause as Error | undefined;
    return fail({ operation: op.key, status: 0, problem: `no answer: ${(err as Error).message}${cause === undefined ? '' : ` (${cause.message})`}`, request: describe() });
  }
  count(status);
  let parsed: unknown;
  if (contentType.includes('application/json') && op.method !== 'HEAD') {
    try {
      parsed = JSON.parse(text);
    } catch {
      return fail({ operation: op.key, status, problem: 'a JSON content type with a body that is not JSON', request: describe() });
    }
  }
  const error = (parsed ?? {}) as { error?: string; message?: string; details?: unknown };
  if (status === 404 && typeof error.message === 'string' && error.message.startsWith('no route') && Object.values(sent.params).some(unroutable)) {
    report.unrouted++;
    return;
  }
  const documented = op.responses.get(status);
  if (documented === undefined) return fail({ operation: op.key, status, problem: `status ${status} is not documented (${text.slice(0, 200)})`, request: describe() });
  if (status >= 500 && !expected5xx(op, status, error.error)) return fail({ operation: op.key, status, problem: `server error: ${text.slice(0, 300)}`, request: describe() });
  if (documented.json !== undefined && parsed !== undefined && !documented.json(parsed)) {
    return fail({ operation: op.key, status, problem: `answer does not match its documented schema: ${JSON.stringify(documented.json.errors?.slice(0, 2))} in ${text.slice(0, 200)}`, request: describe() });
  }
  if (status >= 400) {
    const echo = longestEcho(sent, c, error.message ?? '');
    if (text.length > 16_384 || (error.message?.length ?? 0) > 1100 || echo !== undefined) {
      return fail({ operation: op.key, status, problem: `the error answer repeats too much of the input (${text.length} bytes${echo === undefined ? '' : `, quotes ${echo.length}+ chars`})`, request: describe() });
    }
  }
  const tooLarge = sent.body !== undefined && Buffer.byteLength(sent.body) > opts.bodyLimit;
  // The router refuses a bad path parameter before the body is read: 413 only once the route is found.
  if (tooLarge && status !== 413 && !sent.cut && op.acceptsParams(sent.params)) return fail({ operation: op.key, status, problem: `a ${Buffer.byteLength(sent.body!)}-byte body over the ${opts.bodyLimit} limit was not refused with 413`, request: describe() });
  if (sent.valid === false && status < 300) return fail({ operation: op.key, status, problem: 'input the documented schemas refuse was accepted', request: describe() });
  if (sent.valid === true && !tooLarge && status === 400 && Array.isArray(error.details)) {
    return fail({ operation: op.key, status, problem: `input the documented schemas admit was refused by validation: ${error.message}`, request: describe() });
  }
  if (status < 300 && parsed !== undefined) record(op, status, parsed, opts.ledger, fail, describe);
}

/** What a 2xx answer tells the ledger. */
function record(op: Operation, status: number, body: unknown, ledger: Ledger, fail: (f: FuzzFailure) => void, describe: () => string): void {
  const item = body as { id?: string; name?: string; items?: Array<{ id?: string; name?: string }> };
  const collection = collectionOf(op.path);
  if (collection === undefined) return;
  for (const it of item.items ?? []) ledger.see(collection, ...[it.id, it.name].filter((x): x is string => typeof x === 'string'));
  const id = item.id ?? item.name;
  if (id === undefined) return;
  ledger.see(collection, ...[item.id, item.name].filter((x): x is string => typeof x === 'string'));
  const created = op.method === 'POST' && !op.path.includes('{');
  const deleted = op.method === 'DELETE';
  if (collection === 'pods' && created) ledger.pods.set(id, false);
  if (collection === 'pods' && deleted && ledger.pods.has(id)) ledger.pods.set(id, true);
  if (collection === 'services' && created) ledger.services.set(item.name!, false);
  if (collection === 'services' && deleted) ledger.services.set(item.name!, true);
  if (collection === 'nodes' && created) ledger.nodes.set(id, false);
  if (collection === 'nodes' && deleted && ledger.nodes.has(id)) ledger.nodes.set(id, true);
  if (collection === 'tokens' && created) ledger.tokens.set(id, false);
  if (collection === 'tokens' && deleted) ledger.tokens.set(id, true);
  if (collection === 'jobs' && created && status === 202) ledger.jobs.add(id);
  if (collection === 'jobs' && created && status === 200 && !ledger.jobs.has(id)) fail({ operation: op.key, status, problem: `an idempotent 200 names job ${id}, which no 202 accepted`, request: describe() });
}

/** The longest piece (> 64 chars) of an input string that the error message repeats, if any. */
function longestEcho(sent: Sent, c: FuzzCase, message: string): string | undefined {
  const inputs: string[] = [...Object.values(sent.params), ...(Array.isArray(c.query) ? c.query.flat() : [c.query.raw])];
  const walk = (v: unknown) => {
    if (typeof v === 'string') inputs.push(v);
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) (inputs.push(k), walk(x));
  };
  walk(sent.json);
  if (c.body.kind === 'raw') inputs.push(c.body.text, c.body.contentType);
  return inputs.filter((s) => s.length > 66).find((s) => message.includes(s.slice(0, 66)));
}

/** Reads an answer, at most 2 MB or 300 ms of it once it streams (the event stream, followed logs, a proxied pod). */
async function readCapped(res: Response): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const streaming = !(res.headers.get('content-type') ?? '').includes('application/json');
  const deadline = streaming ? Date.now() + 300 : Infinity;
  try {
    while (text.length < 2_000_000) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const chunk = await (Number.isFinite(left) ? Promise.race([reader.read(), new Promise<undefined>((r) => setTimeout(() => r(undefined), left).unref())]) : reader.read());
      if (chunk === undefined || chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return text;
}

/** The request a case makes, with its parameters resolved against the ledger; undefined when it names a kind of thing there is none of. */
function build(op: Operation, c: FuzzCase, opts: FuzzOptions, provisionAllowed: () => boolean): Sent | undefined {
  const params: Record<string, string> = {};
  const collection = collectionOf(op.path);
  for (const p of op.pathParams) {
    const choice = c.params[p.name]!;
    // A URL carries UTF-8: a lone surrogate cannot be encoded, and U+FFFD is what a server would decode anyway.
    if (choice.kind === 'value') params[p.name] = choice.value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
    else {
      const known = p.name === '*' || collection === undefined ? undefined : opts.ledger.known(collection, choice.pick, op.method === 'DELETE' && collection === 'nodes');
      params[p.name] = known ?? (p.name === '*' ? 'x' : `fuzz-${choice.pick}`);
    }
  }
  let path = op.path;
  for (const [name, value] of Object.entries(params)) {
    const encoded = name === '*' ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value);
    path = path.replace(`{${name}}`, encoded);
  }
  // Node's HTTP parser refuses a request line over 16 KB with 431 before the API sees it (docs/limits.md): keep URLs under that.
  const cut = path.length > 4000;
  if (cut) path = path.slice(0, 4000).replace(/%[0-9A-F]?$/i, '');
  let query: Record<string, string | string[]> | undefined = {};
  let search = '';
  if (Array.isArray(c.query)) {
    const pairs = c.query.map(([k, v]): [string, string] => (op.key === 'GET /v1/jobs/{id}' && k === 'wait' && Number(v) > 0.5 ? [k, '0.5'] : [k, v]));
    const sp = new URLSearchParams(pairs.map(([k, v]): [string, string] => [k.slice(0, 500), v.slice(0, 1500)]));
    search = sp.size === 0 ? '' : `?${sp.toString()}`;
    for (const k of new Set(sp.keys())) {
      const all = sp.getAll(k);
      // defineProperty: `query['__proto__'] = v` would set the prototype, and the model would miss the unknown parameter the server sees.
      Object.defineProperty(query, k, { value: all.length === 1 ? all[0]! : all, enumerable: true, writable: true, configurable: true });
    }
  } else {
    search = `?${c.query.raw.slice(0, 2000)}`;
    query = undefined;
  }
  if (search.length > 3000) search = search.slice(0, 3000).replace(/%[0-9A-F]?$/i, '');
  const sent: Sent = { url: `${opts.baseUrl}${path}${search}`, params, cut };
  const judged = query !== undefined && !cut && search.length < 3000 && !Array.from(sp(c.query)).some(([k, v]) => k.length > 500 || v.length > 1500);
  const body = tameBody(op, c.body, opts, provisionAllowed);
  switch (body.kind) {
    case 'json':
      sent.json = body.value;
      sent.body = JSON.stringify(body.value) ?? 'null';
      sent.contentType = 'application/json';
      break;
    case 'raw':
      sent.body = body.text;
      sent.contentType = body.contentType;
      break;
    case 'oversize':
      sent.body = JSON.stringify({ pad: 'x'.repeat(opts.bodyLimit + body.extra) });
      sent.contentType = 'application/json';
      break;
    case 'deep':
      sent.body = '['.repeat(body.depth) + ']'.repeat(body.depth);
      sent.contentType = 'application/json';
      break;
    case 'none':
      break;
  }
  if (judged && (body.kind === 'json' || body.kind === 'none')) sent.valid = op.accepts({ params, query: query!, ...(body.kind === 'json' ? { body: body.value } : {}) });
  return sent;
}

/** The query pairs of a case (none for a raw query). */
function sp(q: FuzzCase['query']): Array<[string, string]> {
  return Array.isArray(q) ? q : [];
}

function isSafeToReplace(command: unknown): boolean {
  return Array.isArray(command) && command.length >= 1 && command.length <= 256 && command.every((a) => typeof a === 'string' && a.length <= 4096);
}

/**
 * Keeps valid bodies cheap and harmless: a pod runs one of the safe commands
 * (never generated argv), asks for at least 64 MiB (so a node holds a few
 * dozen, not thousands), a service keeps at most 2 replicas, and only
 * `provisionBudget` node provisions go through.
 */
function tameBody(op: Operation, body: BodyChoice, opts: FuzzOptions, provisionAllowed: () => boolean): BodyChoice {
  if (body.kind !== 'json' || body.value === null || typeof body.value !== 'object' || Array.isArray(body.value)) return body;
  const v = structuredClone(body.value) as Record<string, unknown>;
  const tamePod = (p: unknown) => {
    if (p === null || typeof p !== 'object' || Array.isArray(p)) return p;
    const pod = p as Record<string, unknown>;
    // A command that is itself invalid stays: the request is refused, so it never runs.
    if (isSafeToReplace(pod.command)) pod.command = opts.safeCommands[(pod.command as string[]).join('').length % opts.safeCommands.length];
    if (typeof pod.memoryMiB === 'number' && pod.memoryMiB < 64) pod.memoryMiB = 64;
    return pod;
  };
  if (op.key === 'POST /v1/pods') tamePod(v);
  if (op.key === 'POST /v1/services' || op.key === 'PATCH /v1/services/{name}') {
    if (typeof v.replicas === 'number' && v.replicas > 2) v.replicas = v.replicas % 3;
    tamePod(v.template);
  }
  if (op.key === 'POST /v1/nodes' && op.accepts({ params: {}, query: {}, body: v }) && !provisionAllowed()) v.cpu = 0;
  // Most jobs go to a service that exists, so they are accepted and run.
  if (op.key === 'POST /v1/jobs' && typeof v.service === 'string' && v.service.length % 4 !== 0) v.service = opts.ledger.known('services', v.service.length) ?? v.service;
  return { kind: 'json', value: v };
}

export { Ledger };
