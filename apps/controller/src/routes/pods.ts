import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { BerthError, CreatePodRequest, keyOf, NameOrId, POD_ACTIONS, POD_PHASES, StringEnum } from '@berth/core';
import { routePlugin } from '../plugins/services.js';

const podRef = { $ref: 'Pod#' } as const;
const errorRef = { $ref: 'ErrorResponse#' } as const;
const IdParams = Type.Object({ id: NameOrId('pod id or unique name') });

/** `/v1/pods`: create, list, get, delete, lifecycle actions, logs (proxied from the node's agent). */
export const podRoutes = routePlugin('pod-routes', ['clusterState', 'podService', 'nodeService'], async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { clusterState: state, podService, nodeService } = fastify;

  app.get(
    '/pods',
    {
      schema: {
        tags: ['pods'],
        summary: 'Pods, optionally filtered by node (id or name), phase or service',
        querystring: Type.Object(
          { node: Type.Optional(NameOrId('node id or name')), phase: Type.Optional(StringEnum(POD_PHASES)), service: Type.Optional(NameOrId('service name')) },
          { additionalProperties: false },
        ),
        response: { 200: { $ref: 'PodList#' }, 404: errorRef },
      },
    },
    async (req) => {
      const nodeId = req.query.node === undefined ? undefined : state.node(req.query.node).value.id;
      const pods = nodeId === undefined ? state.pods.list().map((p) => p.value) : state.podsOn(nodeId).sort((a, b) => (a.id < b.id ? -1 : 1));
      return {
        items: pods
          .filter((p) => req.query.phase === undefined || p.status.phase === req.query.phase)
          .filter((p) => req.query.service === undefined || p.service === req.query.service),
      };
    },
  );

  app.get(
    '/pods/:id',
    { schema: { tags: ['pods'], summary: 'One pod', params: IdParams, response: { 200: podRef, 404: errorRef } } },
    async (req) => state.pod(req.params.id).value,
  );

  app.post(
    '/pods',
    {
      schema: {
        tags: ['pods'],
        summary: 'Create a pod; it stays Pending with a reason until it fits on a node',
        body: CreatePodRequest,
        response: { 201: podRef, 400: errorRef, 409: errorRef },
      },
    },
    async (req, reply) => reply.status(201).send(await podService.create(req.body)),
  );

  app.delete(
    '/pods/:id',
    {
      schema: {
        tags: ['pods'],
        summary: 'Delete a pod (its agent stops and removes the container first)',
        params: IdParams,
        response: { 200: podRef, 404: errorRef, 409: errorRef },
      },
    },
    async (req) => podService.remove(req.params.id),
  );

  for (const action of POD_ACTIONS) {
    app.post(
      `/pods/:id/${action}`,
      {
        schema: {
          tags: ['pods'],
          summary: `${action[0]!.toUpperCase()}${action.slice(1)} the pod (sets what you want; the node's agent converges)`,
          params: IdParams,
          response: { 200: podRef, 404: errorRef, 409: errorRef },
        },
      },
      async (req) => podService.act(req.params.id, action),
    );
  }

  app.get(
    '/pods/:id/logs',
    {
      schema: {
        tags: ['pods'],
        summary: "The pod's output, proxied from its node's agent (any replica answers)",
        params: IdParams,
        querystring: Type.Object(
          { tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })), follow: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')])) },
          { additionalProperties: false },
        ),
        response: {
          200: { description: "The pod's output as its agent streams it", content: { 'text/plain': { schema: Type.String() } } },
          404: errorRef,
          409: errorRef,
          502: errorRef,
        },
      },
    },
    async (req, reply) => {
      const pod = state.pod(req.params.id).value;
      if (pod.status.nodeId === null) throw new BerthError('INVALID_TRANSITION', `pod ${pod.name} is ${pod.status.phase}: not on a node, so no logs yet`);
      const node = state.nodes.get(keyOf('nodes', pod.status.nodeId))?.value;
      // A state, not a gateway failure: the node was removed (its logs went with it, and the leader sends the pod
      // back to Pending) or has no agent yet. 502 is for an agent that exists and does not answer.
      if (node === undefined) throw new BerthError('INVALID_TRANSITION', `pod ${pod.name} was on node ${pod.status.nodeId}, which is gone: its logs went with the node`);
      if (node.address === '') throw new BerthError('INVALID_TRANSITION', `node ${node.name} of pod ${pod.name} has no agent yet, so no logs yet`);
      const qs = new URLSearchParams();
      if (req.query.tail !== undefined) qs.set('tail', String(req.query.tail));
      if (req.query.follow === '1' || req.query.follow === 'true') qs.set('follow', '1');
      const url = `${node.address}/v1/pods/${pod.id}/logs?${qs.toString()}`;
      const headers = await nodeService.agentHeaders(node.id);
      const abort = new AbortController();
      req.raw.on('close', () => abort.abort());
      let res: Response;
      try {
        res = await fetch(url, { signal: abort.signal, headers });
      } catch (err) {
        throw new BerthError('AGENT_UNREACHABLE', `the agent of node ${node.name} at ${node.address} did not answer: ${(err as Error).message}`);
      }
      if (!res.ok || res.body === null) {
        const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
        throw new BerthError(res.status === 404 ? 'NOT_FOUND' : 'AGENT_UNREACHABLE', body.message ?? `agent answered ${res.status}`);
      }
      const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
      if (qs.has('follow')) {
        // Headers go out at once, as the agent sends them: Fastify would hold them until the pod's
        // first output, so following a silent pod got no answer at all (found by the API fuzzer).
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': res.headers.get('content-type') ?? 'text/plain; charset=utf-8', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
        reply.raw.flushHeaders();
        await pipeline(body, reply.raw).catch(() => undefined);
        return reply;
      }
      void reply.type(res.headers.get('content-type') ?? 'text/plain; charset=utf-8');
      return reply.send(body);
    },
  );
});
