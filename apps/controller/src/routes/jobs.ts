import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CreateJobRequest, JOB_STATUSES, LIMITS, NameOrId, StringEnum } from '@berth/core';
import { routePlugin } from '../plugins/services.js';
import { MAX_WAIT_SECONDS } from '../jobs/service.js';

const jobRef = { $ref: 'Job#' } as const;
const errorRef = { $ref: 'ErrorResponse#' } as const;
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: LIMITS.nameLength, pattern: '^[0-9a-z]+$', description: 'job id' }) });

/** `/v1/jobs`: submit (durable before the answer), list, get or long-poll, cancel. */
export const jobRoutes = routePlugin('job-routes', ['jobService'], async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { jobService: jobs } = fastify;

  app.post(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Submit a request to a service; answered once the job is durable in etcd',
        body: CreateJobRequest,
        response: {
          202: { ...jobRef, description: 'accepted: the job is in etcd, Queued' },
          200: { ...jobRef, description: 'the idempotency key already names this job' },
          404: errorRef,
          409: errorRef,
          413: errorRef,
        },
      },
    },
    async (req, reply) => {
      const { created, job } = await jobs.submit(req.body);
      return reply.status(created ? 202 : 200).send(job);
    },
  );

  app.get(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Jobs, newest first, optionally of one service or status',
        querystring: Type.Object(
          {
            service: Type.Optional(NameOrId('service name')),
            status: Type.Optional(StringEnum(JOB_STATUSES)),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 100 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: { $ref: 'JobList#' } },
      },
    },
    async (req) => ({
      items: jobs.list({
        ...(req.query.service === undefined ? {} : { service: req.query.service }),
        ...(req.query.status === undefined ? {} : { status: req.query.status }),
        limit: req.query.limit ?? 100,
      }),
    }),
  );

  app.get(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'One job; with wait=S, answered when it finishes or after S seconds',
        params: IdParams,
        querystring: Type.Object({ wait: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_WAIT_SECONDS, description: `seconds to wait for the job to finish (at most ${MAX_WAIT_SECONDS})` })) }, { additionalProperties: false }),
        response: { 200: jobRef, 404: errorRef },
      },
    },
    async (req, reply) => {
      const abort = new AbortController();
      reply.raw.on('close', () => abort.abort());
      return jobs.wait(req.params.id, req.query.wait ?? 0, abort.signal);
    },
  );

  app.delete(
    '/jobs/:id',
    { schema: { tags: ['jobs'], summary: 'Cancel a job that has not finished', params: IdParams, response: { 200: jobRef, 404: errorRef, 409: errorRef } } },
    async (req) => jobs.cancel(req.params.id),
  );
});
