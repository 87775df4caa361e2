export { Controller } from './controller.js';
export { parseConfig, type ControllerConfig } from './config.js';
export { decideNodeStatus, type NodeTransition } from './nodes/lifecycle.js';
