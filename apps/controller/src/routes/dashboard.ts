import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { DASHBOARD_CSS, DASHBOARD_HTML } from '../dashboard/page.js';
import { routePlugin } from '../plugins/services.js';
import { dashboardHelmet } from '../plugins/security-headers.js';

/** Where `ui/app.ts` is compiled to (its own tsconfig project, with the DOM types). */
export const uiDir = fileURLToPath(new URL('../ui/', import.meta.url));

/**
 * The access table of `@berth/core`, compiled: the dashboard's script
 * imports it as `./access.js` to show only the buttons its role may use.
 */
const ACCESS_JS = fs
  .readFileSync(fileURLToPath(import.meta.resolve('@berth/core/access')), 'utf8')
  // Its map is not served: say nothing of it.
  .replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');

/** The web dashboard at `/`, its assets under `/dashboard/`. Every replica serves it. */
export const dashboardRoutes = routePlugin('dashboard-routes', ['leadership', 'auth'], async (app) => {
  const { leadership, auth } = app;
  const helmet = dashboardHelmet(auth.tls, () => leadership.replicaViews().map((r) => r.address));
  app.get('/', { schema: { hide: true }, helmet }, async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(DASHBOARD_HTML));
  app.get('/dashboard/style.css', { schema: { hide: true } }, async (_req, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'no-cache').send(DASHBOARD_CSS),
  );
  app.get('/dashboard/access.js', { schema: { hide: true } }, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(ACCESS_JS),
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
