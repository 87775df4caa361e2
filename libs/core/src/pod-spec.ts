import type { CreatePodRequest } from './schemas.js';
import type { PodSpec } from './types.js';

/**
 * The spec stored for a `POST /v1/pods` request, with the API's defaults
 * applied. One function, so the controller and `berth apply`'s "unchanged"
 * check can never disagree about a default.
 */
export function podSpecFromRequest(req: CreatePodRequest): PodSpec {
  return {
    ...(req.image === undefined ? {} : { image: req.image }),
    ...(req.command === undefined ? {} : { command: req.command }),
    env: req.env ?? {},
    cpu: req.cpu,
    memoryMiB: req.memoryMiB ?? 128,
    ports: req.ports ?? [],
    ...(req.healthCheck === undefined
      ? {}
      : {
          healthCheck: {
            path: req.healthCheck.path,
            ...(req.healthCheck.port === undefined ? {} : { port: req.healthCheck.port }),
            intervalSeconds: req.healthCheck.intervalSeconds ?? 5,
            timeoutSeconds: req.healthCheck.timeoutSeconds ?? 1,
            failureThreshold: req.healthCheck.failureThreshold ?? 3,
          },
        }),
    restartPolicy: req.restartPolicy ?? 'Always',
    priority: req.priority ?? 0,
    nodeSelector: req.nodeSelector ?? {},
    ...(req.policy === undefined ? {} : { policy: req.policy }),
    ...(req.capabilities === undefined ? {} : { capabilities: req.capabilities }),
    ...(req.readOnlyRootFilesystem === undefined ? {} : { readOnlyRootFilesystem: req.readOnlyRootFilesystem }),
  };
}
