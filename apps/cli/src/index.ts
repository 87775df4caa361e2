/** The CLI's pure building blocks (units, ages, tables, manifests, completion), exported for tests. */
export * from './units.js';
export * from './age.js';
export * from './table.js';
export * from './config.js';
export * from './manifest.js';
export * from './completion.js';
export * from './render.js';
export * from './render-workloads.js';
export * from './render-auth.js';
export * from './errors.js';
export { parseHeader, readData } from './commands/submit.js';
export { SseParser, type SseMessage } from './sse.js';
export { colorEnabled } from './program.js';
export { ApiError, ConnectionError, BerthClient, retryAfterSeconds, type BerthEvent, type JobView, type NodeView, type PodView, type ServiceView } from './client.js';
