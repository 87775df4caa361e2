import type { FastifyError, FastifyInstance } from 'fastify';
import { BerthError } from '@berth/core';
import { toBerthError } from '@berth/store';

/** Ajv says "body must NOT have additional properties"; name the field instead. */
function validationMessage(err: FastifyError): string {
  const first = err.validation?.[0];
  const extra = first?.params?.additionalProperty;
  if (first?.keyword === 'additionalProperties' && typeof extra === 'string') {
    return `${err.validationContext ?? 'body'}${first.instancePath}/${extra} is not a known field`;
  }
  return err.message;
}

/**
 * Turns every error into SPEC.md's shape `{ error, message, details? }`.
 * Validation errors name the field (`body/cpu must be > 0`); etcd being away
 * becomes 503 ETCD_UNAVAILABLE, with the health probe's account of it when it
 * has one. Like Fastify's default handler, < 500 is
 * logged at info and >= 500 at error.
 */
export function installErrorHandling(app: FastifyInstance, etcdProblem: () => string | undefined = () => undefined): void {
  app.setErrorHandler((err: FastifyError | BerthError | Error, req, reply) => {
    let status: number;
    let body: { error: string; message: string; details?: unknown };
    if ('validation' in err && err.validation) {
      status = 400;
      body = { error: 'VALIDATION_FAILED', message: validationMessage(err), details: err.validation };
    } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500 && !(err instanceof BerthError)) {
      // Fastify's own client errors: bad JSON, wrong content type, body too large.
      status = err.statusCode;
      body = { error: ('code' in err && err.code) || 'BAD_REQUEST', message: err.message };
    } else {
      const mapped = toBerthError(err);
      status = mapped.statusCode;
      body = { error: mapped.code, message: mapped.message, ...(mapped.details === undefined ? {} : { details: mapped.details }) };
      // An etcd call failed (the refusal of a replica that already knows etcd is away has no cause).
      if (mapped.code === 'ETCD_UNAVAILABLE' && mapped.cause !== undefined) {
        // The request knows only its last endpoint's error; the health probe, which asks every
        // endpoint, can tell a stopped member from a lost quorum.
        body.message = etcdProblem() ?? mapped.message;
        // A write that reached a member without quorum sits in its raft log and may still be
        // committed when quorum returns: the client must not take the 503 as "nothing happened".
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          body.message += '. The outcome of this request is unknown: it may still take effect when etcd recovers; check before retrying';
        }
      }
    }
    // etcd probes run every second: a client may try again that soon.
    if (status === 503) void reply.header('retry-after', '1');
    if (status >= 500) req.log.error({ err }, body.message);
    else req.log.info({ err: body }, 'request rejected');
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });
}
