import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import sseModule, { type fastifySSE } from '@fastify/sse';
import { Type } from 'typebox';
import type { FeedListener } from '../dashboard/feed.js';
import { routePlugin } from '../plugins/services.js';

const errorRef = { $ref: 'ErrorResponse#' } as const;

/**
 * The package's CommonJS export is the fastify-plugin wrapped plugin (its
 * `default`/`fastifySSE` exports are the bare function, which would stay
 * encapsulated and never see our route); its types only describe the latter.
 */
const sse = sseModule as unknown as typeof fastifySSE;

/** Heartbeat comments keep proxies and browsers from timing the stream out. */
export const HEARTBEAT_MS = 15_000;

/**
 * `GET /v1/events`: recent audit events from this replica's watch cache, or
 * with `?watch=1` a Server-Sent Events stream: a `snapshot` first, then
 * coalesced `leader`, `node`, `pod`, `service`, `job` and `event` changes.
 */
export const eventRoutes = routePlugin('event-routes', ['clusterState', 'leadership', 'liveFeed', 'auth'], async (fastify) => {
  const { clusterState: state, leadership, liveFeed: feed, auth } = fastify;
  await fastify.register(sse, { heartbeatInterval: HEARTBEAT_MS });
  // Open streams would keep `close()` waiting forever: end them first.
  const open = new Set<{ close(): void }>();
  fastify.addHook('preClose', async () => {
    for (const s of open) s.close();
  });
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/events',
    {
      sse: { kind: 'manual', heartbeat: true },
      schema: {
        tags: ['events'],
        summary: 'Recent audit events (newest last), or with watch=1 a live Server-Sent Events stream of the cluster',
        description: [
          'Without `watch`: `{items: [...]}`, the last `limit` events this replica has cached (events live on a TTL lease).',
          '',
          'With `watch=1`: `text/event-stream`. The first event is `snapshot` `{self, leader, replicas, nodes, pods, services, jobs, events, revision, etcd}`',
          '(`jobs`: summaries of the 50 newest); then `leader` `{leader, replicas}`, `node` `{id, node|null}`, `pod` `{id, pod|null}` (null: deleted),',
          '`service` `{name, service|null}` (a service, its pods or their readiness changed), `job` `{id, job|null}` (a job summary; a batch carries',
          'the 50 newest changed jobs at most), `event` (an audit event)',
          'and `etcd` `{reachable, message}` when this replica loses or regains etcd (while it is away, the stream shows the last known state),',
          'coalesced to at most one batch per 100 ms. Each SSE id is the etcd revision of the caches; a reconnect with',
          '`Last-Event-ID` gets a fresh snapshot. A `: heartbeat` comment is sent every 15 s.',
        ].join('\n'),
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'how many recent events (list only)' })),
            watch: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')])),
          },
          { additionalProperties: false },
        ),
        response: {
          200: {
            description: 'The events, or (watch=1) a text/event-stream',
            content: {
              'application/json': { schema: { $ref: 'EventList#' } },
              'text/event-stream': { schema: Type.String({ description: 'SSE: snapshot, leader, node, pod, service, job, event, etcd' }) },
            },
          },
          400: errorRef,
        },
      },
    },
    async (req, reply) => {
      if (req.query.watch !== '1' && req.query.watch !== 'true') {
        const all = state.auditEvents.list();
        return { items: all.slice(-(req.query.limit ?? 100)).map((e) => e.value) };
      }
      const stream = reply.sse;
      stream.keepAlive();
      // Until the first snapshot is written, changes are buffered so none falls between it and the stream.
      let ready = false;
      const early: Array<Parameters<FeedListener>> = [];
      const send: FeedListener = (batch, revision) => {
        if (!stream.isConnected) return;
        // A send fails only when the client has gone; onClose below unsubscribes.
        for (const m of batch) void stream.send({ id: String(revision), event: m.event, data: m.data }).catch(() => undefined);
      };
      const unsubscribe = feed.subscribe((batch, revision) => (ready ? send(batch, revision) : early.push([batch, revision])));
      open.add(stream);
      // A stream lives as long as its token: revoking the token ends it (with the tokens cache's watch event), as it ends every later request.
      const principal = req.principal;
      const revoked = () => {
        if (principal !== null && auth.tokens.resolveHash(principal.hash) === undefined) stream.close();
      };
      if (auth.enabled && principal !== null) state.tokens.on('change', revoked);
      stream.onClose(() => {
        open.delete(stream);
        unsubscribe();
        state.tokens.off('change', revoked);
      });
      void reply.header('x-berth-replica', leadership.self.id);
      await state.whenSynced();
      const snap = feed.snapshot();
      // `retry`: reconnect quickly when this replica goes away (the browser picks it up on the next attempt).
      await stream.send({ id: String(snap.revision), event: 'snapshot', data: snap, retry: 1000 });
      ready = true;
      for (const [batch, revision] of early.splice(0)) send(batch, revision);
    },
  );
});
