export * from './keys.js';
export * from './errors.js';
export * from './types.js';
export * from './ids.js';
export * from './schemas.js';
export * from './pod-state.js';
export * from './pod-spec.js';
export * from './pod-writes.js';
