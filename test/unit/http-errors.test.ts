import t from 'tap';
import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type InjectOptions } from 'fastify';
import pino from 'pino';
import { BerthError, errors } from '@berth/core';
import { installErrorHandling } from '@berth/http';

// The error handler the controller and the agent share, on a tiny app called with inject().

class Unmapped extends Error {}

/** An app with one route of each kind of failure, and the log lines it wrote. */
function app(etcdProblem?: () => string | undefined) {
  const lines: Array<{ level: number; msg: string; err?: { message?: string } }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as (typeof lines)[number]);
      done();
    },
  });
  const log = pino({ level: 'info' }, sink) as FastifyBaseLogger;
  // Unknown fields refused rather than dropped, as the controller configures Ajv.
  const a = Fastify({ loggerInstance: log, bodyLimit: 1024, ajv: { customOptions: { removeAdditional: false } } });
  installErrorHandling(a, {
    ...(etcdProblem === undefined ? {} : { etcdProblem }),
    mapError: (err) => (err instanceof Unmapped && err.message === 'known' ? errors.notFound('thing', 'mapped') : undefined),
  });
  a.post('/things', { schema: { body: { type: 'object', required: ['cpu'], additionalProperties: false, properties: { cpu: { type: 'number', exclusiveMinimum: 0 } } } } }, async () => ({ ok: true }));
  a.get('/missing', async () => {
    throw errors.notFound('pod', 'p1');
  });
  a.get('/mapped', async () => {
    throw new Unmapped('known');
  });
  a.get('/bug', async () => {
    throw new Unmapped('secret at /var/lib/berth/key 10.0.0.7:2379');
  });
  a.route({
    method: ['GET', 'POST'],
    url: '/etcd',
    handler: async () => {
      throw errors.etcdUnavailable('etcd is unavailable [ECONNREFUSED]', new Error('connect ECONNREFUSED 127.0.0.1:2379'));
    },
  });
  a.get('/refused', async () => {
    // A replica that already knows etcd is away refuses before calling it: no cause, its own message.
    throw errors.etcdUnavailable('etcd is unreachable; this replica answers 503 until it is back');
  });
  return { app: a, lines };
}

const json = { 'content-type': 'application/json' };

interface Row {
  name: string;
  req: InjectOptions;
  status: number;
  error: string;
  message: RegExp;
  etcdProblem?: () => string | undefined;
}

