import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CreateServiceRequest, NameOrId, PatchServiceRequest } from '@berth/core';
import { routePlugin } from '../plugins/services.js';

const serviceRef = { $ref: 'Service#' } as const;
const errorRef = { $ref: 'ErrorResponse#' } as const;
export const NameParams = Type.Object({ name: NameOrId('service name') });

/** `/v1/services`: create, list, get, scale or change the template, delete. Reads come from the watch cache. */
export const serviceRoutes = routePlugin('service-routes', ['serviceCatalog'], async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { serviceCatalog: catalog } = fastify;

  app.get(
    '/services',
    { schema: { tags: ['services'], summary: 'Services with their ready replicas and endpoints', response: { 200: { $ref: 'ServiceList#' } } } },
    async () => ({ items: catalog.list() }),
  );

  app.get(
    '/services/:name',
    { schema: { tags: ['services'], summary: "One service, with its endpoints as this replica routes to them", params: NameParams, response: { 200: serviceRef, 404: errorRef } } },
    async (req) => catalog.get(req.params.name),
  );

  app.post(
    '/services',
    {
      schema: {
        tags: ['services'],
        summary: 'Create a service: the leader keeps `replicas` pods of the template, named <name>-<suffix>',
        body: CreateServiceRequest,
        response: { 201: serviceRef, 409: errorRef },
      },
    },
    async (req, reply) => reply.status(201).send(await catalog.create(req.body)),
  );

  app.patch(
    '/services/:name',
    {
      schema: {
        tags: ['services'],
        summary: 'Scale a service or change its template (pods are replaced one at a time, a new one Ready before an old one stops)',
        params: NameParams,
        body: PatchServiceRequest,
        response: { 200: serviceRef, 404: errorRef, 409: errorRef },
      },
    },
    async (req) => catalog.patch(req.params.name, req.body),
  );

  app.delete(
    '/services/:name',
    { schema: { tags: ['services'], summary: 'Delete a service; its pods are removed too', params: NameParams, response: { 200: serviceRef, 404: errorRef, 409: errorRef } } },
    async (req) => catalog.remove(req.params.name),
  );
});
