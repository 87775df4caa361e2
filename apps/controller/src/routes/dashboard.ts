import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { DASHBOARD_CSS, DASHBOARD_HTML } from '../dashboard/page.js';
import { routePlugin } from '../plugins/services.js';

/** Where `ui/app.ts` is compiled to (its own tsconfig project, with the DOM types). */
export const uiDir = fileURLToPath(new URL('../ui/', import.meta.url));

/** The web dashboard at `/`, its assets under `/dashboard/`. Every replica serves it. */
export const dashboardRoutes = routePlugin('dashboard-routes', [], async (app) => {
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(DASHBOARD_HTML));
  app.get('/dashboard/style.css', { schema: { hide: true } }, async (_req, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'no-cache').send(DASHBOARD_CSS),
  );
  await app.register(fastifyStatic, {
    root: uiDir,
    prefix: '/dashboard/',
    decorateReply: false,
    index: false,
    cacheControl: true,
    maxAge: 0,
    // Only the compiled script and its map; never the build metadata next to them.
    allowedPath: (pathName) => /^\/[a-z-]+\.js(\.map)?$/.test(pathName),
    schemaHide: true,
  });
});