const rows: Row[] = [
  { name: 'bad JSON', req: { method: 'POST', url: '/things', headers: json, payload: '{"cpu": 1' }, status: 400, error: 'VALIDATION_FAILED', message: /not valid JSON/ },
  { name: 'empty JSON body', req: { method: 'POST', url: '/things', headers: json, payload: '' }, status: 400, error: 'VALIDATION_FAILED', message: /body is empty/ },
  { name: 'bad JSON on an unknown route', req: { method: 'POST', url: '/nowhere', headers: json, payload: '{' }, status: 400, error: 'VALIDATION_FAILED', message: /not valid JSON/ },
  { name: 'a content type the app does not parse', req: { method: 'POST', url: '/things', headers: { 'content-type': 'text/csv' }, payload: 'cpu\n1' }, status: 400, error: 'VALIDATION_FAILED', message: /content-type "text\/csv" is not accepted/ },
  { name: 'a body over the limit', req: { method: 'POST', url: '/things', headers: json, payload: JSON.stringify({ cpu: 1, pad: 'x'.repeat(2000) }) }, status: 413, error: 'PAYLOAD_TOO_LARGE', message: /larger than 1024 bytes/ },
  { name: 'a schema violation names the field', req: { method: 'POST', url: '/things', headers: json, payload: { cpu: 0 } }, status: 400, error: 'VALIDATION_FAILED', message: /^body\/cpu must be > 0$/ },
  { name: 'a missing field is named', req: { method: 'POST', url: '/things', headers: json, payload: {} }, status: 400, error: 'VALIDATION_FAILED', message: /^body\/cpu is required$/ },
  { name: 'an unknown field is named', req: { method: 'POST', url: '/things', headers: json, payload: { cpu: 1, colour: 'red' } }, status: 400, error: 'VALIDATION_FAILED', message: /^body\/colour is not a known field$/ },
  { name: 'BerthError NOT_FOUND', req: { method: 'GET', url: '/missing' }, status: 404, error: 'NOT_FOUND', message: /^pod "p1" not found$/ },
  { name: 'an error the app maps', req: { method: 'GET', url: '/mapped' }, status: 404, error: 'NOT_FOUND', message: /^thing "mapped" not found$/ },
  { name: 'an unknown route', req: { method: 'GET', url: '/nope?x=1' }, status: 404, error: 'NOT_FOUND', message: /^no route GET \/nope$/ },
  { name: 'an unexpected throw is INTERNAL, naming the request and not the error', req: { method: 'GET', url: '/bug' }, status: 500, error: 'INTERNAL', message: /^internal error while serving request \S+; the server's log has the details$/ },
  {
    name: 'etcd away on a read: the probe says why',
    req: { method: 'GET', url: '/etcd' },
    etcdProblem: () => 'etcd has no quorum: 2 of 3 members give no answer',
    status: 503,
    error: 'ETCD_UNAVAILABLE',
    message: /^etcd has no quorum: 2 of 3 members give no answer$/,
  },
  {
    name: 'etcd away on a write: its outcome is unknown',
    req: { method: 'POST', url: '/etcd', headers: json, payload: {} },
    etcdProblem: () => 'etcd has no quorum',
    status: 503,
    error: 'ETCD_UNAVAILABLE',
    message: /^etcd has no quorum\. The outcome of this request is unknown/,
  },
  { name: 'etcd away, no probe account: the call\'s own message', req: { method: 'GET', url: '/etcd' }, status: 503, error: 'ETCD_UNAVAILABLE', message: /^etcd is unavailable \[ECONNREFUSED\]$/ },
  { name: 'a refusal without a cause keeps its message', req: { method: 'GET', url: '/refused' }, etcdProblem: () => 'not this', status: 503, error: 'ETCD_UNAVAILABLE', message: /^etcd is unreachable; this replica/ },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const { app: a } = app(row.etcdProblem);
    t.teardown(() => a.close());
    const res = await a.inject(row.req);
    t.equal(res.statusCode, row.status, 'status');
    const body = res.json() as { error: string; message: string };
    t.equal(body.error, row.error, 'code');
    t.match(body.message, row.message, 'message');
    t.equal(res.headers['retry-after'], res.statusCode === 503 ? '1' : undefined, 'Retry-After: 1 on a 503 only');
  });
}

t.test('validation errors carry the validator\'s details', async (t) => {
  const { app: a } = app();
  t.teardown(() => a.close());
  const res = await a.inject({ method: 'POST', url: '/things', headers: json, payload: { cpu: 'lots' } });
  const body = res.json() as { details?: Array<{ instancePath: string; keyword: string }> };
  t.match(body.details, [{ instancePath: '/cpu', keyword: 'type' }]);
});

t.test('an unexpected error goes to the log at error level, with its text; a rejection at info', async (t) => {
  const { app: a, lines } = app();
  t.teardown(() => a.close());
  const bug = await a.inject({ method: 'GET', url: '/bug' });
  t.notMatch(bug.body, /secret|10\.0\.0\.7/, 'the answer does not leak the error text');
  const logged = lines.find((l) => l.level === 50);
  t.match(logged?.err?.message, /secret at \/var\/lib\/berth\/key/, 'the log has it');
  await a.inject({ method: 'GET', url: '/missing' });
  t.ok(lines.some((l) => l.level === 30 && l.msg === 'pod "p1" not found'), 'a 404 is logged at info');
  t.equal(lines.filter((l) => l.level >= 50).length, 1, 'only the bug at error level');
});

t.test('a BerthError INTERNAL keeps its own message: it was written for the client', async (t) => {
  const a = Fastify();
  installErrorHandling(a);
  a.get('/x', async () => {
    throw new BerthError('INTERNAL', 'pod p1: Running -> Pending is not a transition the agent may write');
  });
  const res = await a.inject({ method: 'GET', url: '/x' });
  t.equal(res.statusCode, 500);
  t.match(res.json(), { error: 'INTERNAL', message: /Running -> Pending/ });
  await a.close();
});
