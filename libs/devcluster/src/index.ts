export * from './wait.js';
export * from './ports.js';
export * from './process.js';
export * from './etcd.js';
export * from './controller.js';
export * from './cluster.js';
export * from './proxy.js';
export * from './agent.js';
