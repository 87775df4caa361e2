/**
 * HTTP pieces shared by the controller and the agent, so both answer errors
 * in one shape with codes from one catalogue.
 */
export { answerFrameworkError, installErrorHandling, type ErrorBody, type ErrorHandlingOptions } from './error-handler.js';
export { installJsonBodyParser, nestingExceeds, MAX_JSON_DEPTH } from './json-body.js';
