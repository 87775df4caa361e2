/**
 * The bounds every input of the API is held to, in one place so the schemas,
 * the error handler and docs/limits.md agree. They follow Kubernetes where it
 * has a rule (DNS-1123 names, 63-character label values) and are otherwise
 * generous for real use but small enough that no single request can make a
 * record etcd refuses or an answer that echoes megabytes.
 */
export const LIMITS = {
  /** Default request body limit of the controller API (`--body-limit-bytes`); the service proxy holds bodies up to the same size. */
  bodyBytes: 1024 * 1024,
  /** Largest `--body-limit-bytes`: a pod or job record a body becomes must stay under etcd's 1.5 MiB request limit. */
  maxBodyBytes: 1024 * 1024,
  /** Labels of a node, keys of a pod's nodeSelector. */
  labels: 64,
  labelKeyLength: 63,
  labelValueLength: 63,
  /** Environment variables of a pod. */
  env: 256,
  envNameLength: 256,
  envValueLength: 32 * 1024,
  /** argv of a pod: entries and the length of each. */
  commandArgs: 256,
  commandArgLength: 4096,
  ports: 16,
  imageLength: 512,
  /** Path of a health check. */
  healthPathLength: 1024,
  /** Names and ids of pods, nodes, services and jobs (a DNS-1123 label). */
  nameLength: 63,
  /** A job's request. */
  jobHeaders: 64,
  jobHeaderNameLength: 128,
  jobHeaderValueLength: 8192,
  jobPathLength: 2048,
  idempotencyKeyLength: 256,
  /** Path on a pod after `/v1/services/:name/proxy`. */
  proxyPathLength: 8192,
  /** How much of an input value an error answer repeats. */
  echoLength: 64,
} as const;

/**
 * `value` as an error message may quote it: at most `LIMITS.echoLength`
 * characters, then `…` (a 10 KB id in a 404 is the client's own
 * problem, not something to send back or log in full).
 */
export function clampEcho(value: string, max: number = LIMITS.echoLength): string {
  if (value.length <= max) return value;
  // Do not cut a surrogate pair in half: the rest would not be valid UTF-16.
  const end = /[\uD800-\uDBFF]/.test(value.charAt(max - 1)) ? max - 1 : max;
  return `${value.slice(0, end)}…`;
}

/** `JSON.stringify(clampEcho(value))`: how messages quote a name or id. */
export function quoteEcho(value: string): string {
  return JSON.stringify(clampEcho(value));
}
