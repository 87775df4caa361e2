#!/usr/bin/env node
/**
 * A bare Fastify route (no schema, no hooks, no logger) answering a small
 * JSON body: the scale for what one Node process serves on this machine.
 * bench/services.ts runs it as a child process and loads it.
 *
 *   node bench/dist/fastify-route.js PORT
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', async () => ({ pod: 'fastify-route' }));
await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' });
console.log('listening');
