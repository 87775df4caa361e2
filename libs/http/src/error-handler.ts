import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError, clampEcho, ERROR_STATUS, type ErrorCode } from '@berth/core';

/** What every error response carries: a catalogue code, a message for people, and sometimes details (e.g. Ajv's errors). */
export interface ErrorBody {
  error: ErrorCode;
  message: string;
  details?: unknown;
}

/**
 * Longest message an error answer carries. Values quoted from the request are
 * clamped on their own (`clampEcho`); this bounds whatever else a message
 * may have picked up, e.g. an upstream's text.
 */
export const MAX_ERROR_MESSAGE = 1024;

/** What `installErrorHandling` needs to know about the app it serves. */
export interface ErrorHandlingOptions {
  /**
   * Maps the errors of the app's own libraries into the catalogue (an etcd
   * call that found no etcd, a runtime that does not hold a pod). Returning
   * undefined leaves the error unexpected: 500 INTERNAL, its text only in
   * the log.
   */
  mapError?: (err: Error) => BerthError | undefined;
  /**
   * The health probe's account of etcd when it is away ("etcd has no quorum:
   * ..."), used as the message of a 503 ETCD_UNAVAILABLE caused by an etcd
   * call: the failed call knows only its own endpoint's error.
   */
  etcdProblem?: () => string | undefined;
}

interface Answer {
  status: number;
  body: ErrorBody;
}

/**
 * Makes every error of `app` answer `{ error, message, details? }` with a
 * code and status from the catalogue in `@berth/core`:
 *
 * - BerthError: its own code and status.
 * - Fastify's schema validation: 400 VALIDATION_FAILED naming the field
 *   (`body/cpu must be >= 0.001`, `body/colour is not a known field`).
 * - Fastify's body parsing: bad or empty JSON, an unaccepted content type ->
 *   400 VALIDATION_FAILED; a body over the limit -> 413 PAYLOAD_TOO_LARGE.
 * - `opts.mapError`'s answer for anything else; what it does not know is a
 *   bug: 500 INTERNAL whose message names the request id but not the error's
 *   own text, which may hold internals (paths, addresses) and goes to the log.
 *
 * No answer repeats more than a bounded part of the request: a quoted value
 * (a field name, a URL, a content type) is clamped to 64 characters, strings
 * in `details` likewise, and a message to MAX_ERROR_MESSAGE.
 *
 * A 503 carries `Retry-After: 1` (etcd is probed every second). Like
 * Fastify's default handler, < 500 is logged at info and >= 500 at error,
 * except an expected outage (a known 5xx code: etcd away, no endpoints, a
 * pod or agent that did not answer), logged at warn without a stack.
 * Unknown routes answer 404 NOT_FOUND naming method and path.
 */
export function installErrorHandling(app: FastifyInstance, opts: ErrorHandlingOptions = {}): void {
  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    const { status, body: unclamped } = answer(err, req, opts, app.initialConfig.bodyLimit);
    const body = bounded(unclamped);
    if (status === 503) void reply.header('retry-after', '1');
    if (status >= 500 && err instanceof BerthError && err.code !== 'INTERNAL') req.log.warn({ code: body.error }, body.message);
    else if (status >= 500) req.log.error({ err }, body.message);
    else req.log.info({ err, code: body.error }, body.message);
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const body: ErrorBody = { error: 'NOT_FOUND', message: `no route ${clampEcho(req.method)} ${clampEcho(req.url.split('?')[0] ?? '')}` };
    void reply.status(404).send(body);
  });
}

/**
 * Fastify's `frameworkErrors` option: the router's own refusals (a URL whose
 * percent-encoding is broken, a path parameter over `maxParamLength`), which
 * Fastify would otherwise answer in its own shape, quoting the whole URL.
 */
export function answerFrameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const message =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? `a path parameter of ${clampEcho(req.url.split('?')[0] ?? '')} is longer than the router takes`
      : `the URL ${clampEcho(req.url)} is not valid percent-encoding`;
  req.log.info({ code: err.code }, message);
  void reply.status(400).send({ error: 'VALIDATION_FAILED', message } satisfies ErrorBody);
}

