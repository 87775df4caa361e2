/** @berth/scheduler: the pure scheduling core (no I/O, no clock, no unseeded randomness); README.md draws the pipeline. */
export * from './types.js';
export * from './quantity.js';
export * from './filters.js';
export * from './score.js';
export * from './snapshot.js';
export * from './explain.js';
export * from './pipeline.js';
export * from './preempt.js';
export * from './reservations.js';
