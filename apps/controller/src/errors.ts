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
 * becomes 503 ETCD_UNAVAILABLE. Like Fastify's default handler, < 500 is
 * logged at info and >= 500 at error.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | BerthError | Error, req, reply) => {
    let status: number;
    let body: { error: string; message: string; details?: unknown };
    if ('validation' in err && err.validation) {
      status = 400;
      body = { error: 'VALIDATION_FAILED', message: validationMessage(err), details: err.validation };
    } else if (err instanceof BerthError) {
      status = err.statusCode;
      body = { error: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) };
    } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500) {
      // Fastify's own client errors: bad JSON, wrong content type, body too large.
      status = err.statusCode;
      body = { error: ('code' in err && err.code) || 'BAD_REQUEST', message: err.message };
    } else {
      const mapped = toBerthError(err);
      status = mapped.statusCode;
      body = { error: mapped.code, message: mapped.message };
    }
    if (status >= 500) req.log.error({ err }, body.message);
    else req.log.info({ err: body }, 'request rejected');
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });
}
