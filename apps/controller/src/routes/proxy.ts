import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { LIMITS } from '@berth/core';
import { routePlugin } from '../plugins/services.js';
import { answerHeaders, type Headers } from '../routing/router.js';
import { NameParams } from './services.js';

const errorRef = { $ref: 'ErrorResponse#' } as const;
/** How long a proxied request waits for the pod's answer (and between chunks of it). */
const PROXY_TIMEOUT_MS = 30_000;
/** Answers up to this size (with a content-length) are read whole and sent in one write instead of piped. */
const SMALL_ANSWER_BYTES = 64 * 1024;

/**
 * `ANY /v1/services/:name/proxy/*` on every replica: forwards the request to
 * one ready pod of the service (power of two choices on outstanding
 * requests), retries once on another pod when it fails and the method is
 * idempotent, and streams the pod's answer back with `x-berth-pod`.
 */
export const proxyRoutes = routePlugin('proxy-routes', ['router', 'clusterState'], async (app) => {
  const { router, clusterState: state } = app;
  // Bodies of any type pass through untouched (this plugin is encapsulated: other routes keep their JSON parsing).
  // Request bodies are held (up to the API's body limit, as every other route's) so a failed attempt can be sent again to another pod.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: app.initialConfig.bodyLimit ?? LIMITS.bodyBytes }, (_req, body, done) => done(null, body));

  const handler = async (req: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) => {
    const name = req.params.name;
    state.service(name);
    const raw = req.raw.url ?? '/';
    // The path as the client wrote it (still percent-encoded), with its query.
    const at = raw.indexOf('/proxy', '/v1/services/'.length);
    let path = raw.slice(at + '/proxy'.length);
    if (path === '' || path.startsWith('?')) path = `/${path}`;
    const abort = new AbortController();
    // A client gone before its answer: stop the pod's request too (every answer closes; aborting a finished one costs a DOMException).
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    const headers: Headers = {
      ...req.headers,
      'x-forwarded-for': [req.headers['x-forwarded-for'], req.ip].filter(Boolean).join(', '),
      'x-forwarded-proto': req.protocol,
      ...(req.headers.host === undefined ? {} : { 'x-forwarded-host': req.headers.host }),
    };
    const body = Buffer.isBuffer(req.body) ? req.body : undefined;
    const ans = await router.forward(name, { method: req.method, path, headers, ...(body === undefined ? {} : { body }), timeoutMs: PROXY_TIMEOUT_MS, signal: abort.signal });
    void reply.code(ans.statusCode).headers(answerHeaders(ans.headers)).header('x-berth-pod', ans.endpoint.podId);
    // A small answer of known length is sent in one write; anything else streams through as it arrives.
    const length = Number(ans.headers['content-length'] ?? NaN);
    if (length <= SMALL_ANSWER_BYTES) {
      try {
        return reply.send(Buffer.from(await ans.body.arrayBuffer()));
      } finally {
        ans.done();
      }
    }
    return reply.send(ans.body);
  };

  const schema = (withPath: boolean) => ({
    tags: ['services'],
    summary: withPath
      ? "Route a request to a ready pod of the service (the path after /proxy, and the query, go to the pod); its answer comes back as is, with x-berth-pod"
      : "Route a request for the pod's / to a ready pod of the service; its answer comes back as is, with x-berth-pod",
    params: withPath ? Type.Object({ name: NameParams.properties.name, '*': Type.String({ maxLength: LIMITS.proxyPathLength, description: 'path on the pod' }) }) : NameParams,
    response: {
      200: {
        description: "The pod's answer, streamed: whatever status, headers and body it gave (x-berth-pod names the pod)",
        headers: { 'x-berth-pod': { type: 'string', description: 'id of the pod that answered' } },
        content: { '*/*': { schema: {} } },
      },
      404: errorRef,
      413: errorRef,
      502: errorRef,
      503: errorRef,
    },
  });
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
  app.route({ method: [...methods], url: '/services/:name/proxy', schema: schema(false), handler, exposeHeadRoute: false });
  app.route({ method: [...methods], url: '/services/:name/proxy/*', schema: schema(true), handler, exposeHeadRoute: false });
});
