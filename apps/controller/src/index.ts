export { Controller } from './controller.js';
export { parseConfig, type ControllerConfig } from './config.js';