function answer(err: unknown, req: FastifyRequest, opts: ErrorHandlingOptions, bodyLimit: number | undefined): Answer {
  if (err instanceof BerthError) return fromBerthError(err, req, opts);
  if (!(err instanceof Error)) return internal(req);
  const fe = err as Partial<FastifyError>;
  if (Array.isArray(fe.validation)) {
    return { status: 400, body: { error: 'VALIDATION_FAILED', message: validationMessage(fe as FastifyError), details: clampStrings(fe.validation, 4) } };
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return clientError(fe as FastifyError, req, bodyLimit);
  const mapped = opts.mapError?.(err);
  return mapped === undefined ? internal(req) : fromBerthError(mapped, req, opts);
}

function fromBerthError(err: BerthError, req: FastifyRequest, opts: ErrorHandlingOptions): Answer {
  const body: ErrorBody = { error: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) };
  // An etcd call failed (a replica that already knows etcd is away refuses without a cause, and its message says so).
  if (err.code === 'ETCD_UNAVAILABLE' && err.cause !== undefined) {
    body.message = opts.etcdProblem?.() ?? err.message;
    // A write that reached a member without quorum sits in its raft log and may still be
    // committed when quorum returns: the client must not take the 503 as "nothing happened".
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      body.message += '. The outcome of this request is unknown: it may still take effect when etcd recovers; check before retrying';
    }
  }
  return { status: err.statusCode, body };
}

/**
 * Ajv names the object, not the field, for a missing or an unknown property
 * ("body must have required property 'cpu'"); name the field instead.
 */
function validationMessage(err: FastifyError): string {
  const first = err.validation?.[0];
  // The instance path names the client's own keys (an env variable, a label): clamped like any echoed value.
  const where = `${err.validationContext ?? 'body'}${clampEcho(first?.instancePath ?? '')}`;
  const extra = first?.params?.additionalProperty;
  if (first?.keyword === 'additionalProperties' && typeof extra === 'string') return `${where}/${clampEcho(extra)} is not a known field`;
  // A map key that breaks its pattern (`propertyNames`): Ajv names the map, say which key.
  const key = (first as { propertyName?: unknown } | undefined)?.propertyName;
  if (typeof key === 'string' && first?.message !== undefined) return `${where} key ${JSON.stringify(clampEcho(key))} ${first.message}`;
  const missing = first?.params?.missingProperty;
  if (first?.keyword === 'required' && typeof missing === 'string') return `${where}/${missing} is required`;
  return first?.message === undefined ? clampEcho(err.message, MAX_ERROR_MESSAGE) : `${where} ${first.message}`;
}

/** Fastify's own refusals of a request (its body, its URL), in the catalogue's terms. */
function clientError(err: FastifyError, req: FastifyRequest, bodyLimit: number | undefined): Answer {
  const contentType = clampEcho(req.headers['content-type'] ?? '');
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return refused('VALIDATION_FAILED', `the request body is not valid JSON (content-type ${contentType})`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return refused('VALIDATION_FAILED', `the request body is empty but its content-type is ${contentType}`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return refused('VALIDATION_FAILED', `content-type ${JSON.stringify(contentType)} is not accepted here: send application/json`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return refused('PAYLOAD_TOO_LARGE', `the request body is larger than ${bodyLimit === undefined ? 'the limit' : `${bodyLimit} bytes, the limit`}`);
    default: {
      // Another 4xx (a bad URL, a content-length that does not match): its status when the
      // catalogue has a code for it, else a plain 400.
      const code = codeForStatus(err.statusCode ?? 400) ?? 'VALIDATION_FAILED';
      return refused(code, clampEcho(err.message, MAX_ERROR_MESSAGE));
    }
  }
}

/** The answer with its message and details held to their bounds (a safety net: the pieces are clamped where they are quoted). */
function bounded(body: ErrorBody): ErrorBody {
  const message = clampEcho(body.message, MAX_ERROR_MESSAGE);
  return body.details === undefined ? { ...body, message } : { ...body, message, details: clampStrings(body.details, 6) };
}

/** `value` with every string clamped (`clampEcho`), arrays cut to 20 items and nesting to `depth` levels. */
function clampStrings(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return clampEcho(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth <= 0) return '…';
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => clampStrings(v, depth - 1));
  return Object.fromEntries(Object.entries(value).slice(0, 20).map(([k, v]) => [clampEcho(k), clampStrings(v, depth - 1)]));
}

function refused(code: ErrorCode, message: string): Answer {
  return { status: ERROR_STATUS[code], body: { error: code, message } };
}

function codeForStatus(status: number): ErrorCode | undefined {
  return (Object.keys(ERROR_STATUS) as ErrorCode[]).find((c) => ERROR_STATUS[c] === status);
}

function internal(req: FastifyRequest): Answer {
  return { status: 500, body: { error: 'INTERNAL', message: `internal error while serving request ${req.id}; the server's log has the details` } };
}
