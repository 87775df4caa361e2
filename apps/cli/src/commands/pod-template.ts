import type { PodTemplate, RestartPolicy, SchedulingPolicy } from '@berth/core';
import { parseKeyValues } from '../units.js';
import { usage } from './options.js';

/** The flags `berth run` and `berth create service` share: what a pod runs and needs. */
export interface PodFlags {
  image?: string | undefined;
  cpu: number;
  memory?: number | undefined;
  port?: number[] | undefined;
  env?: string[] | undefined;
  restart?: RestartPolicy | undefined;
  priority?: number | undefined;
  selector?: string[] | undefined;
  policy?: SchedulingPolicy | undefined;
  /** `create service` only: the path of an HTTP health check (a pod gets requests once it passes). */
  healthPath?: string | undefined;
}

/** The pod a command's flags and its argv after `--` describe (the server applies the defaults). */
export function podTemplate(opts: PodFlags, command: readonly string[]): PodTemplate {
  const { env: envFlags, selector: selectorFlags } = opts;
  const env = envFlags === undefined ? undefined : usage(() => parseKeyValues(envFlags, 'env'));
  const selector = selectorFlags === undefined ? undefined : usage(() => parseKeyValues(selectorFlags, 'selector', true));
  return {
    cpu: opts.cpu,
    ...(opts.image === undefined ? {} : { image: opts.image }),
    ...(command.length === 0 ? {} : { command: [...command] }),
    ...(env === undefined ? {} : { env }),
    ...(opts.memory === undefined ? {} : { memoryMiB: opts.memory }),
    ...(opts.port === undefined ? {} : { ports: opts.port }),
    ...(opts.restart === undefined ? {} : { restartPolicy: opts.restart }),
    ...(opts.priority === undefined ? {} : { priority: opts.priority }),
    ...(selector === undefined ? {} : { nodeSelector: selector }),
    ...(opts.policy === undefined ? {} : { policy: opts.policy }),
    ...(opts.healthPath === undefined ? {} : { healthCheck: { path: opts.healthPath } }),
  };
}
