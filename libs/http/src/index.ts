/**
 * HTTP pieces shared by the controller and the agent, so both answer errors
 * in one shape with codes from one catalogue.
 */
export { installErrorHandling, type ErrorBody, type ErrorHandlingOptions } from './error-handler.js';
