import { once } from 'node:events';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BerthError, errors } from '@berth/core';
import { installErrorHandling } from '@berth/http';
import type { NodeCredential } from './credential.js';
import type { NodeAgent } from './node-agent.js';
import { RuntimeUnavailableError, UnknownPodError, type Runtime } from './runtime.js';

/** Where the API finds a pod's runtime (the pod reconciler). */
export interface PodLocator {
  runtimeFor(podId: string): Runtime | undefined;
}

const TRUE = new Set(['1', 'true', 'yes']);

/** Open without the node credential: a liveness probe (compose's healthcheck) has no secret, and learns nothing. */
const OPEN_PATHS = new Set(['/healthz']);

/**
 * The agent's small HTTP API: health, the nodes it runs, and pod logs (the
 * controller proxies `GET /v1/pods/:id/logs` here from the node's address).
 * Every route but /healthz requires the node credential (pod output and the
 * pods' pids and containers are not for whoever reaches the port): 401 without it.
 * Errors are the controller's: `@berth/http`'s handler, one catalogue.
 */
export function buildAgentServer(nodes: () => NodeAgent[], log: Logger, pods: PodLocator, credential: NodeCredential): FastifyInstance {
  const app = Fastify({ loggerInstance: log as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  installErrorHandling(app, {
    mapError: (err) => {
      if (err instanceof UnknownPodError) return errors.notFound('pod', err.podId);
      // The engine's absence is the node's state, not a bug: say so (the message names the engine's address).
      if (err instanceof RuntimeUnavailableError) return new BerthError('RUNTIME_UNAVAILABLE', err.message, undefined, { cause: err });
      return undefined;
    },
  });

  app.addHook('onRequest', async (req) => {
    if (OPEN_PATHS.has(req.url.split('?')[0]!)) return;
    if (!credential.accepts(req.headers.authorization)) {
      throw new BerthError('UNAUTHENTICATED', "this agent's API needs its node credential (Authorization: Bearer <secret>); controllers read it from etcd");
    }
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/v1/nodes', async () => ({
    items: await Promise.all(
      nodes().map(async (n) => ({
        id: n.id,
        name: n.opts.name,
        runtime: n.opts.runtime.kind,
        capacity: n.opts.capacity,
        pods: await n.opts.runtime.list(),
      })),
    ),
  }));

  app.get<{ Params: { id: string }; Querystring: { tail?: number; follow?: string } }>(
    '/v1/pods/:id/logs',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            tail: { type: 'integer', minimum: 0, description: 'only the last N lines' },
            follow: { type: 'string', enum: ['0', '1', 'true', 'false', 'yes', 'no'], description: 'keep streaming new output until the client disconnects' },
          },
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const runtime = pods.runtimeFor(id);
      if (runtime === undefined) throw errors.notFound('pod', id);
      const opts = req.query.tail === undefined ? {} : { tail: req.query.tail };
      if (!TRUE.has(req.query.follow ?? '')) {
        const text = await runtime.logs(id, opts);
        return reply.type('text/plain; charset=utf-8').send(text);
      }
      // Fails here (404) rather than after the headers went out when the runtime does not know the pod.
      await runtime.logs(id, { tail: 0 });
      // From here the response is a long-lived stream written by hand: headers go out at once so a
      // follower (or the controller's proxy) sees the stream open before the pod writes anything.
      reply.hijack();
      const res = reply.raw;
      const ac = new AbortController();
      res.once('close', () => ac.abort()); // the client went away: end the follower and its file watch
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
      res.flushHeaders();
      try {
        for await (const chunk of runtime.followLogs(id, opts, ac.signal)) {
          if (chunk.length === 0) continue;
          if (!res.write(chunk)) await once(res, 'drain', { signal: ac.signal });
        }
      } catch (err) {
        if (!ac.signal.aborted) log.warn({ err, pod: id }, 'log stream ended with an error');
      } finally {
        res.end();
      }
    },
  );
  return app;
}
