import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NameOrId, NODE_ACTIONS, NODE_STATUSES, ProvisionNodeRequest, StringEnum } from '@berth/core';
import { routePlugin } from '../plugins/services.js';

const nodeRef = { $ref: 'Node#' } as const;
const errorRef = { $ref: 'ErrorResponse#' } as const;
const IdParams = Type.Object({ id: NameOrId('node id or unique name') });

/** `/v1/nodes`: list, get, provision, cordon/uncordon/drain, delete. Reads come from the watch cache. */
export const nodeRoutes = routePlugin('node-routes', ['clusterState', 'nodeService'], async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { clusterState: state, nodeService } = fastify;

  app.get(
    '/nodes',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Nodes with status, capacity, allocated, usage and pods',
        querystring: Type.Object({ status: Type.Optional(StringEnum(NODE_STATUSES)) }, { additionalProperties: false }),
        response: { 200: { $ref: 'NodeList#' } },
      },
    },
    async (req) => ({
      items: state.nodes
        .list()
        .map((n) => state.nodeView(n.value))
        .filter((n) => req.query.status === undefined || n.status === req.query.status),
    }),
  );

  app.get(
    '/nodes/:id',
    { schema: { tags: ['nodes'], summary: 'One node', params: IdParams, response: { 200: nodeRef, 404: errorRef } } },
    async (req) => state.nodeView(state.node(req.params.id).value),
  );

  app.post(
    '/nodes',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Provision a node: starts a container (or a process where no Docker engine is reachable) running an agent, and answers once it registered',
        body: ProvisionNodeRequest,
        response: { 201: nodeRef, 400: errorRef, 409: errorRef, 504: errorRef },
      },
    },
    async (req, reply) => reply.status(201).send(await nodeService.provision(req.body)),
  );

  for (const action of NODE_ACTIONS) {
    app.post(
      `/nodes/:id/${action}`,
      {
        schema: {
          tags: ['nodes'],
          summary: { cordon: 'Mark unschedulable', uncordon: 'Mark schedulable again (ends a drain)', drain: 'Cordon and move pods elsewhere' }[action],
          params: IdParams,
          response: { 200: nodeRef, 404: errorRef, 409: errorRef },
        },
      },
      async (req) => nodeService[action](req.params.id),
    );
  }

  app.delete(
    '/nodes/:id',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Drain, then remove the node (and stop the container or process provisioned for it)',
        params: IdParams,
        response: { 200: nodeRef, 404: errorRef, 409: errorRef },
      },
    },
    async (req) => nodeService.remove(req.params.id),
  );
});
