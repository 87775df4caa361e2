export * from './client.js';
export * from './txn.js';
export * from './informer.js';
export * from './repository.js';
export * from './events.js';
export * from './election.js';
export * from './lease-keeper.js';
