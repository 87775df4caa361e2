import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { NodeAgent } from './node-agent.js';

/** The agent's small HTTP API: health and the nodes it runs (logs arrive with pods). */
export function buildAgentServer(nodes: () => NodeAgent[], log: Logger): FastifyInstance {
  const app = Fastify({ loggerInstance: log as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
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
  return app;
}
