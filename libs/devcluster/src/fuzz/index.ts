/**
 * The API fuzzer (`@berth/devcluster/fuzz`): kept off the package's main
 * entry so `npm start` never loads fast-check or Ajv.
 */
export { fuzzApi, type FuzzOptions, type FuzzReport, type FuzzFailure } from './runner.js';
export { Ledger, etcdProblems, removeProvisionedNodes } from './ledger.js';
export { operationsOf, type Operation, type OpenApiDocument } from './openapi.js';
export { validValue, invalidValue, type Schema } from './schema-arbitrary.js';
